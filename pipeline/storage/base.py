"""The store's connection: engine, transactions, cross-process locks, and the helpers every part shares."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from pipeline.errors import StoreError
from pipeline.storage.schema import metadata, outbox, outbox_seq

log = logging.getLogger(__name__)
_Row = TypeVar("_Row")  # what a row is built into

# Inserts report how many rows they added (ON CONFLICT DO NOTHING counts 0); SQLAlchemy keeps
# the DBAPI's rowcount of an INSERT only when asked, and psycopg's is otherwise lost (-1).
_ROWCOUNT = {"preserve_rowcount": True}

# PostgreSQL advisory lock keys ("newsag" + a number), one per kind of exclusive work.
_SCHEMA_LOCK = 0x6E6577736167_01
_LOCKS = {"clusters": 0x6E6577736167_02}


def utc_now() -> datetime:
    return datetime.now(UTC)


class StoreBase:
    """The connection to one store, shared by the parts of ``Store``.

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

    def _rows_by(
        self, table: sa.Table, key: sa.Column[Any], ids: Iterable[str], build: Callable[[Any], _Row]
    ) -> dict[str, _Row]:
        """The rows whose ``key`` is one of ``ids``, built, by key (ids in chunks any database accepts)."""
        found: dict[str, _Row] = {}
        with self.engine.connect() as conn:
            for chunk in chunks(list(ids), 500):
                for row in conn.execute(sa.select(table).where(key.in_(chunk))).mappings():
                    found[row[key.name]] = build(row)
        return found
    def _next_seq(self, conn: Connection) -> int:
        """The outbox sequence number of what this transaction queues; call it before the transaction's first write.

        Numbers grow in commit order, which makes them usable as external versions in the
        search index: the counter row stays locked until the transaction ends (PostgreSQL;
        SQLite has one writer at a time anyway), so a transaction that queues a document
        after another has committed gets a larger number. Taken first, before any other row
        lock, it cannot deadlock with the other transactions that queue documents. A number
        is never below the clock in microseconds, so it also exceeds what an index holds from
        before: versions Elasticsearch assigned itself, or those of an earlier, wiped store.
        """
        now = time.time_ns() // 1000
        bump = (
            outbox_seq.update()
            .where(outbox_seq.c.id == 1)
            .values(last=sa.case((outbox_seq.c.last < now, now), else_=outbox_seq.c.last + 1))
            .returning(outbox_seq.c.last)
        )
        seq = conn.execute(bump).scalar()
        if seq is None:  # a new store
            conn.execute(self._insert(outbox_seq).values(id=1, last=now).on_conflict_do_nothing())
            seq = conn.execute(bump).scalar_one()
        return int(seq)

    def _enqueue(self, conn: Connection, seq: int, kind: str, doc_id: str, *, deleted: bool) -> None:
        """Queue a document for the search index under ``seq`` (from ``_next_seq`` in the same transaction)."""
        if self._enqueue_stmt is None:  # built once: building it cost more than running it
            stmt = self._insert(outbox)
            self._enqueue_stmt = stmt.on_conflict_do_update(
                index_elements=["kind", "doc_id"],
                set_={"seq": stmt.excluded.seq, "deleted": stmt.excluded.deleted, "attempts": 0, "last_error": None},
            )
        conn.execute(self._enqueue_stmt, {"kind": kind, "doc_id": doc_id, "seq": seq, "deleted": deleted, "attempts": 0})
    def compact(self) -> None:
        """Reclaim space (SQLite VACUUM; PostgreSQL's autovacuum does this itself)."""
        if self.engine.dialect.name == "sqlite":
            with self.engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM")


def chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
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
