"""Delivering the outbox: two indexers at once keep the newest version (both backends), and
documents the index refuses end in the dead letters, listed and re-queued by `newsagg outbox`."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from elasticsearch import ConflictError

from pipeline.cli import main
from pipeline.demo.run import demo_settings, write_demo_feeds
from pipeline.demo.server import CorpusServer
from pipeline.models import IndexChange, IndexFailure, SearchQuery, SearchResults, Source, Story
from pipeline.runner import Pipeline
from pipeline.search import SearchIndex, open_index
from pipeline.search.elastic import ElasticsearchIndex
from pipeline.search.elastic.documents import story_document
from pipeline.settings import ElasticsearchSettings, Settings, load_settings

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def story(title: str, text: str, url: str = "https://ledger.example/s1", story_id: str = "s1") -> Story:
    return Story(id=story_id, title=title, text=text, summary=text, sources=(Source("a1", "ledger", url, title, T0),),
                 first_seen=T0, last_seen=T0, language="en")


class HeldWrites:
    """A search index whose write waits until released: one indexer's batch held back while another delivers."""

    def __init__(self, inner: SearchIndex) -> None:
        self.inner = inner
        self.waiting = threading.Event()
        self.release = threading.Event()

    def setup(self) -> None:
        self.inner.setup()

    def write(self, changes: Sequence[IndexChange]) -> list[IndexFailure]:
        self.waiting.set()
        assert self.release.wait(60)
        return self.inner.write(changes)

    def search(self, query: SearchQuery) -> SearchResults:
        return self.inner.search(query)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture(params=["sqlite", "elasticsearch"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """A fresh store and search index of either backend (an Elasticsearch prefix of its own, dropped afterwards)."""
    if request.param == "sqlite":
        yield Settings(data_dir=tmp_path / "data")
        return
    es = ElasticsearchSettings(urls=[request.getfixturevalue("es_url")], index_prefix=f"t-{uuid.uuid4().hex[:8]}")
    yield Settings(data_dir=tmp_path / "data", search_backend="elasticsearch", es=es)
    cleanup = ElasticsearchIndex(es)
    cleanup.drop()
    cleanup.close()


def titles(index: SearchIndex, text: str) -> list[str]:
    refresh = getattr(index, "refresh", None)
    if refresh:
        refresh()
    return [hit.title for hit in index.search(SearchQuery(text=text)).hits]


@pytest.mark.parametrize("newer", ["changed", "deleted"])
def test_two_indexers_at_once_cannot_leave_an_older_story(settings: Settings, newer: str) -> None:
    """The indexer that read the older story delivers it last: the index keeps the newer one
    (for a deletion: Elasticsearch's tombstone, the SQLite backend's kept version)."""
    with Pipeline(settings) as slow, Pipeline(settings) as fast:
        slow.store.save_stories([story("Dockworkers strike", "The port is closed.")], [])
        held = HeldWrites(open_index(settings))
        held.setup()
        slow._index = held
        with ThreadPoolExecutor(1) as pool:
            slow_run = pool.submit(slow.index_outbox)
            assert held.waiting.wait(60)  # the slow indexer has read the old story and waits to write it
            if newer == "changed":
                fast.store.save_stories([story("Dockworkers end strike", "The port reopens.")], [])
            else:
                fast.store.save_stories([], ["s1"])
            assert fast.index_outbox() == (1, 0)
            held.release.set()
            assert slow_run.result(timeout=120) == (1, 0)  # refused as older: done, not failed

        assert titles(fast.index, "dockworkers") == (["Dockworkers end strike"] if newer == "changed" else [])
        # A story deleted while being written is queued again (see the next test); delivering it changes nothing.
        assert fast.index_outbox() == ((1, 0) if newer == "deleted" else (0, 0))
        assert titles(fast.index, "dockworkers") == (["Dockworkers end strike"] if newer == "changed" else [])
        assert fast.store.outbox_size() == 0


def forget_deletions(index: ElasticsearchIndex) -> None:
    """Wait until the stories index has dropped the versions of deleted documents (index.gc_deletes 0s).

    Elasticsearch prunes them on refresh once they are older than gc_deletes by its coarse
    clock; a probe document deleted after the others, then written with an older version,
    tells when that has happened (it is created instead of refused).
    """
    alias = index.alias("stories")
    probe = story_document(story("Probe", "Probe.", story_id="probe"))
    index.client.index(index=alias, id="probe", document=probe, version=1, version_type="external")
    index.client.delete(index=alias, id="probe", version=2, version_type="external")
    for _ in range(100):
        index.refresh()
        try:
            index.client.index(index=alias, id="probe", document=probe, version=1, version_type="external")
        except ConflictError:
            time.sleep(0.1)
            continue
        index.client.delete(index=alias, id="probe", version=3, version_type="external")
        return
    raise AssertionError("Elasticsearch kept the version of a deleted document")


def test_a_write_that_outlives_the_deletion_it_missed_is_deleted_again(es_url: str, tmp_path: Path) -> None:
    """Elasticsearch forgets a deletion's version after index.gc_deletes: an older write that
    arrives later is applied. The indexer that wrote it notices the store no longer holds the
    story and queues it again, and the next delivery deletes it."""
    es = ElasticsearchSettings(urls=[es_url], index_prefix=f"t-{uuid.uuid4().hex[:8]}")
    settings = Settings(data_dir=tmp_path / "data", search_backend="elasticsearch", es=es)
    try:
        with Pipeline(settings) as slow, Pipeline(settings) as fast:
            index = fast.index
            assert isinstance(index, ElasticsearchIndex)
            index.client.indices.put_settings(index=index.alias("stories"), settings={"index.gc_deletes": "0s"})
            slow.store.save_stories([story("Dockworkers strike", "The port is closed.")], [])
            held = HeldWrites(open_index(settings))
            slow._index = held
            with ThreadPoolExecutor(1) as pool:
                slow_run = pool.submit(slow.index_outbox)
                assert held.waiting.wait(60)
                fast.store.save_stories([], ["s1"])
                assert fast.index_outbox() == (1, 0)
                forget_deletions(index)
                held.release.set()
                assert slow_run.result(timeout=120) == (1, 0)

            assert titles(index, "dockworkers") == ["Dockworkers strike"]  # back in the index...
            assert fast.store.outbox_size() == 1  # ...and queued again
            assert fast.index_outbox() == (1, 0)
            assert titles(index, "dockworkers") == []
    finally:
        cleanup = ElasticsearchIndex(es)
        cleanup.drop()
        cleanup.close()


def test_refused_documents_go_to_the_dead_letters_and_outbox_retry_requeues_them(
    es_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("NEWSAGG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("NEWSAGG_SEARCH_BACKEND", "elasticsearch")
    monkeypatch.setenv("NEWSAGG_ES__URLS", json.dumps([es_url]))
    monkeypatch.setenv("NEWSAGG_ES__INDEX_PREFIX", prefix)
    monkeypatch.setenv("NEWSAGG_OUTBOX__MAX_ATTEMPTS", "2")
    monkeypatch.delenv("NEWSAGG_CONFIG", raising=False)
    huge_url = "https://ledger.example/" + "x" * 40_000  # over Lucene's 32766-byte term limit: a mapping refusal
    try:
        with Pipeline(load_settings()) as pipeline:
            pipeline.store.save_stories([story("Port strike", "Closed.", huge_url, "bad"),
                                         story("Council vote", "Approved.", story_id="good")], [])
            assert pipeline.index_outbox() == (1, 1)
            assert pipeline.index_outbox() == (0, 1)  # second refusal: max_attempts reached
            assert pipeline.index_outbox() == (0, 0)  # no longer retried
            assert pipeline.store.outbox_size() == 0

        assert main(["outbox", "list", "--json"]) == 0
        listed = json.loads(capsys.readouterr().out)
        assert (listed["waiting"], listed["retrying"]) == (0, 0)
        (dead,) = listed["dead_letters"]
        assert (dead["kind"], dead["doc_id"], dead["attempts"], dead["deleted"]) == ("story", "bad", 2, False)
        assert dead["last_error"].startswith("400 ") and "url" in dead["last_error"]

        assert main(["outbox", "list"]) == 0
        out = capsys.readouterr().out
        assert "outbox: 0 documents wait" in out and "dead letters: 1" in out and "story:bad  2 attempts" in out

        for argv, code, error in [
            (["outbox", "retry"], 2, "name the dead letters to retry as KIND:ID, or give --all"),
            (["outbox", "retry", "bad"], 2, "not a KIND:ID (story:ID or article:ID): 'bad'"),
            (["outbox", "retry", "--all", "story:bad"], 2, "name the dead letters to retry as KIND:ID, or give --all"),
            (["outbox", "retry", "story:good"], 1, "no dead letter story:good (see `newsagg outbox list`)"),
        ]:
            assert main(argv) == code
            err = capsys.readouterr().err
            assert err == f"newsagg: error: {error}\n", argv

        assert main(["outbox", "retry", "story:bad"]) == 0
        assert capsys.readouterr().out == "1 document queued again for the search index\n"
        with Pipeline(load_settings()) as pipeline:
            status = pipeline.store.outbox_status()
            assert (status.waiting, status.retrying, status.dead_letters) == (1, 0, [])
            assert pipeline.index_outbox() == (0, 1)
            assert pipeline.index_outbox() == (0, 1)
            assert pipeline.store.outbox_size() == 0
        assert main(["outbox", "retry", "--all"]) == 0
        assert capsys.readouterr().out == "1 document queued again for the search index\n"
    finally:
        cleanup = ElasticsearchIndex(ElasticsearchSettings(urls=[es_url], index_prefix=prefix))
        cleanup.drop()
        cleanup.close()


@pytest.mark.parametrize("backend", ["sqlite", "elasticsearch"])
def test_outbox_fill_indexes_the_whole_store_into_a_new_or_lost_index(
    backend: str, corpus_server: CorpusServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest,
) -> None:
    # A store filled on the embedded default, then an index that has none of it: the SQLite
    # index deleted, or Elasticsearch set up after the fact (or rebuilt without a snapshot).
    # Runs index only what changes.
    data = tmp_path / "data"
    settings = demo_settings(corpus_server.base_url, data, write_demo_feeds(corpus_server.base_url, tmp_path / "f.yaml"))
    with Pipeline(settings) as pipeline:
        pipeline.run(force=True)
        stories, articles = len(pipeline.store.story_page(100).stories), pipeline.store.article_count()
    for name in [n for n in os.environ if n.startswith("NEWSAGG_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("NEWSAGG_DATA_DIR", str(data))
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    es_url = request.getfixturevalue("es_url") if backend == "elasticsearch" else ""
    if backend == "sqlite":
        for file in data.glob("search.sqlite3*"):
            file.unlink()
    else:
        monkeypatch.setenv("NEWSAGG_SEARCH_BACKEND", "elasticsearch")
        monkeypatch.setenv("NEWSAGG_ES__URLS", json.dumps([es_url]))
        monkeypatch.setenv("NEWSAGG_ES__INDEX_PREFIX", prefix)
    es = ElasticsearchIndex(ElasticsearchSettings(urls=[es_url], index_prefix=prefix)) if backend == "elasticsearch" \
        else None
    try:
        # A reader says the index is missing (not an empty one finding nothing) and makes none.
        assert main(["search", "desalination plant", "--json"]) == 1
        assert "is missing while the store holds stories: `newsagg outbox fill` builds it again" in \
            capsys.readouterr().err
        if es is None:
            assert not list(data.glob("search.sqlite3*"))
        else:
            assert es.client.indices.get(index=f"{prefix}-*").body == {}
        # A writer (a run) makes it, saying once that the stories stored before are not in it.
        with caplog.at_level(logging.WARNING, logger="pipeline.search"), Pipeline(load_settings()) as pipeline:
            assert pipeline.index is not None
        made = [r.getMessage() for r in caplog.records if r.name == "pipeline.search"]
        assert len(made) == 1 and made[0].endswith(
            "made anew while the store holds stories: they are not in it until `newsagg outbox fill` runs"), made

        assert main(["outbox", "fill"]) == 0
        out = capsys.readouterr().out
        assert f"{stories} stories and {articles} articles queued" in out
        filled = load_settings()
        index = open_index(filled)
        try:
            assert titles(index, "desalination plant") == ["Drought-hit Valmora approves 1.2 bln euro desalination plant"]
        finally:
            index.close()
        assert main(["outbox", "list"]) == 0
        assert "outbox: 0 documents wait" in capsys.readouterr().out
    finally:
        if es is not None:
            es.drop()
            es.close()


def test_an_index_that_refuses_every_write_for_now_is_one_line_and_a_partial_run(es_url: str, tmp_path: Path) -> None:
    # What an interrupted `es reindex` leaves (the old index write-blocked), as does Elasticsearch's
    # disk flood stage: the index refuses every write, none by the document's fault. Each document
    # was a warning line of its own (thousands a run), and the run ended `ok` with exit status 0.
    import subprocess
    import sys

    prefix = f"t-{uuid.uuid4().hex[:8]}"
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text("feeds: []\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSAGG_")}
    env.update(NEWSAGG_DATA_DIR=str(tmp_path / "data"), NEWSAGG_FEEDS_FILE=str(feeds), NEWSAGG_WORKERS="1",
               NEWSAGG_SEARCH_BACKEND="elasticsearch", NEWSAGG_ES__URLS=json.dumps([es_url]),
               NEWSAGG_ES__INDEX_PREFIX=prefix)
    es = ElasticsearchIndex(ElasticsearchSettings(urls=[es_url], index_prefix=prefix))

    def newsagg(*command: str) -> tuple[int, dict[str, object], str]:
        done = subprocess.run([sys.executable, "-m", "pipeline", *command, "--json"], env=env, capture_output=True,
                              text=True, timeout=120, stdin=subprocess.DEVNULL)
        return done.returncode, json.loads(done.stdout), done.stderr

    try:
        es.install()
        (blocked,) = es.client.indices.get_alias(name=es.alias("stories")).body
        es.client.indices.put_settings(index=blocked, settings={"index.blocks.write": True})
        warc = Path(__file__).parent.parent / "data" / "cc-news-style.warc.gz"
        code, report, err = newsagg("import-warc", str(warc))
        settled = report["settled"]
        assert code == 1 and isinstance(settled, dict) and "cluster_block_exception" in str(settled["index_error"])
        assert err.count("\n") == 1 and "search index unavailable, 2 documents wait in the outbox" in err, err
        code, report, err = newsagg("run")
        assert code == 1 and err.count("\n") == 1 and "2 documents wait in the outbox" in err, err
        es.client.indices.put_settings(index=blocked, settings={"index.blocks.write": None})
        code, report, err = newsagg("run")
        assert (code, report["indexed"], report["outbox_left"], err) == (0, 2, 0, "")
    finally:
        es.drop()
        es.close()


def test_a_server_that_is_not_elasticsearch_is_not_taken_for_a_missing_index(
    corpus_server: CorpusServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # es.urls naming another server (a wrong port): its 404 for the aliases was read as Elasticsearch
    # saying they do not exist, and `search` sent the operator to `newsagg outbox fill`.
    for name in [n for n in os.environ if n.startswith("NEWSAGG_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("NEWSAGG_DATA_DIR", str(tmp_path / "data"))
    with Pipeline(Settings(data_dir=tmp_path / "data")) as pipeline:
        pipeline.store.save_stories([story("Port strike", "Closed.")], [])
    monkeypatch.setenv("NEWSAGG_SEARCH_BACKEND", "elasticsearch")
    monkeypatch.setenv("NEWSAGG_ES__URLS", json.dumps([corpus_server.base_url]))
    assert main(["search", "strike"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not Elasticsearch" in err and "outbox fill" not in err, err
