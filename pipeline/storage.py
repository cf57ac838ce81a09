"""The durable state: feeds, the entry queue, articles, clustering state, stories, the outbox, runs.

One code path (SQLAlchemy Core) over SQLite in WAL mode (the embedded default) and
PostgreSQL. Every method that writes does so in one transaction and is safe to repeat:
inserts are upserts or ``ON CONFLICT DO NOTHING``, so a run killed anywhere can simply
be run again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from pipeline.errors import StoreError
from pipeline.models import (
    Article,
    Assignment,
    FeedEntry,
    FeedSource,
    Membership,
    Signature,
    Source,
    Story,
    TextSource,
    Validators,
)

log = logging.getLogger(__name__)
_Row = TypeVar("_Row")  # what a row is built into


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite as on PostgreSQL."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to the store")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class CleanText(sa.types.TypeDecorator[str]):
    """Text without NUL characters: PostgreSQL refuses them in text, so neither database gets them."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: sa.Dialect) -> str | None:
        return None if value is None else value.replace("\x00", "")


metadata = sa.MetaData()

feeds = sa.Table(
    "feeds",
    metadata,
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("name", CleanText, nullable=False),
    sa.Column("url", CleanText, nullable=False),
    sa.Column("language", sa.String(20)),
    sa.Column("tags", sa.JSON, nullable=False, default=list),
    sa.Column("poll_interval", sa.Integer),
    sa.Column("etag", CleanText),
    sa.Column("last_modified", CleanText),
    sa.Column("status", sa.String(20), nullable=False, default="active"),
    sa.Column("consecutive_failures", sa.Integer, nullable=False, default=0),
    sa.Column("last_error", CleanText),
    sa.Column("last_attempt_at", UTCDateTime),
    sa.Column("last_success_at", UTCDateTime),
    sa.Column("next_attempt_at", UTCDateTime),
    sa.Column("entries_seen", sa.Integer, nullable=False, default=0),
    # Feed health and adaptive polling (stores created before these columns gain them on open).
    sa.Column("failure_score", sa.Float, nullable=False, default=0.0, server_default="0"),
    sa.Column("learned_interval", sa.Integer),
    sa.Column("last_new_entry_at", UTCDateTime),
    sa.Column("alerted_status", sa.String(20)),
)

