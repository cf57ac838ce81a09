"""The store's schema version: Alembic migrations (``pipeline/storage/migrations``), run from code.

SQLite stores (the embedded default) are upgraded when opened. A PostgreSQL database is
created at the newest schema when empty, and otherwise upgraded only by ``newsagg db
upgrade``: an upgrade there is a deliberate step (a backup first, one process doing it),
not something the first worker to start does.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from pipeline.errors import StoreError
from pipeline.storage.backup import copy_store
from pipeline.storage.schema import ADVISORY_LOCKS

MIGRATIONS = Path(__file__).with_name("migrations")
VERSION_TABLE = "schema_version"


def config(conn: Connection | None = None) -> Config:
    """Alembic's configuration, built in code (no alembic.ini); ``conn`` is what env.py migrates."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    return cfg


@cache
def _scripts() -> ScriptDirectory:
    """The revisions (read once a process: every store opened asks for the newest)."""
    return ScriptDirectory.from_config(config())


def head() -> str:
    revision = _scripts().get_current_head()
    assert revision is not None
    return revision


def current(conn: Connection) -> str | None:
    """The store's schema revision; None for an empty database or a store from before revisions."""
    return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


@dataclass(frozen=True, slots=True)
class Upgraded:
    """What `upgrade` did: the revision before (None: a store from before revisions, or no store), the one after."""

    before: str | None
    after: str
    created: bool  # the database held no table: a new store was made


def upgrade(engine: Engine) -> Upgraded:
    """Bring the store to the newest schema, in one transaction (an empty database: make it).

    A store from before revisions (tables, no version) is brought to the schema of the
    release before them by the first revision, which creates only what is missing. A SQLite
    store with data is first copied aside (``<file>.before-<revision>``), as it was.
    """
    with engine.connect() as conn:
        conn.execution_options(newsagg_write=True)  # SQLite: BEGIN IMMEDIATE, one process at a time
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(ADVISORY_LOCKS["schema"])))
            before = current(conn)
            _known(before)
            created = not sa.inspect(conn).get_table_names()
            database = engine.url.database
            if before != head() and engine.dialect.name == "sqlite" and database and database != ":memory:":
                aside = Path(database).with_name(f"{Path(database).name}.before-{head()}")
                # A copy left by an attempt that failed is of the same data: the upgrade rolled back.
                if not created and not aside.exists():
                    copy_store(Path(database), aside)
            command.upgrade(config(conn), "head")
    return Upgraded(before, head(), created)


def prepare(engine: Engine) -> None:
    """Make the store ready to use at the newest schema, or say in one line why it is not."""
    with engine.connect() as conn:
        revision = current(conn)
        if revision == head():
            return  # the usual case: one query
        # Another process creating the schema commits tables and revision at once: a revision
        # read after the tables is never older than they are, where the one read before them
        # could be (its commit between the two reads looked like a store from before revisions).
        empty = not sa.inspect(conn).get_table_names()
        revision = current(conn)
        if revision == head():
            return
    _known(revision)
    if engine.dialect.name == "sqlite" or (revision is None and empty):
        upgrade(engine)
        return
    at = f"at schema revision {revision}" if revision else "from before schema revisions"
    raise StoreError(f"the store is {at}, this newsagg needs {head()}: run `newsagg db upgrade` (back it up first)")


def _known(revision: str | None) -> None:
    known = {script.revision for script in _scripts().walk_revisions()}
    if revision is not None and revision not in known:
        raise StoreError(
            f"the store's schema revision {revision} is newer than this newsagg knows ({head()}): upgrade newsagg"
        )
