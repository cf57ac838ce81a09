"""The schema of the last release before revisions (main 9788db7), and what it did on open.

A store that release (or an older one) wrote has these tables but no version: this
revision creates the tables it lacks and adds the columns older releases did not have
yet (feeds.failure_score, learned_interval, last_new_entry_at, alerted_status), as that
release did on every open, then the store is at revision 0001. On an empty database it
creates the tables. Frozen: later changes to pipeline/storage/schema.py go into new
revisions, never here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _baseline() -> sa.MetaData:
    baseline = sa.MetaData()
    sa.Table(
        "feeds",
        baseline,
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("language", sa.String(20)),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("poll_interval", sa.Integer),
        sa.Column("etag", sa.Text),
        sa.Column("last_modified", sa.Text),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("consecutive_failures", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("last_attempt_at", sa.DateTime),
        sa.Column("last_success_at", sa.DateTime),
        sa.Column("next_attempt_at", sa.DateTime),
        sa.Column("entries_seen", sa.Integer, nullable=False),
        # Added on open by releases before revisions, so older stores may lack them.
        sa.Column("failure_score", sa.Float, nullable=False, server_default="0"),
        sa.Column("learned_interval", sa.Integer),
        sa.Column("last_new_entry_at", sa.DateTime),
        sa.Column("alerted_status", sa.String(20)),
    )

    sa.Table(
        "entries",
        baseline,
        sa.Column("url", sa.Text, primary_key=True),
        sa.Column("feed_id", sa.String(200), nullable=False, index=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("summary", sa.Text),
        sa.Column("content", sa.Text),
        sa.Column("author", sa.Text),
        sa.Column("published", sa.DateTime),
        sa.Column("guid", sa.Text),
        sa.Column("discovered_at", sa.DateTime, nullable=False),
        sa.Column("state", sa.String(20), nullable=False, index=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text),
    )

    sa.Table(
        "articles",
        baseline,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("url", sa.Text, nullable=False, unique=True),
        sa.Column("feed_id", sa.String(200)),
        sa.Column("outlet", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("author", sa.Text),
        sa.Column("published", sa.DateTime),
        sa.Column("fetched_at", sa.DateTime, nullable=False),
        sa.Column("arrived_at", sa.DateTime, nullable=False, index=True),
        sa.Column("language", sa.String(20)),
        sa.Column("text_source", sa.String(20), nullable=False),
        sa.Column("text_source_reason", sa.Text),
    )

    sa.Table(
        "signatures",
        baseline,
        sa.Column("article_id", sa.String(64), primary_key=True),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("at", sa.DateTime, nullable=False, index=True),
    )

    sa.Table(
        "memberships",
        baseline,
        sa.Column("article_id", sa.String(64), primary_key=True),
        sa.Column("cluster_id", sa.String(64), nullable=False, index=True),
        sa.Column("matched_article_id", sa.String(64)),
        sa.Column("jaccard", sa.Float),
        sa.Column("containment", sa.Float),
    )

    sa.Table(
        "cluster_aliases",
        baseline,
        sa.Column("absorbed_id", sa.String(64), primary_key=True),
        sa.Column("survivor_id", sa.String(64), nullable=False),
    )

    sa.Table(
        "dirty_clusters",
        baseline,
        sa.Column("cluster_id", sa.String(64), primary_key=True),
    )

    sa.Table(
        "stories",
        baseline,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("sources", sa.JSON, nullable=False),
        sa.Column("article_count", sa.Integer, nullable=False, index=True),
        sa.Column("outlet_count", sa.Integer, nullable=False),
        sa.Column("first_seen", sa.DateTime, nullable=False),
        sa.Column("last_seen", sa.DateTime, nullable=False, index=True),
        sa.Column("language", sa.String(20)),
        sa.Column("agency", sa.String(40)),
    )

    sa.Table(
        "outbox",
        baseline,
        sa.Column("kind", sa.String(10), primary_key=True),
        sa.Column("doc_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text),
    )

    sa.Table(
        "runs",
        baseline,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("trigger", sa.String(40), nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("stats", sa.JSON),
    )
    return baseline


def upgrade() -> None:
    conn = op.get_bind()
    baseline = _baseline()
    baseline.create_all(conn)  # only the tables missing
    inspector = sa.inspect(conn)
    for table in baseline.sorted_tables:
        present = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present:
                op.add_column(table.name, column._copy())  # a copy: the column belongs to its table


def downgrade() -> None:
    _baseline().drop_all(op.get_bind())
