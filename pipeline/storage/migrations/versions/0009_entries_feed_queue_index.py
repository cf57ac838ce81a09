"""entries: an index on (feed_id, state, discovered_at, url) in place of the one on feed_id; one on claimed_by.

Revision 0009, after 0008. A claim takes each feed's oldest pending entries and renews the
worker's other claims, and a pass starts by freeing the claims of dead workers; without these
indexes each read every pending entry, seconds a claim at a million pending. The index on
claimed_by holds the entries under a lease only. Existing rows need nothing: the indexes are
built from them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('entries', schema=None) as batch_op:
        batch_op.create_index('ix_entries_feed_queue', ['feed_id', 'state', 'discovered_at', 'url'], unique=False)
        batch_op.drop_index('ix_entries_feed_id')
        batch_op.create_index('ix_entries_claimed_by', ['claimed_by'], unique=False,
                              sqlite_where=sa.text('lease_until IS NOT NULL'),
                              postgresql_where=sa.text('lease_until IS NOT NULL'))


def downgrade() -> None:
    with op.batch_alter_table('entries', schema=None) as batch_op:
        batch_op.drop_index('ix_entries_claimed_by')
        batch_op.create_index('ix_entries_feed_id', ['feed_id'], unique=False)
        batch_op.drop_index('ix_entries_feed_queue')
