"""The performance fixes found by the benchmarks (bench/README.md) change nothing a caller can see.

* ``Pipeline.poll_feeds`` fetches concurrently and parses on worker processes: its
  outcomes and what it stores are those of ``poll_feed`` for each feed in turn;
* the store builds its row statements once per batch (entries, assignments, the outbox)
  and reads memberships for a whole indexing batch at once;
* the SQLite search index syncs like the store (WAL, synchronous=NORMAL);
* the river filtered by agency or language seeks its stories by an index (SQLite's plan);
* pruning old stories seeks them by when they were last seen, clustering reads the queue of articles to
  cluster, the cluster listing's pages seek by an index in its order, the river of an outlet finds its
  stories from its articles, and a merge finds the aliases of what it absorbs by an index (SQLite's plans);
* a run collects garbage after 10,000 new objects, not CPython's 700;
* a claim of pending entries costs the same however large the backlog.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import sqlite3
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from services import postgres_database

import pipeline.runner.feeds
from bench.corpus import build, generate_articles
from pipeline.demo.run import demo_settings
from pipeline.demo.server import CorpusServer
from pipeline.models import Assignment, FeedEntry, FeedSource, Membership, Signature, Validators
from pipeline.runner import MIN_PARALLEL_FEEDS, Pipeline
from pipeline.search.sqlite import SqliteSearchIndex
from pipeline.settings import Settings
from pipeline.storage import Store
from pipeline.storage.stories import StoryFilter
from pipeline.storage.schema import entries, feeds, outbox

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with ExitStack() as stack:
        url = (
            stack.enter_context(postgres_database())
            if request.param == "postgresql"
            else f"sqlite:///{tmp_path / 'store.sqlite3'}"
        )
        s = Store(url)
        stack.callback(s.close)
        yield s


@pytest.fixture(scope="module")
def many_feeds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CorpusServer, Path]]:
    """40 generated feeds in the demo outlets' formats, plus a missing feed and an HTML page posing as one."""
    root = tmp_path_factory.mktemp("feeds")
    corpus = build(root / "corpus", generate_articles(160), entries_per_feed=4, pages=False)
    (root / "corpus" / "not-a-feed.html").write_text("<!doctype html><html><body><p>hello</p></body></html>")
    with CorpusServer(root / "corpus") as server:
        feeds_file = corpus.write_feed_list(server.base_url, root / "feeds.yaml")
        with feeds_file.open("a", encoding="utf-8") as extra:
            extra.write(f'  - name: Gone\n    url: "{server.base_url}/gone/feed.xml"\n')
            extra.write(f'  - name: Not a feed\n    url: "{server.base_url}/not-a-feed.html"\n')
        yield server, feeds_file


def _settings(server: CorpusServer, data_dir: Path, feeds_file: Path) -> Settings:
    return demo_settings(server.base_url, data_dir, feeds_file, fetch={"per_domain_concurrency": 8})


def _stored(pipe: Pipeline) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The queued entries and the feeds' polling state, without the clock-dependent columns."""
    with pipe.store.engine.connect() as conn:
        queued = sorted(
            tuple(r) for r in conn.execute(
                sa.select(entries.c.url, entries.c.feed_id, entries.c.title, entries.c.summary, entries.c.content,
                          entries.c.author, entries.c.published, entries.c.guid, entries.c.state)
            )
        )
        polled = sorted(
            tuple(r) for r in conn.execute(
                sa.select(feeds.c.id, feeds.c.etag, feeds.c.last_modified, feeds.c.status,
                          feeds.c.consecutive_failures, feeds.c.last_error, feeds.c.entries_seen)
            )
        )
    return queued, polled


def _poll_both_ways(server: CorpusServer, feeds_file: Path, tmp_path: Path) -> tuple[Any, Any]:
    results = []
    for name in ("one-by-one", "concurrent"):
        with Pipeline(_settings(server, tmp_path / name, feeds_file)) as pipe:
            sources = pipe.load_feeds()
            for _ in range(2):  # the second pass is all conditional GETs
                if name == "one-by-one":
                    outcomes = [pipe.poll_feed(f.id) for f in sources]
                else:
                    outcomes = pipe.poll_feeds(sources)
            results.append(([(o.feed_id, o.status, o.new_entries) for o in outcomes], _stored(pipe)))
    return results[0], results[1]