entries = sa.Table(
    "entries",
    metadata,
    sa.Column("url", CleanText, primary_key=True),
    sa.Column("feed_id", sa.String(200), nullable=False, index=True),
    sa.Column("title", CleanText, nullable=False),
    sa.Column("summary", CleanText),
    sa.Column("content", CleanText),
    sa.Column("author", CleanText),
    sa.Column("published", UTCDateTime),
    sa.Column("guid", CleanText),
    sa.Column("discovered_at", UTCDateTime, nullable=False),
    sa.Column("state", sa.String(20), nullable=False, default="pending", index=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_error", CleanText),
)

articles = sa.Table(
    "articles",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("url", CleanText, nullable=False, unique=True),
    sa.Column("feed_id", sa.String(200)),
    sa.Column("outlet", CleanText, nullable=False),
    sa.Column("title", CleanText, nullable=False),
    sa.Column("text", CleanText, nullable=False),
    sa.Column("author", CleanText),
    sa.Column("published", UTCDateTime),
    sa.Column("fetched_at", UTCDateTime, nullable=False),
    sa.Column("arrived_at", UTCDateTime, nullable=False, index=True),
    sa.Column("language", sa.String(20)),
    sa.Column("text_source", sa.String(20), nullable=False),
    sa.Column("text_source_reason", CleanText),
)

signatures = sa.Table(
    "signatures",
    metadata,
    sa.Column("article_id", sa.String(64), primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False, index=True),
)

memberships = sa.Table(
    "memberships",
    metadata,
    sa.Column("article_id", sa.String(64), primary_key=True),
    sa.Column("cluster_id", sa.String(64), nullable=False, index=True),
    sa.Column("matched_article_id", sa.String(64)),
    sa.Column("jaccard", sa.Float),
    sa.Column("containment", sa.Float),
)

cluster_aliases = sa.Table(
    "cluster_aliases",
    metadata,
    sa.Column("absorbed_id", sa.String(64), primary_key=True),
    sa.Column("survivor_id", sa.String(64), nullable=False),
)

# Clusters whose merged story must be rebuilt; written with the memberships that changed them.
dirty_clusters = sa.Table(
    "dirty_clusters",
    metadata,
    sa.Column("cluster_id", sa.String(64), primary_key=True),
)

stories = sa.Table(
    "stories",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("title", CleanText, nullable=False),
    sa.Column("text", CleanText, nullable=False),
    sa.Column("summary", CleanText, nullable=False),
    sa.Column("sources", sa.JSON, nullable=False),
    sa.Column("article_count", sa.Integer, nullable=False, index=True),
    sa.Column("outlet_count", sa.Integer, nullable=False),
    sa.Column("first_seen", UTCDateTime, nullable=False),
    sa.Column("last_seen", UTCDateTime, nullable=False, index=True),
    sa.Column("language", sa.String(20)),
    sa.Column("agency", sa.String(40)),
)

# What the search index still has to receive. `seq` grows on every enqueue, so a document
# changed again while a batch was in flight is not dropped when that batch completes.
outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("kind", sa.String(10), primary_key=True),
    sa.Column("doc_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_error", CleanText),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("trigger", sa.String(40), nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("stats", sa.JSON),
)


@dataclass(frozen=True, slots=True)
class FeedState:
    """A feed with its polling state, as `newsagg feeds status` shows it."""

    source: FeedSource
    validators: Validators
    status: Literal["active", "failing", "retired"]
    consecutive_failures: int
    last_error: str | None
    last_attempt_at: datetime | None
    last_success_at: datetime | None
    next_attempt_at: datetime | None
    entries_seen: int
    failure_score: float = 0.0  # consecutive failures weighted by kind (polling.failure_weight)
    learned_interval: int | None = None  # seconds, from how often the feed publishes (polling.adapt_interval)
    last_new_entry_at: datetime | None = None  # the last poll that found entries never seen before
    alerted_status: str | None = None  # the status last reported by an alert (None: never alerted, active)


@dataclass(frozen=True, slots=True)
class PendingEntry:
    """A feed entry whose page still has to be fetched, with the outlet it came from."""

    entry: FeedEntry
    outlet: str
    attempts: int


@dataclass(frozen=True, slots=True)
class OutboxItem:
    kind: Literal["story", "article"]
    doc_id: str
    seq: int
    deleted: bool


@dataclass(frozen=True, slots=True)
class ClusterSummary:
    id: str
    title: str
    article_count: int
    outlet_count: int
    first_seen: datetime
    last_seen: datetime
    agency: str | None


# Inserts report how many rows they added (ON CONFLICT DO NOTHING counts 0); SQLAlchemy keeps
# the DBAPI's rowcount of an INSERT only when asked, and psycopg's is otherwise lost (-1).
_ROWCOUNT = {"preserve_rowcount": True}

# PostgreSQL advisory lock keys ("newsag" + a number), one per kind of exclusive work.
_SCHEMA_LOCK = 0x6E6577736167_01
_LOCKS = {"clusters": 0x6E6577736167_02}


def _now() -> datetime:
    return datetime.now(UTC)


class Store:
    """Durable pipeline state behind SQLAlchemy Core.

    Args:
        url: a SQLAlchemy URL; ``sqlite:///path`` or ``postgresql+psycopg://...``.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._enqueue_stmt: Any = None
        try:
            self.engine = self._create_engine(url)
            with self.engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    # Workers starting at once on a new database must not both create the tables.
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_SCHEMA_LOCK)))
                metadata.create_all(conn)
            self._add_missing_columns()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open the store at {_redact(url)}: {_reason(exc)}") from None

    @staticmethod
    def _create_engine(url: str) -> Engine:
        if url.startswith("sqlite"):
            database = sa.make_url(url).database
            if database and database != ":memory:":
                path = Path(database)
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise StoreError(f"cannot create the data directory {path.parent}: {exc.strerror}") from None
            engine = sa.create_engine(url, connect_args={"timeout": 30}, execution_options=_ROWCOUNT)

            @sa.event.listens_for(engine, "connect")
            def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
                # WAL lets readers (search, status) run while a stage writes; NORMAL is
                # durable across process kills, which is the failure we design for.
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.execute("PRAGMA busy_timeout=30000")
                cursor.close()

            return engine
        return sa.create_engine(url, pool_pre_ping=True, execution_options=_ROWCOUNT)

    def close(self) -> None:
        self.engine.dispose()

    def _add_missing_columns(self) -> None:
        """Add columns defined after a store was created (``create_all`` only creates whole tables)."""
        for table in metadata.sorted_tables:
            present = {c["name"] for c in sa.inspect(self.engine).get_columns(table.name)}
            for column in table.columns:
                if column.name in present:
                    continue
                ddl = sa.schema.CreateColumn(column).compile(dialect=self.engine.dialect)
                try:
                    with self.engine.begin() as conn:
                        conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {ddl}")
                    log.info("store: added column %s.%s", table.name, column.name)
                except SQLAlchemyError:
                    # Another worker may have added it first.
                    if column.name not in {c["name"] for c in sa.inspect(self.engine).get_columns(table.name)}:
                        raise

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except OperationalError as exc:
            raise StoreError(f"store write failed ({_redact(self.url)}): {_reason(exc)}") from None

    @contextmanager
    def exclusive(self, name: Literal["clusters"]) -> Iterator[None]:
        """Hold a lock shared by every process using this store, around work that must not run twice at once.

        Clustering decides memberships from the state it restored, and building stories reads
        memberships then clears the dirty marks: run by two workers at once, each would miss the
        other's articles (splitting clusters) or clear a mark set after it read (a stale story).
        On PostgreSQL the lock is a transaction-scoped advisory lock on a connection of its own,
        released when the work ends or its process dies; on SQLite a file lock beside the database.
        """
        if self.engine.dialect.name == "postgresql":
            key = _LOCKS[name]
            try:
                conn = self.engine.connect()
                transaction = conn.begin()
                if not conn.execute(sa.select(sa.func.pg_try_advisory_xact_lock(key))).scalar():
                    log.info("waiting for another worker to finish %s work on %s", name, _redact(self.url))
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))
            except OperationalError as exc:
                raise StoreError(f"cannot lock the store ({_redact(self.url)}): {_reason(exc)}") from None
            try:
                yield
            finally:
                with suppress(SQLAlchemyError):
                    transaction.rollback()  # releases the lock; nothing was written on this connection
                with suppress(SQLAlchemyError):
                    conn.close()
            return
        database = self.engine.url.database
        if not database or database == ":memory:":
            yield
            return
        import fcntl

        with open(f"{database}.{name}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def _insert(self, table: sa.Table) -> Any:
        """An INSERT that knows ON CONFLICT on both dialects."""
        if self.engine.dialect.name == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    # -- feeds ---------------------------------------------------------------------

    def sync_feeds(self, sources: Sequence[FeedSource]) -> None:
        """Add or update configured feeds, keeping each feed's polling state."""
        with self._tx() as conn:
            for src in sources:
                values = {
                    "id": src.id,
                    "name": src.name,
                    "url": src.url,
                    "language": src.language,
                    "tags": list(src.tags),
                    "poll_interval": src.poll_interval,
                }
                stmt = self._insert(feeds).values(**values, status="active", consecutive_failures=0, entries_seen=0)
                conn.execute(stmt.on_conflict_do_update(index_elements=["id"], set_=values))

    def feed_states(self, ids: Iterable[str] | None = None) -> list[FeedState]:
        query = sa.select(feeds).order_by(feeds.c.id)
        if ids is not None:
            query = query.where(feeds.c.id.in_(list(ids)))
        with self.engine.connect() as conn:
            return [_feed_state(row) for row in conn.execute(query).mappings()]

    def feed_state(self, feed_id: str) -> FeedState | None:
        states = self.feed_states([feed_id])
        return states[0] if states else None

    def record_feed_fetched(
        self,
        feed_id: str,
        new_entries: Sequence[FeedEntry],
        validators: Validators,
        *,
        now: datetime,
        next_attempt_at: datetime,
        error: str | None = None,
        learned_interval: int | None = None,
    ) -> int:
        """Queue a feed's entries (unseen ones only) and remember its validators; returns how many were new.

        The feed's failure count and score are reset; ``learned_interval`` (when given)
        replaces the learned polling interval; a poll that found new entries is remembered
        as the last one that did.
        """
        with self._tx() as conn:
            added = 0
            # One statement for every entry: building a statement per row cost more than running it.
            insert = self._insert(entries).on_conflict_do_nothing(index_elements=["url"])
            for entry in new_entries:
                row = {
                    "url": entry.url,
                    "feed_id": entry.feed_id,
                    "title": entry.title,
                    "summary": entry.summary,
                    "content": entry.content,
                    "author": entry.author,
                    "published": entry.published,
                    "guid": entry.guid,
                    "discovered_at": now,
                    "state": "pending",
                    "attempts": 0,
                }
                added += conn.execute(insert, row).rowcount
            conn.execute(
                feeds.update()
                .where(feeds.c.id == feed_id)
                .values(
                    etag=validators.etag,
                    last_modified=validators.last_modified,
                    status="active",
                    consecutive_failures=0,
                    last_error=error,
                    last_attempt_at=now,
                    last_success_at=now,
                    next_attempt_at=next_attempt_at,
                    entries_seen=feeds.c.entries_seen + added,
                    failure_score=0.0,
                    last_new_entry_at=now if added else feeds.c.last_new_entry_at,
                    learned_interval=feeds.c.learned_interval if learned_interval is None else learned_interval,
                )
            )
        return added

    def record_feed_failure(
        self,
        feed_id: str,
        error: str,
        *,
        now: datetime,
        next_attempt_at: datetime | None,
        retire: bool,
        weight: float = 1.0,
    ) -> FeedState:
        """Count a failed poll (``weight`` is added to the failure score); returns the feed's new state."""
        with self._tx() as conn:
            conn.execute(
                feeds.update()
                .where(feeds.c.id == feed_id)
                .values(
                    status="retired" if retire else "failing",
                    consecutive_failures=feeds.c.consecutive_failures + 1,
                    failure_score=feeds.c.failure_score + weight,
                    last_error=error,
                    last_attempt_at=now,
                    next_attempt_at=None if retire else next_attempt_at,
                )
            )
        state = self.feed_state(feed_id)
        assert state is not None
        return state

    def record_feed_alerted(self, feed_id: str, status: str) -> None:
        """Remember the feed status an alert reported, so each change is reported once."""
        with self._tx() as conn:
            conn.execute(feeds.update().where(feeds.c.id == feed_id).values(alerted_status=status))

    def unseen_entry_count(self, urls: Iterable[str]) -> int:
        """How many of these entry URLs were never queued before."""
        wanted = set(urls)
        seen = 0
        with self.engine.connect() as conn:
            for chunk in _chunks(sorted(wanted), 500):
                seen += int(
                    conn.execute(
                        sa.select(sa.func.count()).select_from(entries).where(entries.c.url.in_(chunk))
                    ).scalar_one()
                )
        return len(wanted) - seen

    # -- entries -------------------------------------------------------------------

    def pending_entries(self, limit: int, max_attempts: int = 3) -> list[PendingEntry]:
        query = (
            sa.select(entries, feeds.c.name)
            .join(feeds, feeds.c.id == entries.c.feed_id)
            .where(entries.c.state == "pending", entries.c.attempts < max_attempts)
            .order_by(entries.c.discovered_at, entries.c.url)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [
                PendingEntry(
                    entry=FeedEntry(
                        feed_id=row["feed_id"],
                        url=row["url"],
                        title=row["title"],
                        summary=row["summary"],
                        content=row["content"],
                        author=row["author"],
                        published=row["published"],
                        guid=row["guid"],
                    ),
                    outlet=row["name"],
                    attempts=row["attempts"],
                )
                for row in conn.execute(query).mappings()
            ]

    def save_article(self, article: Article) -> bool:
        """Store an article and close its entry; returns False when the article was already stored."""
        with self._tx() as conn:
            stmt = self._insert(articles).values(
                id=article.id,
                url=article.url,
                feed_id=article.feed_id,
                outlet=article.outlet,
                title=article.title,
                text=article.text,
                author=article.author,
                published=article.published,
                fetched_at=article.fetched_at,
                arrived_at=article.arrival_key[0],
                language=article.language,
                text_source=article.text_source.value,
                text_source_reason=article.text_source_reason,
            )
            added = conn.execute(stmt.on_conflict_do_nothing()).rowcount > 0
            conn.execute(entries.update().where(entries.c.url == article.url).values(state="done"))
        return added

    def record_entry_failure(self, url: str, reason: str, *, final: bool) -> None:
        with self._tx() as conn:
            conn.execute(
                entries.update()
                .where(entries.c.url == url)
                .values(
                    attempts=entries.c.attempts + 1,
                    last_error=reason,
                    state="failed" if final else "pending",
                )
            )

    def entry_counts(self) -> dict[str, int]:
        query = sa.select(entries.c.state, sa.func.count()).group_by(entries.c.state)
        with self.engine.connect() as conn:
            rows: list[Any] = list(conn.execute(query))
        return {row[0]: row[1] for row in rows}

    # -- articles and clustering ----------------------------------------------------

    def oldest_unclustered_arrival(self) -> datetime | None:
        query = (
            sa.select(sa.func.min(articles.c.arrived_at))
            .outerjoin(memberships, memberships.c.article_id == articles.c.id)
            .where(memberships.c.article_id.is_(None))
        )
        with self.engine.connect() as conn:
            value = conn.execute(query).scalar()
        # Aggregates bypass the column type on SQLite, so the value may come back naive.
        return None if value is None else UTCDateTime().process_result_value(value, self.engine.dialect)

    def unclustered_articles(self, limit: int) -> list[Article]:
        """Articles not yet clustered, in arrival order."""
        query = (
            sa.select(articles)
            .outerjoin(memberships, memberships.c.article_id == articles.c.id)
            .where(memberships.c.article_id.is_(None))
            .order_by(articles.c.arrived_at, articles.c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [_article(row) for row in conn.execute(query).mappings()]

    def articles_by_id(self, ids: Iterable[str]) -> dict[str, Article]:
        return self._rows_by(articles, articles.c.id, ids, _article)

    def article_count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(articles)).scalar_one())

    def clustering_state(
        self, since: datetime
    ) -> tuple[list[Signature], list[Membership], dict[str, str]]:
        """What the clustering engine needs to resume: the window's signatures and memberships, and aliases."""
        with self.engine.connect() as conn:
            sigs = [
                Signature(article_id=row.article_id, data=row.data, at=row.at)
                for row in conn.execute(
                    sa.select(signatures).where(signatures.c.at >= since).order_by(signatures.c.at)
                )
            ]
            ids = [s.article_id for s in sigs]
            members: list[Membership] = []
            for chunk in _chunks(ids, 500):
                members.extend(
                    _membership(row)
                    for row in conn.execute(
                        sa.select(memberships).where(memberships.c.article_id.in_(chunk))
                    ).mappings()
                )
            aliases = {
                row.absorbed_id: row.survivor_id for row in conn.execute(sa.select(cluster_aliases))
            }
        return sigs, members, aliases

    def save_assignments(self, assignments: Sequence[Assignment]) -> None:
        """Persist clustering decisions: signatures, memberships, merges, and which stories to rebuild."""
        # Statements built once for the batch (building one per row cost more than running it).
        sign = self._insert(signatures).on_conflict_do_nothing()
        member_of = self._insert(memberships)
        member_of = member_of.on_conflict_do_update(
            index_elements=["article_id"],
            set_={name: member_of.excluded[name] for name in ("cluster_id", "matched_article_id", "jaccard", "containment")},
        )
        dirty = self._insert(dirty_clusters).on_conflict_do_nothing()
        with self._tx() as conn:
            for assignment in assignments:
                member = assignment.membership
                sig = assignment.signature
                conn.execute(sign, {"article_id": sig.article_id, "data": sig.data, "at": sig.at})
                conn.execute(
                    member_of,
                    {
                        "article_id": member.article_id,
                        "cluster_id": member.cluster_id,
                        "matched_article_id": member.matched_article_id,
                        "jaccard": member.jaccard,
                        "containment": member.containment,
                    },
                )
                for absorbed in assignment.absorbed:
                    self._absorb(conn, absorbed, member.cluster_id)
                conn.execute(dirty, {"cluster_id": member.cluster_id})
                self._enqueue(conn, "article", member.article_id, deleted=False)

    def _absorb(self, conn: Connection, absorbed: str, survivor: str) -> None:
        moved = [
            row.article_id
            for row in conn.execute(
                sa.select(memberships.c.article_id).where(memberships.c.cluster_id == absorbed)
            )
        ]
        conn.execute(memberships.update().where(memberships.c.cluster_id == absorbed).values(cluster_id=survivor))
        # Earlier aliases pointing at the absorbed cluster now resolve to the survivor directly.
        conn.execute(
            cluster_aliases.update().where(cluster_aliases.c.survivor_id == absorbed).values(survivor_id=survivor)
        )
        conn.execute(
            self._insert(cluster_aliases)
            .values(absorbed_id=absorbed, survivor_id=survivor)
            .on_conflict_do_update(index_elements=["absorbed_id"], set_={"survivor_id": survivor})
        )
        conn.execute(self._insert(dirty_clusters).values(cluster_id=absorbed).on_conflict_do_nothing())
        for article_id in moved:
            self._enqueue(conn, "article", article_id, deleted=False)

    def resolve_cluster(self, cluster_id: str) -> str:
        with self.engine.connect() as conn:
            survivor = conn.execute(
                sa.select(cluster_aliases.c.survivor_id).where(cluster_aliases.c.absorbed_id == cluster_id)
            ).scalar()
        return survivor or cluster_id

    def memberships_of(self, cluster_id: str) -> list[Membership]:
        query = (
            sa.select(memberships)
            .join(articles, articles.c.id == memberships.c.article_id)
            .where(memberships.c.cluster_id == cluster_id)
            .order_by(articles.c.arrived_at, articles.c.id)
        )
        with self.engine.connect() as conn:
            return [_membership(row) for row in conn.execute(query).mappings()]

    def membership(self, article_id: str) -> Membership | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(memberships).where(memberships.c.article_id == article_id)).mappings().first()
        return None if row is None else _membership(row)

    def memberships_by_article(self, ids: Iterable[str]) -> dict[str, Membership]:
        """The memberships of these articles (those that have one), by article id."""
        return self._rows_by(memberships, memberships.c.article_id, ids, _membership)

    def cluster_ids(self) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(memberships.c.cluster_id).distinct().order_by(memberships.c.cluster_id)).scalars())

    # -- stories ---------------------------------------------------------------------

    def dirty_cluster_ids(self, limit: int) -> list[str]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(sa.select(dirty_clusters.c.cluster_id).order_by(dirty_clusters.c.cluster_id).limit(limit)).scalars()
            )

    def save_stories(self, built: Sequence[Story], removed: Sequence[str]) -> None:
        """Upsert rebuilt stories, drop stories of clusters that no longer exist, queue both for indexing."""
        with self._tx() as conn:
            for story in built:
                values = _story_row(story)
                conn.execute(
                    self._insert(stories)
                    .values(id=story.id, **values)
                    .on_conflict_do_update(index_elements=["id"], set_=values)
                )
                self._enqueue(conn, "story", story.id, deleted=False)
            for story_id in removed:
                conn.execute(stories.delete().where(stories.c.id == story_id))
                self._enqueue(conn, "story", story_id, deleted=True)
            done = [s.id for s in built] + list(removed)
            for chunk in _chunks(done, 500):
                conn.execute(dirty_clusters.delete().where(dirty_clusters.c.cluster_id.in_(chunk)))

    def story(self, story_id: str) -> Story | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(stories).where(stories.c.id == story_id)).mappings().first()
        return None if row is None else _story(row)

    def stories_by_id(self, ids: Iterable[str]) -> dict[str, Story]:
        return self._rows_by(stories, stories.c.id, ids, _story)

    def _rows_by(
        self, table: sa.Table, key: sa.Column[Any], ids: Iterable[str], build: Callable[[Any], _Row]
    ) -> dict[str, _Row]:
        """The rows whose ``key`` is one of ``ids``, built, by key (ids in chunks any database accepts)."""
        found: dict[str, _Row] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(list(ids), 500):
                for row in conn.execute(sa.select(table).where(key.in_(chunk))).mappings():
                    found[row[key.name]] = build(row)
        return found

    def cluster_summaries(self, limit: int, min_articles: int = 1) -> list[ClusterSummary]:
        """Stories, largest and newest first."""
        query = (
            sa.select(stories)
            .where(stories.c.article_count >= min_articles)
            .order_by(stories.c.article_count.desc(), stories.c.last_seen.desc(), stories.c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [
                ClusterSummary(
                    id=row["id"],
                    title=row["title"],
                    article_count=row["article_count"],
                    outlet_count=row["outlet_count"],
                    first_seen=row["first_seen"],
                    last_seen=row["last_seen"],
                    agency=row["agency"],
                )
                for row in conn.execute(query).mappings()
            ]

    # -- outbox ----------------------------------------------------------------------

    def _enqueue(self, conn: Connection, kind: str, doc_id: str, *, deleted: bool) -> None:
        if self._enqueue_stmt is None:  # built once: building it cost more than running it
            stmt = self._insert(outbox)
            self._enqueue_stmt = stmt.on_conflict_do_update(
                index_elements=["kind", "doc_id"],
                set_={"seq": outbox.c.seq + 1, "deleted": stmt.excluded.deleted, "attempts": 0, "last_error": None},
            )
        conn.execute(self._enqueue_stmt, {"kind": kind, "doc_id": doc_id, "seq": 1, "deleted": deleted, "attempts": 0})

    def outbox_batch(self, limit: int, after: tuple[str, str] | None = None) -> list[OutboxItem]:
        """The next items to index, in (kind, id) order after ``after``: articles before stories."""
        query = sa.select(outbox).order_by(outbox.c.kind, outbox.c.doc_id).limit(limit)
        if after is not None:
            query = query.where(sa.tuple_(outbox.c.kind, outbox.c.doc_id) > sa.tuple_(*after))
        with self.engine.connect() as conn:
            return [
                OutboxItem(kind=row["kind"], doc_id=row["doc_id"], seq=row["seq"], deleted=row["deleted"])
                for row in conn.execute(query).mappings()
            ]

    def outbox_size(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(outbox)).scalar_one())

    def outbox_done(self, items: Sequence[OutboxItem]) -> None:
        """Forget delivered items, unless they changed again while in flight."""
        if not items:
            return
        delete = outbox.delete().where(
            outbox.c.kind == sa.bindparam("item_kind"),
            outbox.c.doc_id == sa.bindparam("item_id"),
            outbox.c.seq == sa.bindparam("item_seq"),
        )
        with self._tx() as conn:
            conn.execute(delete, [{"item_kind": i.kind, "item_id": i.doc_id, "item_seq": i.seq} for i in items])

    def outbox_failed(self, failed: Sequence[tuple[OutboxItem, str]]) -> None:
        with self._tx() as conn:
            for item, reason in failed:
                conn.execute(
                    outbox.update()
                    .where(outbox.c.kind == item.kind, outbox.c.doc_id == item.doc_id)
                    .values(attempts=outbox.c.attempts + 1, last_error=reason)
                )

    # -- runs --------------------------------------------------------------------------

    def start_run(self, trigger: str) -> int:
        with self._tx() as conn:
            result = conn.execute(runs.insert().values(trigger=trigger, started_at=_now(), status="running"))
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])

    def finish_run(self, run_id: int, status: str, stats: dict[str, Any]) -> None:
        with self._tx() as conn:
            conn.execute(
                runs.update()
                .where(runs.c.id == run_id)
                .values(finished_at=_now(), status=status, stats=json.loads(json.dumps(stats, default=str)))
            )

    # -- maintenance -------------------------------------------------------------------

    def drop_signatures_before(self, cutoff: datetime) -> int:
        """Articles older than the matching window leave the clustering state (they stay stored)."""
        with self._tx() as conn:
            return int(conn.execute(signatures.delete().where(signatures.c.at < cutoff)).rowcount)

    def compact(self) -> None:
        """Reclaim space (SQLite VACUUM; PostgreSQL's autovacuum does this itself)."""
        if self.engine.dialect.name == "sqlite":
            with self.engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM")

    def prune_stories_before(self, cutoff: datetime, limit: int = 500) -> tuple[int, int]:
        """Delete up to ``limit`` stories last seen before ``cutoff``, with their articles; returns (stories, articles).

        Their memberships, signatures and aliases go too, and the search index is told to
        drop both (outbox). Feed entries stay, so a feed still listing an old URL does not
        bring the article back. Call repeatedly until it returns (0, 0).
        """
        with self._tx() as conn:
            story_ids: list[str] = list(
                conn.execute(
                    sa.select(stories.c.id).where(stories.c.last_seen < cutoff).order_by(stories.c.id).limit(limit)
                ).scalars()
            )
            article_ids: list[str] = list(
                conn.execute(
                    sa.select(memberships.c.article_id).where(memberships.c.cluster_id.in_(story_ids))
                ).scalars()
            ) if story_ids else []
            for chunk in _chunks(article_ids, 500):
                conn.execute(signatures.delete().where(signatures.c.article_id.in_(chunk)))
                conn.execute(memberships.delete().where(memberships.c.article_id.in_(chunk)))
                conn.execute(articles.delete().where(articles.c.id.in_(chunk)))
            for article_id in article_ids:
                self._enqueue(conn, "article", article_id, deleted=True)
            if story_ids:
                conn.execute(cluster_aliases.delete().where(cluster_aliases.c.survivor_id.in_(story_ids)))
                conn.execute(dirty_clusters.delete().where(dirty_clusters.c.cluster_id.in_(story_ids)))
                conn.execute(stories.delete().where(stories.c.id.in_(story_ids)))
            for story_id in story_ids:
                self._enqueue(conn, "story", story_id, deleted=True)
        return len(story_ids), len(article_ids)


