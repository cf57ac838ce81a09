"""Schema revisions: a store written by the last release before them upgrades and keeps its data, a new
store starts at the newest revision, an upgrade is safe to repeat, on SQLite and a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from pipeline.cli import main
from pipeline.errors import StoreError
from pipeline.models import FeedSource
from pipeline.storage import Store, schema_revision, upgrade_schema
from pipeline.storage.schema import metadata
from pipeline.storage import migrate
from pipeline.storage.migrate import VERSION_TABLE, head
from services import postgres_database

DATA = Path(__file__).parent / "data"
# What releases before feed health (f0b089b) lacked, added on open by the releases after.
FEED_HEALTH_COLUMNS = ("failure_score", "learned_interval", "last_new_entry_at", "alerted_status")


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with ExitStack() as stack:
        if request.param == "postgresql":
            store_url = stack.enter_context(postgres_database())
        else:
            store_url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
        monkeypatch.setenv("NEWSAGG_STORE_URL", store_url)  # what `newsagg db ...` opens
        yield store_url


def write_previous_release(url: str, *, before_feed_health: bool = False) -> None:
    """The tables and rows of a store the last release before revisions wrote (tests/data, from its schema.py)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    script = (DATA / f"store-9788db7.{engine.dialect.name}.sql").read_text(encoding="utf-8")
    lines = [line for line in script.splitlines() if not line.startswith("--")]
    with engine.begin() as conn:
        for statement in "\n".join(lines).split(";\n"):
            if statement.strip():
                conn.exec_driver_sql(statement)
        if before_feed_health:
            for column in FEED_HEALTH_COLUMNS:
                conn.exec_driver_sql(f"ALTER TABLE feeds DROP COLUMN {column}")
    engine.dispose()


def schema_differences(store: Store) -> list[object]:
    """How the store's tables differ from pipeline/storage/schema.py (none: the revisions build exactly that)."""
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return [d for d in compare_metadata(context, metadata) if not (d[0] == "remove_table" and d[1].name == VERSION_TABLE)]


@pytest.mark.parametrize("release", ["9788db7", "before-feed-health"])
def test_a_store_of_the_previous_release_upgrades_and_keeps_its_data(
    url: str, release: str, capsys: pytest.CaptureFixture[str]
) -> None:
    write_previous_release(url, before_feed_health=release == "before-feed-health")
    if url.startswith("postgresql"):
        # Commands on a PostgreSQL store refuse an old schema rather than migrate it behind the operator's back.
        with pytest.raises(StoreError, match=r"from before schema revisions, .* run `newsagg db upgrade`"):
            Store(url)
        assert main(["db", "current"]) == 1
        assert "none (this newsagg needs" in capsys.readouterr().out
        assert main(["db", "upgrade"]) == 0
        assert capsys.readouterr().out == f"store upgraded from no schema revision to {head()}\n"
    else:
        # Any command upgrades the embedded store when it opens it.
        assert main(["feeds", "status"]) == 0
        assert capsys.readouterr().out.startswith("feed ")
        assert schema_revision(url) == (head(), head())
    store = Store(url)
    try:
        assert schema_revision(url) == (head(), head())
        assert schema_differences(store) == []
        state = store.feed_state("ledger")
        assert state is not None
        assert (state.source.name, state.source.tags, state.entries_seen, state.failure_score) == (
            "Harbor City Ledger", ("local",), 1, 0.0)
        assert state.last_success_at == datetime(2026, 11, 1, 12, tzinfo=UTC)
        article = store.articles_by_id(["a1"])["a1"]
        assert article.title == "Port strike"
        # Credits are kept per article now: the stored ones are credited by the upgrade.
        assert article.credit is not None and (article.credit.agency, article.credit.kind) == ("AP", "full")
        story = store.story("a1")
        assert story is not None and story.sources[0].url == "https://ledger.example/a/1"
        assert store.memberships_of("a1")[0].article_id == "a1"
        assert [(i.kind, i.doc_id) for i in store.outbox_batch(10)] == [("story", "a1")]
    finally:
        store.close()
    # Upgrading again changes nothing.
    assert main(["db", "upgrade"]) == 0
    assert capsys.readouterr().out == f"store already at schema revision {head()} (the newest)\n"
    assert main(["db", "current"]) == 0
    assert capsys.readouterr().out == f"{head()} (the newest)\n"


def test_a_new_store_starts_at_the_newest_revision(url: str) -> None:
    store = Store(url)
    try:
        assert schema_revision(url) == (head(), head())
        assert schema_differences(store) == []
    finally:
        store.close()
    Store(url).close()  # opening it again is no migration


