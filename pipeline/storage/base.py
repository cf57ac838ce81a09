"""The store's connection: engine, transactions, cross-process locks, and the helpers every part shares."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, ExceptionContext
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError, SQLAlchemyError

from pipeline.errors import ConfigError, LockLost, StoreError
from pipeline.sqlite_wal import use_wal, why_unopenable
from pipeline.storage import migrate
from pipeline.storage.schema import ADVISORY_LOCKS, outbox, outbox_seq, runs
from pipeline.urls import redact_url

log = logging.getLogger(__name__)
_Row = TypeVar("_Row")  # what a row is built into
_T = TypeVar("_T")

# Inserts report how many rows they added (ON CONFLICT DO NOTHING counts 0); SQLAlchemy keeps
# the DBAPI's rowcount of an INSERT only when asked, and psycopg's is otherwise lost (-1).
_ROWCOUNT = {"preserve_rowcount": True}
# Seconds a SQLite connection waits for another process's lock before "database is locked".
_SQLITE_WAIT = 30.0
# PostgreSQL probes a session of ours silent this many seconds, every so many, so many times,
# then ends it: a worker whose host vanished (powered off, cut off the network) loses its locks
# within two minutes, where the server's default of two hours stalled every other worker.
_PG_KEEPALIVES = {"tcp_keepalives_idle": 60, "tcp_keepalives_interval": 10, "tcp_keepalives_count": 6}
# And our side gives up on a server whose host vanished: a connection attempt after 10 s, a
# silent session as the server does above (libpq's defaults are the system's: minutes, hours).
# Parameters in the store URL's query win.
_PG_CLIENT = {"connect_timeout": 10, "keepalives": 1, "keepalives_idle": 60, "keepalives_interval": 10,
              "keepalives_count": 6}

#: The threads of this process wanting an embedded store's lock file, one lock per file.
_FILE_LOCK_TURNS: dict[str, threading.Lock] = {}


def utc_now() -> datetime:
    return datetime.now(UTC)


class _Held(threading.local):
    """The connection holding the store's lock in this thread, while locked work runs."""

    conn: Connection | None = None


