"""Sitemap sources: a feed's kind ("feed" or "sitemap"), whether its URLs may be on other hosts, its high-water mark.

Revision 0004, after 0003. Existing feeds are feeds, same-host only, without a mark.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('feeds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=20), server_default='feed', nullable=False))
        # sa.false(): PostgreSQL refuses an integer default for a boolean column.
        batch_op.add_column(sa.Column('cross_host', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('high_water', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('feeds', schema=None) as batch_op:
        batch_op.drop_column('high_water')
        batch_op.drop_column('cross_host')
        batch_op.drop_column('kind')
