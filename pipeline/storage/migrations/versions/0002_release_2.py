"""The second release: feed tags, failure streaks and poll attempts, alert digests, outbox versions and dead letters, page claims,
run heartbeats, the shared politeness clock.

``outbox.seq`` becomes a store-wide version (BIGINT): the items already waiting get the
current time in microseconds, which is what the new code's versions start from, so they
are not taken for older than what the search index already holds.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from alembic import op

from pipeline.urls import feed_url_key

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('alert_digests',
    sa.Column('destination', sa.String(length=64), nullable=False),
    sa.Column('sent_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('destination')
    )
    op.create_table('dead_letters',
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('doc_id', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('failed_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('kind', 'doc_id')
    )
    op.create_table('domain_clock',
    sa.Column('domain', sa.String(length=255), nullable=False),
    sa.Column('next_start', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('domain')
    )
    op.create_table('outbox_seq',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('last', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('articles', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tags', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('agency', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('agency_credit', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('agency_rule', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('agency_evidence', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('page_published', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('page_modified', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('feed_published', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('paywalled', sa.Boolean(), nullable=True))

    with op.batch_alter_table('entries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claimed_by', sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column('lease_until', sa.DateTime(), nullable=True))

    with op.batch_alter_table('feeds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempt_key', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('failing_since', sa.DateTime(), nullable=True))

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.alter_column('seq',
               existing_type=sa.INTEGER(),
               type_=sa.BigInteger(),
               existing_nullable=False)

    op.execute(sa.text("UPDATE outbox SET seq = :now").bindparams(now=time.time_ns() // 1000))

    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('host', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('pid', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('heartbeat_at', sa.DateTime(), nullable=True))

    with op.batch_alter_table('stories', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tags', sa.JSON(), nullable=True))

    _feed_url_keys()
    _article_credits()


def downgrade() -> None:
    with op.batch_alter_table('feeds', schema=None) as batch_op:
        batch_op.drop_index('ix_feeds_url_key')
        batch_op.drop_column('url_key')

    with op.batch_alter_table('stories', schema=None) as batch_op:
        batch_op.drop_column('tags')

    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('heartbeat_at')
        batch_op.drop_column('pid')
        batch_op.drop_column('host')

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.alter_column('seq',
               existing_type=sa.BigInteger(),
               type_=sa.INTEGER(),
               existing_nullable=False)

    with op.batch_alter_table('feeds', schema=None) as batch_op:
        batch_op.drop_column('failing_since')
        batch_op.drop_column('attempt_key')

    with op.batch_alter_table('entries', schema=None) as batch_op:
        batch_op.drop_column('lease_until')
        batch_op.drop_column('claimed_by')

    with op.batch_alter_table('articles', schema=None) as batch_op:
        batch_op.drop_column('paywalled')
        batch_op.drop_column('feed_published')
        batch_op.drop_column('page_modified')
        batch_op.drop_column('page_published')
        batch_op.drop_column('agency_evidence')
        batch_op.drop_column('agency_rule')
        batch_op.drop_column('agency_credit')
        batch_op.drop_column('agency')
        batch_op.drop_column('tags')

    op.drop_table('outbox_seq')
    op.drop_table('domain_clock')
    op.drop_table('dead_letters')
    op.drop_table('alert_digests')


# -- feed identity by URL (issue 14) ---------------------------------------------------------


def _feed_url_keys() -> None:
    """``feeds.url_key``: what a feed list is matched to the stored feeds by, from now on.

    Stores before it kept a feed under the slug of its name, so a renamed feed left a row
    behind with the same URL. Of the rows sharing a URL, the one polled last keeps the key
    (it is the one the feed list names today, with the history that counts); the others keep
    NULL and are marked removed by the next sync of the feed list.
    """
    with op.batch_alter_table('feeds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('url_key', sa.Text(), nullable=True))
    conn = op.get_bind()
    owners: dict[str, Any] = {}
    for row in conn.execute(sa.text("SELECT id, url, last_attempt_at, entries_seen FROM feeds")):
        key = feed_url_key(row.url)
        rank = (row.last_attempt_at is not None, row.last_attempt_at or 0, row.entries_seen, row.id)
        if key is not None and (key not in owners or rank > owners[key][0]):
            owners[key] = (rank, row.id)
    update = sa.text("UPDATE feeds SET url_key = :key WHERE id = :id")
    for key, (_, feed_id) in owners.items():
        conn.execute(update, {"key": key, "id": feed_id})
    op.create_index('ix_feeds_url_key', 'feeds', ['url_key'], unique=True)


# -- agency credits per article (issue 15) ----------------------------------------------------


def _article_credits() -> None:
    """Credit the articles stored before credits were kept per article, as newsagg reads credits today.

    Stories took their agency from their members' text when they were built; now they take
    it from the members' stored credits, so without this a story rebuilt after the upgrade
    would lose the agency of its older members.
    """
    from pipeline.agency import detect_credit

    conn = op.get_bind()
    select = sa.text("SELECT id, text, author FROM articles WHERE id > :after ORDER BY id LIMIT 1000")
    update = sa.text(
        "UPDATE articles SET agency = :agency, agency_credit = :kind, agency_rule = :rule, "
        "agency_evidence = :evidence WHERE id = :id"
    )
    after = ""
    while rows := list(conn.execute(select, {"after": after})):
        credited = [(row.id, detect_credit(row.text, row.author)) for row in rows]
        changes = [
            {"id": article_id, "agency": c.agency, "kind": c.kind, "rule": c.rule, "evidence": c.evidence}
            for article_id, c in credited
            if c is not None
        ]
        if changes:
            conn.execute(update, changes)
        after = rows[-1].id