class StoreBase:
    """The connection to one store, shared by the parts of ``Store``.

    Args:
        url: a SQLAlchemy URL; ``sqlite:///path`` or ``postgresql+psycopg://...``.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._enqueue_stmt: Any = None
        #: The run (a DAG run's task) to which each stage's batch commits add their counts, in the
        #: same transaction: a task killed right after a commit has counted it, its retry does not again.
        self.counting_run: int | None = None
        self._held = _Held()
        try:
            self.engine = self._create_engine(url)
            try:
                migrate.prepare(self.engine)
            except BaseException:
                self.engine.dispose()  # a store that cannot be used keeps no connection open
                raise
        except SQLAlchemyError as exc:
            reason = _reason(exc)
            if (file := _sqlite_file(url)) is not None:
                reason = why_unopenable(file, reason)
            raise StoreError(f"cannot open the store at {redact_url(url)}: {reason}") from None
        except ImportError as exc:  # the URL names a database whose driver is not installed
            raise ConfigError(
                f"cannot open the store at {redact_url(url)}: no driver for it (no module {exc.name}); newsagg stores "
                "in SQLite or PostgreSQL (postgresql+psycopg://..., with its postgres extra: `pip install '.[postgres]'`)"
            ) from None

    def _count(self, conn: Connection, **counts: int) -> None:
        """Add ``counts`` to the ``counted`` stats of ``counting_run``, if any, in the transaction of ``conn``."""
        if self.counting_run is not None and any(counts.values()):
            add_counted(conn, self.counting_run, counts)

    @staticmethod
    def _create_engine(url: str) -> Engine:
        try:
            sa.make_url(url)
        except ArgumentError as exc:  # `db upgrade` and `db current` make an engine without a Store
            raise StoreError(f"cannot open the store at {redact_url(url)}: {exc}") from None
        if url.startswith("sqlite"):
            if (path := _sqlite_file(url)) is not None:
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise StoreError(f"cannot create the data directory {path.parent}: {exc.strerror}") from None
            engine = sa.create_engine(url, connect_args={"timeout": _SQLITE_WAIT}, execution_options=_ROWCOUNT)

            @sa.event.listens_for(engine, "connect")
            def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
                # WAL lets readers (search, status) run while a stage writes; NORMAL is
                # durable across process kills, which is the failure we design for.
                use_wal(dbapi_connection, wait=_SQLITE_WAIT)
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA synchronous=NORMAL")
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
        given = sa.make_url(url).query
        engine = sa.create_engine(url, pool_pre_ping=True, execution_options=_ROWCOUNT,
                                  connect_args={k: v for k, v in _PG_CLIENT.items() if k not in given})
        sa.event.listen(engine, "handle_error", _interrupt_first)

        @sa.event.listens_for(engine, "connect")
        def _postgresql_keepalives(dbapi_connection: Any, _record: Any) -> None:
            # Session settings, not startup options, which a connection pooler may refuse.
            autocommit, dbapi_connection.autocommit = dbapi_connection.autocommit, True
            try:
                with dbapi_connection.cursor() as cursor:
                    cursor.execute("SELECT " + ", ".join(f"set_config('{name}', '{value}', false)"
                                                         for name, value in _PG_KEEPALIVES.items()))
            finally:
                dbapi_connection.autocommit = autocommit

        return engine

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> None:
        """Ask the store for nothing, to know that it answers.

        Raises:
            StoreError: it does not, and why (the URL's password masked).
        """
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except SQLAlchemyError as exc:
            raise StoreError(f"the store does not answer ({redact_url(self.url)}): {_reason(exc)}") from None

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """A connection to read with; the database failing under the reads is a one-line StoreError.

        A read refuses no value of ours, so an error here is the store's: unreachable, damaged
        (a file cut short, bytes that are not UTF-8), or a lock held longer than the session waits.
        """
        try:
            with self.engine.connect() as conn:
                yield conn
        except DBAPIError as exc:
            log.debug("reading the store failed", exc_info=True)  # -v shows where, for a bug report
            raise StoreError(f"cannot read the store ({redact_url(self.url)}): {_reason(exc)}") from None

    @contextmanager
    def _tx(self, what: str = "a write") -> Iterator[Connection]:
        """One write transaction, atomic with the reads it makes (SQLite: BEGIN IMMEDIATE).

        ``what`` names what is written (``article https://...``) in the one-line error a
        refused value becomes; PostgreSQL methods that read rows before writing what
        depends on them also lock what they read (see ``prune_stories_before``).
        """
        if self._held.conn is not None:
            with self._locked_tx(self._held.conn) as conn, self._refused(what):
                yield conn
            return
        try:
            with self.engine.connect() as conn, self._refused(what):
                conn.execution_options(newsagg_write=True)
                with conn.begin():
                    yield conn
        except OperationalError as exc:
            raise StoreError(f"store write failed ({redact_url(self.url)}): {_reason(exc)}") from None

    @contextmanager
    def _refused(self, what: str) -> Iterator[None]:
        """A value the database refuses (too long, a broken constraint) becomes a one-line error naming ``what``."""
        try:
            yield
        except OperationalError:
            raise  # the store itself failed (disk full, locked, unreachable): _tx says so
        except DBAPIError as exc:
            raise StoreError(f"the store refused {what} ({redact_url(self.url)}): {_reason(exc)}") from None

    @contextmanager
    def exclusive(self, name: Literal["clusters", "alerts", "feed_list"]) -> Iterator[None]:
        """Hold a lock shared by every process using this store, around work that must not run twice at once.

        Clustering decides memberships from the state it restored, and building stories reads
        memberships then clears the dirty marks: run by two workers at once, each would miss the
        other's articles (splitting clusters) or clear a mark set after it read (a stale story).
        On PostgreSQL the lock is a session-level advisory lock on a connection of its own, and
        every write of the locked work (``_tx`` in this thread) is a transaction on that
        connection, so nothing commits without the lock: if the connection ends (the server
        terminated it, the network dropped), the server releases the lock and the next write
        raises ``LockLost`` instead of reconnecting; so does the end of the work. On SQLite the
        lock is a file lock beside the database.

        Raises:
            LockLost: the lock's connection ended while the work ran (transient: run it again).
        """
        if self.engine.dialect.name == "postgresql":
            key = ADVISORY_LOCKS[name]
            try:
                conn = self.engine.connect()
                try:
                    with conn.begin():
                        locked = conn.execute(sa.select(sa.func.pg_try_advisory_lock(key))).scalar()
                    if not locked:
                        log.info("waiting for another worker to finish %s work on %s", name, redact_url(self.url))
                        with conn.begin():
                            conn.execute(sa.select(sa.func.pg_advisory_lock(key)))
                except BaseException:
                    # Interrupted while waiting, the session may yet be granted the lock: end it.
                    conn.invalidate()
                    conn.close()
                    raise
            except OperationalError as exc:
                raise StoreError(f"cannot lock the store ({redact_url(self.url)}): {_reason(exc)}") from None
            self._held.conn = conn
            try:
                yield
            finally:
                self._held.conn = None
                held = _unlock(conn, key)
            if not held:
                raise _lock_lost(self.url, "before the work ended")
            return
        database = self.engine.url.database
        if not database or database == ":memory:":
            yield
            return
        import fcntl

        # A POSIX record lock, not flock: a worker pool started inside the locked work (a stage
        # run alone) forks children that share the open file, and with flock they kept the lock
        # for as long as they lived. A record lock is this process's alone, so threads of this
        # process take turns on a lock of their own first.
        path = f"{database}.{name}.lock"
        with _FILE_LOCK_TURNS.setdefault(path, threading.Lock()), open(path, "a") as handle:
            fcntl.lockf(handle, fcntl.LOCK_EX)
            yield

    @contextmanager
    def _locked_tx(self, conn: Connection) -> Iterator[Connection]:
        """A write transaction on the lock's connection: it commits only while that session holds the lock."""
        if conn.invalidated:  # used again, SQLAlchemy would reconnect: a new session, without the lock
            raise _lock_lost(self.url, "earlier")
        try:
            with conn.begin():
                yield conn
        except OperationalError as exc:
            if conn.invalidated:
                raise _lock_lost(self.url, f"({_reason(exc)})") from None
            raise StoreError(f"store write failed ({redact_url(self.url)}): {_reason(exc)}") from None

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
        with self._read() as conn:
            for chunk in chunks(list(ids), 500):
                for row in conn.execute(sa.select(table).where(key.in_(chunk))).mappings():
                    found[row[key.name]] = build(row)
        return found

    def _keyset_rows(self, query: sa.Select[Any], keys: Sequence[sa.Column[Any]], chunk: int) -> Iterator[Any]:
        """The rows of ``query`` in the order of ``keys`` (unique together), read ``chunk`` rows at a time.

        Each chunk is one short read starting after the last row of the one before (keyset
        paging, which an index on the first key serves), so this process holds about a chunk at a
        time and no transaction stays open between chunks.
        """
        after: tuple[Any, ...] | None = None
        while True:
            page = query.order_by(*keys).limit(chunk)
            if after is not None:
                page = page.where(
                    sa.tuple_(*keys) > sa.tuple_(*(sa.literal(v, type_=k.type) for k, v in zip(keys, after, strict=True)))
                )
            with self._read() as conn:
                rows = list(conn.execute(page).mappings())
            yield from rows
            if len(rows) < chunk:
                return
            after = tuple(rows[-1][k.name] for k in keys)

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
        self._enqueue_many(conn, seq, kind, [doc_id], deleted=deleted)

    def _enqueue_many(self, conn: Connection, seq: int, kind: str, doc_ids: Iterable[str], *, deleted: bool) -> None:
        """``_enqueue`` for each of ``doc_ids``, in one statement executed for them all."""
        if self._enqueue_stmt is None:  # built once: building it cost more than running it
            self._enqueue_stmt = queued_again(self._insert(outbox))
        rows = [{"kind": kind, "doc_id": doc_id, "seq": seq, "deleted": deleted, "attempts": 0}
                for doc_id in dict.fromkeys(doc_ids)]
        if rows:
            conn.execute(self._enqueue_stmt, rows)

    def compact(self) -> None:
        """Reclaim space (SQLite VACUUM; PostgreSQL's autovacuum does this itself)."""
        if self.engine.dialect.name == "sqlite":
            with self.engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM")


def queued_again(insert: Any) -> Any:
    """An outbox insert that, for a document already queued, takes the new version with fresh attempts."""
    return insert.on_conflict_do_update(
        index_elements=["kind", "doc_id"],
        set_={"seq": insert.excluded.seq, "deleted": insert.excluded.deleted, "attempts": 0, "last_error": None},
    )


def _lock_lost(url: str, when: str) -> LockLost:
    return LockLost(f"lost the store's lock ({redact_url(url)}): its connection ended {when}; nothing was written without it, run the stage again")


def _interrupt_first(context: ExceptionContext) -> BaseException | None:
    """The interrupt (SIGTERM, Ctrl-C) a database error followed, if any: that is what happened.

    Interrupted in the middle of a statement, psycopg may leave its connection busy, and the
    cleanup around the statement then fails on it: the pool's pre-ping, for one, restores
    autocommit in a ``finally`` and raises "can't change 'autocommit' now", which replaced
    the interrupt, so that a run stopped with SIGTERM ended in a traceback instead of stopping.
    """
    seen = context.original_exception.__context__
    while seen is not None:
        if isinstance(seen, (KeyboardInterrupt, SystemExit)):
            return seen
        seen = seen.__context__
    return None


def _unlock(conn: Connection, key: int) -> bool:
    """Release a session-level advisory lock and close its connection; whether the lock was still held."""
    held = False
    if not conn.invalidated:
        try:
            with conn.begin():
                held = bool(conn.execute(sa.select(sa.func.pg_advisory_unlock(key))).scalar())
        except SQLAlchemyError:
            conn.invalidate()  # a session that may still hold the lock must not go back to the pool
    conn.close()
    return held


def upgrade_schema(url: str) -> migrate.Upgraded:
    """``newsagg db upgrade``: bring the store at ``url`` to the newest schema, or make it; says what it did."""
    engine = StoreBase._create_engine(url)
    try:
        return migrate.upgrade(engine)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot upgrade the store at {redact_url(url)}: {_reason(exc)}") from None
    finally:
        engine.dispose()


def schema_revision(url: str) -> tuple[str | None, str]:
    """``newsagg db current``: the schema revision of the store at ``url``, and the newest this newsagg has."""
    engine = StoreBase._create_engine(url)
    try:
        with engine.connect() as conn:
            return migrate.current(conn), migrate.head()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the store at {redact_url(url)}: {_reason(exc)}") from None
    finally:
        engine.dispose()


def chunks(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names; None for another database or an in-memory one."""
    if not url.startswith("sqlite"):
        return None
    database = sa.make_url(url).database  # parsed before (_create_engine)
    return Path(database) if database and database != ":memory:" else None


def _reason(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    reason = str(orig or exc).splitlines()[0]
    if isinstance(orig, sqlite3.OperationalError) and reason == "database is locked":
        # SQLite's words alone read like damage; it is a writer in another process (a run, a shell).
        reason += f": another process holds the store's write lock (waited {_SQLITE_WAIT:g} s)"
    return reason


def add_counted(conn: Connection, run_id: int, counts: dict[str, int], **values: Any) -> None:
    """Add ``counts`` to the ``counted`` stats of run ``run_id`` (and set ``values`` on its row), in ``conn``'s transaction."""
    query = sa.select(runs.c.stats).where(runs.c.id == run_id).with_for_update()
    stats: dict[str, Any] = dict(conn.execute(query).scalar_one_or_none() or {})
    counted = dict(stats.get("counted") or {})
    for name, value in counts.items():
        counted[name] = counted.get(name, 0) + value
    conn.execute(runs.update().where(runs.c.id == run_id).values(stats={**stats, "counted": counted}, **values))