def _feed_state(row: Any) -> FeedState:
    return FeedState(
        source=FeedSource(
            id=row["id"],
            name=row["name"],
            url=row["url"],
            language=row["language"],
            tags=tuple(row["tags"] or ()),
            poll_interval=row["poll_interval"],
        ),
        validators=Validators(etag=row["etag"], last_modified=row["last_modified"]),
        status=row["status"],
        consecutive_failures=row["consecutive_failures"],
        last_error=row["last_error"],
        last_attempt_at=row["last_attempt_at"],
        last_success_at=row["last_success_at"],
        next_attempt_at=row["next_attempt_at"],
        entries_seen=row["entries_seen"],
        failure_score=row["failure_score"],
        learned_interval=row["learned_interval"],
        last_new_entry_at=row["last_new_entry_at"],
        alerted_status=row["alerted_status"],
    )


def _article(row: Any) -> Article:
    return Article(
        id=row["id"],
        url=row["url"],
        outlet=row["outlet"],
        title=row["title"],
        text=row["text"],
        published=row["published"],
        fetched_at=row["fetched_at"],
        text_source=TextSource(row["text_source"]),
        feed_id=row["feed_id"],
        author=row["author"],
        language=row["language"],
        text_source_reason=row["text_source_reason"],
    )


def _membership(row: Any) -> Membership:
    return Membership(
        article_id=row["article_id"],
        cluster_id=row["cluster_id"],
        matched_article_id=row["matched_article_id"],
        jaccard=row["jaccard"],
        containment=row["containment"],
    )


