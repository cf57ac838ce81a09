"""runs: the Airflow run id of a DAG run, so every task of the run records into its one row;
articles: an index on text_source, so `newsagg metrics` counts articles by it without reading them.

Revision 0003, after 0002.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('articles', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_articles_text_source'), ['text_source'], unique=False)

    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('airflow_run', sa.String(length=250), nullable=True))
        batch_op.create_index(batch_op.f('ix_runs_airflow_run'), ['airflow_run'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_runs_airflow_run'))
        batch_op.drop_column('airflow_run')

    with op.batch_alter_table('articles', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_articles_text_source'))
