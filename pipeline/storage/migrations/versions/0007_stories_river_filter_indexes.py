"""stories: indexes on (agency, last_seen) and (language, last_seen), for the river filtered by either.

Revision 0007, after 0006. Existing rows need nothing: the indexes are built from them.
"""

from __future__ import annotations

from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('stories', schema=None) as batch_op:
        batch_op.create_index('ix_stories_agency_last_seen', ['agency', 'last_seen'], unique=False)
        batch_op.create_index('ix_stories_language_last_seen', ['language', 'last_seen'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('stories', schema=None) as batch_op:
        batch_op.drop_index('ix_stories_language_last_seen')
        batch_op.drop_index('ix_stories_agency_last_seen')