def _story_row(story: Story) -> dict[str, Any]:
    return {
        "title": story.title,
        "text": story.text,
        "summary": story.summary,
        "sources": [
            {
                "article_id": s.article_id,
                "outlet": s.outlet,
                "url": s.url,
                "title": s.title,
                "published": s.published.isoformat() if s.published else None,
            }
            for s in story.sources
        ],
        "article_count": story.article_count,
        "outlet_count": story.outlet_count,
        "first_seen": story.first_seen,
        "last_seen": story.last_seen,
        "language": story.language,
        "agency": story.agency,
    }


def _story(row: Any) -> Story:
    return Story(
        id=row["id"],
        title=row["title"],
        text=row["text"],
        summary=row["summary"],
        sources=tuple(
            Source(
                article_id=s["article_id"],
                outlet=s["outlet"],
                url=s["url"],
                title=s["title"],
                published=datetime.fromisoformat(s["published"]) if s["published"] else None,
            )
            for s in row["sources"]
        ),
        first_seen=row["first_seen"],
        last_seen=row["last_seen"],
        language=row["language"],
        agency=row["agency"],
    )


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _redact(url: str) -> str:
    """The store URL without its password."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is still not echoed with secrets
        return "<store url>"


def _reason(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig or exc).splitlines()[0]