def test_a_new_database_another_process_sets_up_while_this_one_looks_is_not_taken_for_an_old_store(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Workers starting at once on a new PostgreSQL database: one creates the schema (tables and
    # revision, one transaction) between the other's two reads of it. Read revision first, tables
    # second, that looked like tables without a revision: "the store is from before schema revisions".
    with postgres_database() as url:
        opening, other = (sa.create_engine(url, poolclass=sa.pool.NullPool) for _ in range(2))
        read_revision = migrate.current
        commits: list[str] = []

        def read_while_the_other_commits(conn: sa.Connection) -> str | None:
            revision = read_revision(conn)
            if revision is None and not commits:
                commits.append("other")
                migrate.upgrade(other)  # the other process's transaction commits now
            return revision

        monkeypatch.setattr(migrate, "current", read_while_the_other_commits)
        try:
            migrate.prepare(opening)
            with opening.connect() as conn:
                assert read_revision(conn) == head() and commits == ["other"]
        finally:
            opening.dispose()
            other.dispose()


def test_a_store_newer_than_this_newsagg_is_refused(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    Store(url).close()
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE {VERSION_TABLE} SET version_num = '9999'")
    engine.dispose()
    with pytest.raises(StoreError, match="schema revision 9999 is newer than this newsagg knows"):
        Store(url)
    assert main(["db", "upgrade"]) == 1
    assert "newer than this newsagg knows" in capsys.readouterr().err


def test_feeds_stored_under_name_slugs_keep_their_ids_and_history_when_the_list_is_renamed(url: str) -> None:
    write_previous_release(url)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        # What renaming the feed did before: a second row for the same URL, never polled since.
        conn.exec_driver_sql(
            "INSERT INTO feeds (id, name, url, tags, status, consecutive_failures, entries_seen) "
            "VALUES ('the-ledger', 'The Ledger', 'https://ledger.example/feed.xml', '[]', 'active', 0, 0)"
        )
    engine.dispose()
    if url.startswith("postgresql"):
        upgrade_schema(url)
    store = Store(url)
    try:
        renamed = FeedSource(id="harbor-ledger", name="Harbor Ledger", url="HTTPS://Ledger.example/feed.xml")
        assert store.sync_feeds([renamed], whole_list=True) == [replace(renamed, id="ledger")]
        states = {s.source.id: s for s in store.feed_states()}
        assert set(states) == {"ledger", "the-ledger"}
        ledger = states["ledger"]
        assert (ledger.source.name, ledger.status, ledger.entries_seen, ledger.validators.etag) == (
            "Harbor Ledger", "active", 1, '"v1"')
        assert states["the-ledger"].status == "removed"
    finally:
        store.close()


def test_an_embedded_store_is_copied_aside_before_an_upgrade_changes_it(tmp_path: Path) -> None:
    # The embedded store is upgraded by whichever command opens it first: the copy is what
    # the operator had no chance to make.
    path = tmp_path / "store.sqlite3"
    write_previous_release(f"sqlite:///{path}")
    Store(f"sqlite:///{path}").close()
    copies = list(tmp_path.glob("store.sqlite3.before-*"))
    assert [c.name for c in copies] == [f"store.sqlite3.before-{head()}"]
    copy = sa.create_engine(f"sqlite:///{copies[0]}", poolclass=sa.pool.NullPool)
    with copy.connect() as conn:
        assert VERSION_TABLE not in sa.inspect(conn).get_table_names()  # as it was: from before revisions
        assert conn.exec_driver_sql("SELECT title FROM articles WHERE id = 'a1'").scalar() == "Port strike"
    copy.dispose()
    # Opened again at the newest revision, or new: no copy is made.
    Store(f"sqlite:///{path}").close()
    Store(f"sqlite:///{tmp_path / 'new.sqlite3'}").close()
    assert list(tmp_path.glob("*.before-*")) == copies


def test_db_backup_copies_the_store_while_it_is_in_use(url: str, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    write_previous_release(url)
    upgrade_schema(url)
    target = tmp_path / "backup" / "copy.sqlite3"
    if url.startswith("postgresql"):
        assert main(["db", "backup", str(target)]) == 2
        assert "pg_dump" in capsys.readouterr().err and not target.exists()
        return
    target.parent.mkdir()  # db backup makes no directory
    store = Store(url)
    try:
        with store.engine.connect() as reading:  # a reader in the middle of its transaction
            reading.execute(sa.text("SELECT count(*) FROM articles")).scalar()
            assert main(["db", "backup", str(target)]) == 0
        assert str(target) in capsys.readouterr().out
    finally:
        store.close()
    assert schema_revision(f"sqlite:///{target}") == (head(), head())
    copy = Store(f"sqlite:///{target}")
    try:
        assert copy.articles_by_id(["a1"])["a1"].title == "Port strike"
    finally:
        copy.close()
    assert main(["db", "backup", str(target)]) == 2  # never over an existing file
    assert "exists" in capsys.readouterr().err


def test_a_backup_or_upgrade_copy_left_half_written_does_not_fail_the_next_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A backup stopped or killed midway (Ctrl-C, docker stop, OOM) left its `.partial` file; the
    # next backup copied into it and failed with "database disk image is malformed", said of the
    # store, which is sound. The copy an upgrade makes aside is written the same way.
    url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    monkeypatch.setenv("NEWSAGG_STORE_URL", url)
    write_previous_release(url)
    store_bytes = (tmp_path / "store.sqlite3").read_bytes()
    aside = tmp_path / f"store.sqlite3.before-{head()}"
    Path(f"{aside}.partial").write_bytes(store_bytes[: len(store_bytes) // 2])
    Store(url).close()  # upgraded on open, its copy made aside
    assert schema_revision(url)[0] == head() and schema_revision(f"sqlite:///{aside}")[0] != head()
    target = tmp_path / "copy.sqlite3"
    Path(f"{target}.partial").write_bytes(store_bytes[: len(store_bytes) // 2])
    assert main(["db", "backup", str(target)]) == 0, capsys.readouterr().err
    assert schema_revision(f"sqlite:///{target}") == (head(), head())
    assert not list(tmp_path.glob("*.partial"))
