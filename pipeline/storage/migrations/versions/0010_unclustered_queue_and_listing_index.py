"""unclustered: the articles to cluster, queued; stories: an index in the order of the cluster listing;
articles: an index by outlet, for the river filtered by outlet; cluster_aliases: an index by survivor, for merges.

Revision 0010, after 0009. The queue is filled with the stored articles that have no membership
(those a clustering pass would take); the listing's index replaces the one on article_count alone.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('unclustered',
    sa.Column('article_id', sa.String(length=64), nullable=False),
    sa.Column('arrived_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('article_id')
    )
    with op.batch_alter_table('unclustered', schema=None) as batch_op:
        batch_op.create_index('ix_unclustered_arrived_at', ['arrived_at', 'article_id'], unique=False)
    op.execute(
        "INSERT INTO unclustered (article_id, arrived_at) SELECT id, arrived_at FROM articles"
        " WHERE NOT EXISTS (SELECT 1 FROM memberships WHERE memberships.article_id = articles.id)"
    )
    with op.batch_alter_table('articles', schema=None) as batch_op:
        batch_op.create_index('ix_articles_outlet', ['outlet', 'id'], unique=False)
    with op.batch_alter_table('cluster_aliases', schema=None) as batch_op:
        batch_op.create_index('ix_cluster_aliases_survivor_id', ['survivor_id'], unique=False)
    with op.batch_alter_table('stories', schema=None) as batch_op:
        batch_op.drop_index('ix_stories_article_count')
        batch_op.create_index('ix_stories_listing', ['article_count', 'last_seen', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('stories', schema=None) as batch_op:
        batch_op.drop_index('ix_stories_listing')
        batch_op.create_index('ix_stories_article_count', ['article_count'], unique=False)
    with op.batch_alter_table('cluster_aliases', schema=None) as batch_op:
        batch_op.drop_index('ix_cluster_aliases_survivor_id')
    with op.batch_alter_table('articles', schema=None) as batch_op:
        batch_op.drop_index('ix_articles_outlet')
    with op.batch_alter_table('unclustered', schema=None) as batch_op:
        batch_op.drop_index('ix_unclustered_arrived_at')
    op.drop_table('unclustered')
