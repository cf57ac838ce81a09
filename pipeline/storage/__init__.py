"""The durable state: feeds, the entry queue, articles, clustering state, stories, the outbox, runs.

One code path (SQLAlchemy Core) over SQLite in WAL mode (the embedded default) and
PostgreSQL. Every method that writes does so in one transaction and is safe to repeat:
inserts are upserts or ``ON CONFLICT DO NOTHING``, so a run killed anywhere can simply
be run again.

One module per part of the state: ``schema`` (the tables), ``migrate`` (their
revisions, in ``migrations/``), ``base`` (connection, transactions, locks), ``feeds`` (feeds
and the entry queue), ``articles`` (articles and clustering state), ``stories`` (stories
and the outbox), ``runs``, ``domains`` (the per-domain request clock), ``counts`` (what
the store holds, for metrics), ``imports`` (how far each WARC import got), ``templates`` (the
outlets' template blocks). ``Store`` is the
one object the stages use.
"""

from __future__ import annotations

from pipeline.storage.articles import ArticleStore, NewArticle, Revision
from pipeline.storage.base import schema_revision, upgrade_schema
from pipeline.storage.counts import CountStore, StoreCounts
from pipeline.storage.domains import DomainClockStore
from pipeline.storage.feeds import FeedState, FeedStore, PendingEntry
from pipeline.storage.imports import WarcImportStore
from pipeline.storage.runs import RunRecord, RunStore
from pipeline.storage.stories import (
    ClusterPage,
    ClusterSummary,
    DeadLetter,
    OutboxItem,
    OutboxStatus,
    StoryFilter,
    StoryPage,
    StoryStore,
)

# The tables are in pipeline.storage.schema (their names would shadow the modules here).
__all__ = [
    "ClusterPage",
    "ClusterSummary",
    "DeadLetter",
    "FeedState",
    "NewArticle",
    "OutboxItem",
    "OutboxStatus",
    "PendingEntry",
    "Revision",
    "RunRecord",
    "Store",
    "StoreCounts",
    "StoryFilter",
    "StoryPage",
    "schema_revision",
    "upgrade_schema",
]


class Store(FeedStore, ArticleStore, StoryStore, RunStore, DomainClockStore, CountStore, WarcImportStore):
    """Durable pipeline state behind SQLAlchemy Core.

    Args:
        url: a SQLAlchemy URL; ``sqlite:///path`` or ``postgresql+psycopg://...``.
    """
