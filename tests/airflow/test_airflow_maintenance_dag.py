"""The news_maintenance DAG run for real (``dag.test()``) on a store the pipeline filled from the demo corpus."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from pipeline.demo.run import demo_settings, write_demo_feeds
from pipeline.demo.server import CorpusServer, bundled_corpus_dir
from pipeline.runner import Pipeline
from pipeline.search.sqlite import SqliteSearchIndex
from pipeline.storage.schema import memberships, signatures, stories
from pipeline.urls import article_id, canonicalize

BROKEN = "gone-missing-gazette"


def cluster_ids(base_url: str, cluster: dict[str, Any]) -> list[str]:
    return [article_id(canonicalize(base_url + path) or "") for path in cluster["members"]]


@pytest.fixture
def aged_store(
    corpus_server: CorpusServer, newsagg_env: Callable[..., Path], tmp_path: Path
) -> Iterator[tuple[Pipeline, list[str], list[str]]]:
    """The corpus run through the pipeline, then aged: cluster A's articles left the matching
    window a while ago, cluster B's story was last seen four months ago, everything else
    arrived yesterday; one feed has failed its last three polls. Returns (pipeline, A, B)."""
    base = corpus_server.base_url
    feeds_file = write_demo_feeds(base, tmp_path / "feeds.yaml")
    with feeds_file.open("a", encoding="utf-8") as out:
        out.write(f'  - name: Gone Missing Gazette\n    url: "{base}/nope/feed.xml"\n')
    data_dir = newsagg_env(base, feeds_file)
    truth = json.loads((bundled_corpus_dir() / "expected.json").read_text(encoding="utf-8"))
    a, b = (cluster_ids(base, c) for c in truth["clusters"][:2])

    pipeline = Pipeline(demo_settings(base, data_dir, feeds_file))
    report = pipeline.run(force=True)
    assert report.failed_feeds and report.outbox_left == 0
    pipeline.poll_feed(BROKEN)
    pipeline.poll_feed(BROKEN)
    now = datetime.now(UTC)
    b_story = pipeline.store.membership(b[0])
    assert b_story is not None
    with pipeline.store.engine.begin() as conn:
        conn.execute(signatures.update().values(at=now - timedelta(days=1)))
        conn.execute(signatures.update().where(signatures.c.article_id.in_(a)).values(at=now - timedelta(days=30)))
        conn.execute(signatures.update().where(signatures.c.article_id.in_(b)).values(at=now - timedelta(days=120)))
        conn.execute(stories.update().values(last_seen=now - timedelta(days=1)))
        conn.execute(
            stories.update().where(stories.c.id == b_story.cluster_id).values(last_seen=now - timedelta(days=120))
        )
    yield pipeline, a, b
    pipeline.close()


def test_maintenance_prunes_compacts_and_reports_failing_feeds(
    aged_store: tuple[Pipeline, list[str], list[str]], run_dag: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline, a, b = aged_store
    monkeypatch.setenv("NEWSAGG_STORY_RETENTION_DAYS", "90")
    index = pipeline.index
    assert isinstance(index, SqliteSearchIndex)
    before = index.document_counts()
    articles = pipeline.store.article_count()

    run = run_dag("news_maintenance", {"min_failures": 3})

    assert run.states == {
        ("apply_retention", -1): "success",
        ("compact_store", -1): "success",
        ("feed_health", -1): "success",
        ("check_search_index", -1): "skipped",  # SQLite backend
    }
    assert run.value("apply_retention") == {
        "signatures_dropped": len(a) + len(b),
        "stories_pruned": 1,
        "articles_pruned": len(b),
        "domain_clocks_pruned": 0,  # the run's politeness clock is minutes old, not a day
        "archive_files_deleted": 0,  # these articles were stored without the archive
    }
    store = pipeline.store
    with store.engine.connect() as conn:
        left = set(conn.execute(sa.select(signatures.c.article_id)).scalars())
        assert not left & set(a + b) and left
        assert not set(conn.execute(sa.select(memberships.c.article_id)).scalars()) & set(b)
        assert conn.exec_driver_sql("PRAGMA freelist_count").scalar() == 0  # compacted
    assert store.article_count() == articles - len(b)
    assert set(store.articles_by_id(a)) == set(a)  # out of the window, still stored
    after = index.document_counts()
    assert after == {"stories": before["stories"] - 1, "articles": before["articles"] - len(b)}

    health = run.value("feed_health")
    assert [(f["feed_id"], f["consecutive_failures"]) for f in health["failing"]] == [(BROKEN, 3)]
    assert health["failing"][0]["next_attempt_at"] is not None
    assert BROKEN in health["never_succeeded"]


def test_maintenance_checks_the_elasticsearch_aliases(
    corpus_server: CorpusServer,
    newsagg_env: Callable[..., Path],
    run_dag: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from services import ensure_elasticsearch

    from pipeline.search.elastic import ElasticsearchIndex
    from pipeline.settings import ElasticsearchSettings

    newsagg_env(corpus_server.base_url, write_demo_feeds(corpus_server.base_url, tmp_path / "feeds.yaml"))
    es = ElasticsearchSettings(urls=[ensure_elasticsearch()], index_prefix=f"t-airflow-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("NEWSAGG_SEARCH_BACKEND", "elasticsearch")
    monkeypatch.setenv("NEWSAGG_ES__URLS", json.dumps(es.urls))
    monkeypatch.setenv("NEWSAGG_ES__INDEX_PREFIX", es.index_prefix)
    elastic = ElasticsearchIndex(es)
    try:
        missing = run_dag("news_maintenance")
        assert missing.state("check_search_index") == "failed"
        assert missing.state("apply_retention") == missing.state("feed_health") == "success"

        elastic.install()
        ok = run_dag("news_maintenance")
        assert ok.state("check_search_index") == "success"
    finally:
        elastic.drop()
        elastic.close()
