"""Outlet template learning (template_blocks, articles.template_stripped) and corrections
(article_revisions; entries.updated, revisit and the page's validators).

Revision 0006, after 0005. Existing rows need no values: entries stored before have no
update time, and their first poll after the upgrade records it without a revisit.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('article_revisions',
    sa.Column('article_id', sa.String(length=64), nullable=False),
    sa.Column('revision', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('fetched_at', sa.DateTime(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('article_id', 'revision')
    )
    op.create_table('template_blocks',
    sa.Column('domain', sa.String(length=255), nullable=False),
    sa.Column('outlet', sa.Text(), nullable=False),
    sa.Column('fingerprint', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('weight', sa.Float(), nullable=False),
    sa.Column('articles', sa.Integer(), nullable=False),
    sa.Column('last_seen', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('domain', 'outlet', 'fingerprint')
    )
    with op.batch_alter_table('template_blocks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_template_blocks_last_seen'), ['last_seen'], unique=False)

    with op.batch_alter_table('articles', schema=None) as batch_op:
        batch_op.add_column(sa.Column('template_stripped', sa.JSON(), nullable=True))

    with op.batch_alter_table('entries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('updated', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('revisit', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('etag', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('last_modified', sa.Text(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('entries', schema=None) as batch_op:
        batch_op.drop_column('last_modified')
        batch_op.drop_column('etag')
        batch_op.drop_column('revisit')
        batch_op.drop_column('updated')

    with op.batch_alter_table('articles', schema=None) as batch_op:
        batch_op.drop_column('template_stripped')

    with op.batch_alter_table('template_blocks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_template_blocks_last_seen'))

    op.drop_table('template_blocks')
    op.drop_table('article_revisions')
