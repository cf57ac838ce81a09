"""feeds.attempt_outcome: what the scheduled poll ``attempt_key`` did to the feed, for its DAG run's report.

Revision 0008, after 0007. Existing rows get NULL: no poll of theirs is to be reported again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('feeds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempt_outcome', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('feeds', schema=None) as batch_op:
        batch_op.drop_column('attempt_outcome')
