"""The store's connection: engine, transactions, cross-process locks, and the helpers every part shares."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

from pipeline.errors import StoreError
from pipeline.storage import migrate
from pipeline.storage.schema import outbox

log = logging.getLogger(__name__)
_Row = TypeVar("_Row")  # what a row is built into

# Inserts report how many rows they added (ON CONFLICT DO NOTHING counts 0); SQLAlchemy keeps
# the DBAPI's rowcount of an INSERT only when asked, and psycopg's is otherwise lost (-1).
_ROWCOUNT = {"preserve_rowcount": True}

# PostgreSQL advisory lock keys ("newsag" + a number), one per kind of exclusive work
# (01 is the schema's, in migrate.py).
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
            try:
                migrate.prepare(self.engine)
            except BaseException:
                self.engine.dispose()  # a store that cannot be used keeps no connection open
                raise
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
                # pysqlite would begin a transaction only at the first write, after the reads
                # it depends on: we begin them ourselves (below).
                dbapi_connection.isolation_level = None

            @sa.event.listens_for(engine, "begin")
            def _sqlite_begin(conn: Connection) -> None:
                options = conn.get_execution_options()
                if options.get("isolation_level") == "AUTOCOMMIT":
                    return
                # A write transaction takes the write lock before its first read, so what it
                # read cannot change before it writes (other writers wait, busy_timeout);
                # readers begin a snapshot that never blocks anyone (WAL).
                conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get("newsagg_write") else "BEGIN")

            return engine
        return sa.create_engine(url, pool_pre_ping=True, execution_options=_ROWCOUNT)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _tx(self, what: str = "a write") -> Iterator[Connection]:
        """One write transaction, atomic with the reads it makes (SQLite: BEGIN IMMEDIATE).

        ``what`` names what is written (``article https://...``) in the one-line error a
        refused value becomes; PostgreSQL methods that read rows before writing what
        depends on them also lock what they read (see ``prune_stories_before``).
        """
        try:
            with self.engine.connect() as conn, self._refused(what):
                conn.execution_options(newsagg_write=True)
                with conn.begin():
                    yield conn
        except OperationalError as exc:
            raise StoreError(f"store write failed ({_redact(self.url)}): {_reason(exc)}") from None

    @contextmanager
    def _refused(self, what: str) -> Iterator[None]:
        """A value the database refuses (too long, a broken constraint) becomes a one-line error naming ``what``."""
        try:
            yield
        except OperationalError:
            raise  # the store itself failed (disk full, locked, unreachable): _tx says so
        except DBAPIError as exc:
            raise StoreError(f"the store refused {what} ({_redact(self.url)}): {_reason(exc)}") from None

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
    def _enqueue(self, conn: Connection, kind: str, doc_id: str, *, deleted: bool) -> None:
        if self._enqueue_stmt is None:  # built once: building it cost more than running it
            stmt = self._insert(outbox)
            self._enqueue_stmt = stmt.on_conflict_do_update(
                index_elements=["kind", "doc_id"],
                set_={"seq": outbox.c.seq + 1, "deleted": stmt.excluded.deleted, "attempts": 0, "last_error": None},
            )
        conn.execute(self._enqueue_stmt, {"kind": kind, "doc_id": doc_id, "seq": 1, "deleted": deleted, "attempts": 0})
    def compact(self) -> None:
        """Reclaim space (SQLite VACUUM; PostgreSQL's autovacuum does this itself)."""
        if self.engine.dialect.name == "sqlite":
            with self.engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM")


def upgrade_schema(url: str) -> tuple[str | None, str]:
    """``newsagg db upgrade``: bring the store at ``url`` to the newest schema; returns (revision before, after)."""
    engine = StoreBase._create_engine(url)
    try:
        return migrate.upgrade(engine)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot upgrade the store at {_redact(url)}: {_reason(exc)}") from None
    finally:
        engine.dispose()


def schema_revision(url: str) -> tuple[str | None, str]:
    """``newsagg db current``: the schema revision of the store at ``url``, and the newest this newsagg has."""
    engine = StoreBase._create_engine(url)
    try:
        with engine.connect() as conn:
            return migrate.current(conn), migrate.head()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the store at {_redact(url)}: {_reason(exc)}") from None
    finally:
        engine.dispose()


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