def test_concurrent_polling_equals_polling_one_feed_after_another(
    many_feeds: tuple[CorpusServer, Path], tmp_path: Path
) -> None:
    server, feeds_file = many_feeds
    one_by_one, concurrent = _poll_both_ways(server, feeds_file, tmp_path)
    assert concurrent == one_by_one
    statuses = {status for _, status, _ in concurrent[0]}
    assert statuses == {"not_modified", "failed"}  # second pass: 304s, and the two broken feeds again
    assert len(concurrent[1][0]) == 160  # every entry queued once


_REAL_PARSE_FEED = pipeline.runner.feeds.parse_feed


def _die_in_a_worker(*args: Any, **kwargs: Any) -> Any:
    if multiprocessing.parent_process() is not None:  # in a parser process, however it was started
        os._exit(1)  # what an out-of-memory kill looks like to the pool
    return _REAL_PARSE_FEED(*args, **kwargs)


def test_polling_survives_a_parser_process_dying(
    many_feeds: tuple[CorpusServer, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, feeds_file = many_feeds
    monkeypatch.setattr(pipeline.runner.feeds, "parse_feed", _die_in_a_worker)
    with Pipeline(_settings(server, tmp_path / "data", feeds_file)) as pipe:
        sources = pipe.load_feeds()
        assert len(sources) >= MIN_PARALLEL_FEEDS
        outcomes = pipe.poll_feeds(sources)
        assert sum(o.status == "ok" for o in outcomes) == len(sources) - 2
        assert pipe.store.entry_counts() == {"pending": 160}
    assert "a feed parser process died" in caplog.text


def test_polls_of_few_feeds_parse_in_process(many_feeds: tuple[CorpusServer, Path], tmp_path: Path) -> None:
    server, feeds_file = many_feeds
    with Pipeline(_settings(server, tmp_path / "data", feeds_file)) as pipe:
        few = pipe.load_feeds()[: MIN_PARALLEL_FEEDS - 1]
        assert [o.status for o in pipe.poll_feeds(few)] == ["ok"] * len(few)
        assert [o.status for o in pipe.poll_feeds(list(reversed(few)))] == ["not_modified"] * len(few)


def test_reassigning_an_article_updates_every_membership_field(store: Store) -> None:
    first = Assignment(Membership("a2", "c1", "a1", 0.5, 0.9), Signature("a2", b"sig", T0))
    again = Assignment(Membership("a2", "c3", "a3", 0.7, 0.8), Signature("a2", b"other", T0))
    store.save_assignments([first])
    store.save_assignments([again])
    assert store.membership("a2") == again.membership
    assert store.memberships_by_article(["a2", "unknown"]) == {"a2": again.membership}


def test_memberships_by_article_reads_in_chunks(store: Store) -> None:
    assignments = [
        Assignment(Membership(f"a{n}", "c1", None if n == 0 else "a0", 0.5, 0.5), Signature(f"a{n}", b"s", T0))
        for n in range(1200)
    ]
    store.save_assignments(assignments)
    found = store.memberships_by_article(f"a{n}" for n in range(1300))
    assert len(found) == 1200 and found["a1199"] == store.membership("a1199")


def test_requeueing_keeps_the_latest_deleted_flag_and_numbers_every_change(store: Store) -> None:
    store.save_stories([], ["s1"])  # queued as a deletion
    store.save_assignments([Assignment(Membership("a1", "c1"), Signature("a1", b"s", T0))])
    with store.engine.begin() as conn:
        store._enqueue(conn, store._next_seq(conn), "story", "s1", deleted=False)
    with store.engine.connect() as conn:
        rows = {(r.kind, r.doc_id): (r.seq, r.deleted) for r in conn.execute(sa.select(outbox))}
    assert rows[("story", "s1")][1] is False and rows[("article", "a1")][1] is False
    assert rows[("story", "s1")][0] > rows[("article", "a1")][0]  # queued later, a higher number
    store.outbox_done(store.outbox_batch(10))
    assert store.outbox_size() == 0


def test_feed_entries_count_only_new_rows(store: Store) -> None:
    from pipeline.models import FeedEntry, FeedSource, Validators

    store.sync_feeds([FeedSource(id="f", name="F", url="https://f.example/feed.xml")])
    batch = [FeedEntry(feed_id="f", url=f"https://f.example/{n}", title=f"T{n}") for n in range(5)]
    kwargs: dict[str, Any] = {"now": T0, "next_attempt_at": T0}
    assert store.record_feed_fetched("f", batch[:3], Validators(etag='"1"'), **kwargs) == 3
    assert store.record_feed_fetched("f", batch, Validators(etag='"2"'), **kwargs) == 2
    assert store.entry_counts() == {"pending": 5}


def test_search_index_syncs_like_the_store(tmp_path: Path) -> None:
    index = SqliteSearchIndex(tmp_path / "search.sqlite3")
    index.setup()
    try:
        assert index._db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert index._db.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL
    finally:
        index.close()
    with sqlite3.connect(tmp_path / "search.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


@pytest.mark.parametrize(("before", "after"), [((700, 10, 10), (10_000, 10, 10)), ((50_000, 5, 5), (50_000, 5, 5)),
                                               ((0, 10, 10), (0, 10, 10))])
def test_a_pipeline_collects_garbage_less_often_and_keeps_a_rarer_setting(
    tmp_path: Path, before: tuple[int, int, int], after: tuple[int, int, int]
) -> None:
    # The run process (and the workers it forks) collects after 10,000 new objects, not 700;
    # a higher threshold, or collection switched off (0), is the user's and stays.
    saved = gc.get_threshold()
    try:
        gc.set_threshold(*before)
        Pipeline(Settings(data_dir=tmp_path)).close()
        assert gc.get_threshold() == after
    finally:
        gc.set_threshold(*saved)


@pytest.mark.parametrize("text", ["", "Port strike: 14 ships WAIT", "it's (Reuters) - 3.5% up\n\nNext", "x" * 1000])
def test_folding_ascii_takes_the_short_way_to_the_same_result(text: str) -> None:
    from pipeline.search.analysis import _fold

    # "é" sends the text down the general path, which folds it to "e".
    assert _fold(text) == text.lower() == _fold(text + "é")[:-1]
    assert _fold(text + "é").endswith("e")


@pytest.mark.parametrize(("where", "index"), [(StoryFilter(agency="dpa"), "ix_stories_agency_last_seen"),
                                              (StoryFilter(language="de"), "ix_stories_language_last_seen")])
def test_the_filtered_river_seeks_by_an_index(tmp_path: Path, where: StoryFilter, index: str) -> None:
    store = Store(f"sqlite:///{tmp_path}/store.sqlite3")
    statements: list[tuple[str, Any]] = []
    sa.event.listen(store.engine, "before_cursor_execute",
                    lambda conn, cursor, sql, params, context, many: statements.append((sql, params)))
    try:
        store.story_page(30, where, after="1700000000000000.s1")
        sql, params = next((sql, params) for sql, params in statements if "FROM stories" in sql)
        with sqlite3.connect(tmp_path / "store.sqlite3") as db:
            plan = " ".join(row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", params))
        assert f"SEARCH stories USING INDEX {index}" in plan, plan
    finally:
        store.close()


def _plans(store: Store, path: Path, call: Any, reading: str) -> list[str]:
    """SQLite's query plan of each statement ``call`` ran whose SQL holds ``reading``, one line each."""
    statements: list[tuple[str, Any]] = []

    def seen(conn: Any, cursor: Any, sql: str, params: Any, context: Any, many: bool) -> None:
        statements.append((sql, params))

    sa.event.listen(store.engine, "before_cursor_execute", seen)
    try:
        call()
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", seen)
    with sqlite3.connect(path) as db:
        return [" | ".join(row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", params))
                for sql, params in statements if reading in sql]


def test_pruning_old_stories_seeks_them_by_last_seen(tmp_path: Path) -> None:
    # Walked in id order instead, a pass that finds nothing (most days) read every story, holding
    # the write lock (bench/README.md, "The store at production size").
    store = Store(f"sqlite:///{tmp_path}/store.sqlite3")
    try:
        plans = _plans(store, tmp_path / "store.sqlite3", lambda: store.prune_stories_before(T0), "FROM stories")
    finally:
        store.close()
    assert plans and all("SEARCH stories USING INDEX ix_stories_last_seen (last_seen<?)" in p for p in plans), plans


def test_clustering_reads_the_queued_articles_not_every_article(tmp_path: Path) -> None:
    # Found by an anti-join of articles and memberships, each clustering batch (and the oldest
    # arrival before them) read every article stored: seconds per batch at 300,000 articles.
    store = Store(f"sqlite:///{tmp_path}/store.sqlite3")
    try:
        plans = _plans(store, tmp_path / "store.sqlite3",
                       lambda: (store.oldest_unclustered_arrival(), store.unclustered_articles(10)), "memberships")
    finally:
        store.close()
    assert len(plans) == 2 and not any("SCAN articles" in p for p in plans), plans


def test_cluster_pages_after_the_first_seek_by_the_listing_index(tmp_path: Path) -> None:
    # Without it, every page after the first sorted every story (a second each at 100,000).
    store = Store(f"sqlite:///{tmp_path}/store.sqlite3")
    try:
        plans = _plans(store, tmp_path / "store.sqlite3",
                       lambda: store.cluster_page(50, after="3.1700000000000000.s1"), "FROM stories")
    finally:
        store.close()
    assert plans and all("SEARCH stories USING INDEX ix_stories_listing" in p for p in plans), plans
    assert not any("TEMP B-TREE FOR ORDER BY" in p for p in plans), plans  # only ties on size and time are sorted


def test_the_river_of_an_outlet_finds_its_stories_from_its_articles(tmp_path: Path) -> None:
    # Asked of each story in turn, the river of an outlet that ran few stories walked every story
    # (nine seconds at 100,000 stories).
    store = Store(f"sqlite:///{tmp_path}/store.sqlite3")
    try:
        plans = _plans(store, tmp_path / "store.sqlite3",
                       lambda: store.story_page(30, StoryFilter(outlet="Ledger"), after="1700000000000000.s1"),
                       "FROM stories")
    finally:
        store.close()
    assert plans and all("SEARCH articles USING COVERING INDEX ix_articles_outlet (outlet=?)" in p for p in plans), plans
    assert not any("SCAN stories" in p for p in plans), plans


def test_a_claims_work_does_not_grow_with_the_backlog(tmp_path: Path) -> None:
    # A claim read every free entry to rank each feed's oldest first: 4 s a claim at a million
    # pending entries, with the database's write lock held; then each feed's first ``limit``,
    # 1 s a claim at a thousand feeds of a thousand. And a pass began by reading every pending
    # entry for the workers holding some. Counted in SQLite's virtual machine steps
    # (deterministic), the start of a pass beside a backlog ten times longer must cost about the
    # same, and beside ten times as many feeds, no more than their index lookups add.
    def steps_of_a_claim(feeds: int, backlog: int, limit: int) -> int:
        store = Store(f"sqlite:///{tmp_path}/backlog-{feeds}-{backlog}.sqlite3")
        try:
            sites = [f"site{n}" for n in range(feeds)]
            store.sync_feeds([FeedSource(id=site, name=site, url=f"https://{site}.example/feed.xml") for site in sites])
            for site in sites:
                store.record_feed_fetched(site, [FeedEntry(feed_id=site, url=f"https://{site}.example/a/{n}",
                                                           title="t", summary="s") for n in range(backlog)],
                                          Validators(), now=T0, next_attempt_at=T0)
            steps = 0

            def count_steps() -> int:
                nonlocal steps
                steps += 1
                return 0

            sa.event.listen(store.engine, "before_cursor_execute",
                            lambda conn, *_: conn.connection.driver_connection.set_progress_handler(count_steps, 100))
            store.release_dead_claims()
            assert len(store.claim_entries(limit, "w1", lease_seconds=60)) == limit
            return steps
        finally:
            store.close()

    short, long = steps_of_a_claim(2, 300, 4), steps_of_a_claim(2, 3000, 4)
    assert long < 1.5 * short, (short, long)
    few, many = steps_of_a_claim(20, 40, 10), steps_of_a_claim(200, 40, 10)
    assert many < 3 * few, (few, many)


def test_a_merge_finds_the_aliases_of_the_cluster_it_absorbs_by_an_index(tmp_path: Path) -> None:
    # Every merge repoints the aliases of the cluster it absorbs, and retention deletes those of the
    # stories it prunes: without the index, each read every alias recorded since the store began.
    store = Store(f"sqlite:///{tmp_path}/store.sqlite3")
    absorbing = Assignment(Membership("a2", "c1", "a1"), Signature("a2", b"s", T0), absorbed=("c2",))
    try:
        plans = _plans(store, tmp_path / "store.sqlite3", lambda: (
            store.save_assignments([absorbing]), store.prune_stories_before(T0)), "cluster_aliases SET")
    finally:
        store.close()
    assert plans and all("SEARCH cluster_aliases USING INDEX ix_cluster_aliases_survivor_id (survivor_id=?)" in p
                         for p in plans), plans
