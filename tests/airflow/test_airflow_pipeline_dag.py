"""The news_pipeline DAG run for real (``dag.test()``) against the demo corpus over loopback HTTP."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from demo_truth import clusters_in, expected, expected_clusters, ids_of

from pipeline.demo.run import demo_settings, write_demo_feeds
from pipeline.demo.server import CorpusServer
from pipeline.models import SearchQuery
from pipeline.runner import Pipeline

STAGES = ("load_feeds", "fetch_articles", "cluster_articles", "merge_stories", "index_stories", "report")


def test_pipeline_dag_clusters_the_corpus_and_a_second_run_adds_nothing(
    corpus_server: CorpusServer, newsagg_env: Callable[..., Path], run_dag: Callable[..., Any], tmp_path: Path
) -> None:
    base = corpus_server.base_url
    feeds_file = write_demo_feeds(base, tmp_path / "feeds.yaml")
    data_dir = newsagg_env(base, feeds_file)
    truth = expected()
    feed_count = len([line for line in feeds_file.read_text().splitlines() if line.strip().startswith("- name:")])

    first = run_dag("news_pipeline")

    assert {t: first.state(t) for t in STAGES} == dict.fromkeys(STAGES, "success")
    assert list(first.mapped("poll_feed").values()) == ["success"] * feed_count
    report = first.value("report")
    assert report["failed_feeds"] == [] and len(report["feeds"]) == feed_count
    assert report["articles_added"] > 0 and report["indexed"] > 0 and report["outbox_left"] == 0
    want = expected_clusters(base)
    with Pipeline(demo_settings(base, data_dir, feeds_file)) as pipeline:
        assert clusters_in(pipeline.store) == want
        for search in truth["searches"]:
            members = ids_of(base, truth["clusters"][search["expect_members_of_cluster"]]["members"])
            membership = pipeline.store.membership(next(iter(members)))
            assert membership is not None
            hits = pipeline.index.search(SearchQuery(text=search["query"])).hits
            assert membership.cluster_id in [h.story_id for h in hits], search["query"]
        articles = pipeline.store.article_count()

    # Nothing is due 15 minutes later; forced, every feed answers 304 and nothing changes.
    second = run_dag("news_pipeline", {"force": True})
    assert {t: second.state(t) for t in STAGES} == dict.fromkeys(STAGES, "success")
    report = second.value("report")
    assert {f["status"] for f in report["feeds"]} == {"not_modified"}
    assert (report["articles_added"], report["clustered"], report["stories_built"], report["indexed"]) == (0, 0, 0, 0)
    with Pipeline(demo_settings(base, data_dir, feeds_file)) as pipeline:
        assert clusters_in(pipeline.store) == want
        assert pipeline.store.article_count() == articles

    # Unforced, no feed is due: the fan-out is empty and the run still completes.
    third = run_dag("news_pipeline")
    assert third.state("report") == "success"
    assert third.value("report")["feeds"] == []


class _Webhook(BaseHTTPRequestHandler):
    posts: list[bytes] = []

    def do_POST(self) -> None:
        self.posts.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


def test_a_broken_feed_fails_alone_and_the_report_lists_it(
    corpus_server: CorpusServer,
    newsagg_env: Callable[..., Path],
    run_dag: Callable[..., Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = corpus_server.base_url
    feeds_file = write_demo_feeds(base, tmp_path / "feeds.yaml")
    with feeds_file.open("a", encoding="utf-8") as out:
        out.write(f"  - name: Gone Missing Gazette\n    url: \"{base}/nope/feed.xml\"\n")
    data_dir = newsagg_env(base, tmp_path / "not-used.yaml")  # the run's feed list comes from the param
    hook = ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    monkeypatch.setenv("NEWSAGG_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{hook.server_address[1]}/hook")

    try:
        run = run_dag("news_pipeline", {"feeds_file": str(feeds_file)})
    finally:
        hook.shutdown()
        hook.server_close()

    [digest] = [json.loads(body) for body in _Webhook.posts]  # one, from the report task
    assert digest["counts"] == {"failing": 1, "retired": 0, "recovered": 0}
    assert digest["changes"][0]["feed"]["id"] == "gone-missing-gazette"

    polls = run.mapped("poll_feed")
    assert sorted(polls.values()) == ["failed"] + ["success"] * (len(polls) - 1)
    assert {t: run.state(t) for t in STAGES} == dict.fromkeys(STAGES, "success")
    report = run.value("report")
    assert report["failed_feeds"] == ["gone-missing-gazette"]
    failed = next(f for f in report["feeds"] if f["feed_id"] == "gone-missing-gazette")
    assert failed["status"] == "failed" and "404" in failed["error"]
    assert report["indexed"] > 0 and report["outbox_left"] == 0
    with Pipeline(demo_settings(base, data_dir, feeds_file)) as pipeline:
        hits = pipeline.index.search(SearchQuery(text="rocket satellites")).hits
        assert hits and hits[0].article_count > 1
        state = pipeline.store.feed_state("gone-missing-gazette")
        assert state is not None and state.consecutive_failures == 1


def test_a_missing_feed_list_fails_the_run_without_retrying(
    corpus_server: CorpusServer, newsagg_env: Callable[..., Path], run_dag: Callable[..., Any], tmp_path: Path
) -> None:
    newsagg_env(corpus_server.base_url, tmp_path / "missing.yaml")

    run = run_dag("news_pipeline", retries={"load_feeds": 2})

    assert run.state("load_feeds") == "failed"
    assert run.tries[("load_feeds", -1)] == 1  # ConfigError: the retry policy fails it at once
    assert run.state("report") == "failed"
    assert run.dag_run.state == "failed"


class _Unavailable(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


def test_terminal_feed_errors_fail_at_once_and_transient_ones_are_retried(
    corpus_server: CorpusServer,
    newsagg_env: Callable[..., Path],
    run_dag: Callable[..., Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    down = ThreadingHTTPServer(("127.0.0.1", 0), _Unavailable)
    threading.Thread(target=down.serve_forever, daemon=True).start()
    try:
        down_url = f"http://127.0.0.1:{down.server_address[1]}"
        feeds_file = tmp_path / "feeds.yaml"
        feeds_file.write_text(
            "feeds:\n"
            f"  - name: Missing\n    url: \"{corpus_server.base_url}/nope/feed.xml\"\n"
            f"  - name: Overloaded\n    url: \"{down_url}/feed.xml\"\n",
            encoding="utf-8",
        )
        newsagg_env(corpus_server.base_url, feeds_file)
        monkeypatch.setenv(
            "NEWSAGG_FETCH__ALLOWED_HOSTS", json.dumps([urlsplit(corpus_server.base_url).netloc, urlsplit(down_url).netloc])
        )

        run = run_dag("news_pipeline", retries={"poll_feed": 2})
    finally:
        down.shutdown()
        down.server_close()

    assert run.mapped("poll_feed") == {0: "failed", 1: "failed"}
    assert run.tries[("poll_feed", 0)] == 1  # 404: terminal, no retry
    assert run.tries[("poll_feed", 1)] == 3  # 503: transient, retried twice
    assert run.value("report")["failed_feeds"] == ["missing", "overloaded"]
