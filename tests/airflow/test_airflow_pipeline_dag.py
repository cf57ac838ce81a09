"""The news_pipeline DAG run for real (``dag.test()``) against the demo corpus over loopback HTTP."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from demo_truth import clusters_in, expected, expected_clusters, ids_of

from pipeline.cli import main
from pipeline.demo.run import demo_settings, write_demo_feeds
from pipeline.demo.server import CorpusServer
from pipeline.models import SearchQuery
from pipeline.runner import Pipeline
from pipeline.settings import load_settings

STAGES = ("load_feeds", "fetch_articles", "cluster_articles", "merge_stories", "index_stories", "report")
TIMED = {"load_feeds", "poll_feeds", "fetch_articles", "cluster_articles", "merge_stories", "index_stories"}


def recorded_runs() -> list[Any]:
    """The runs table, newest first (the settings the tasks read)."""
    with Pipeline(load_settings()) as pipeline:
        return pipeline.store.recent_runs(20)


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
    # Every demo feed is on 127.0.0.1, one registrable domain: one batch, one politeness clock.
    assert first.mapped("poll_feeds") == {0: "success"}
    assert first.labels[("poll_feeds", 0)] == f"127.0.0.1, {feed_count} feeds"
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
    # The DAG run is one row of the runs table, with its counts and each stage's time.
    [record] = recorded_runs()
    assert (record.trigger, record.status, record.airflow_run) == ("airflow", "ok", first.dag_run.run_id)
    assert record.finished_at is not None and record.pid is None  # its tasks ran in processes of their own
    assert record.stats["articles_added"] == report["articles_added"] and len(record.stats["feeds"]) == feed_count
    assert set(record.stats["stage_seconds"]) == TIMED

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
    assert third.mapped("poll_feeds") == {}
    assert third.state("report") == "success"
    assert third.value("report")["feeds"] == []
    runs = recorded_runs()
    assert [(r.airflow_run, r.status) for r in runs] == [(d.dag_run.run_id, "ok") for d in (third, second, first)]
    assert set(runs[0].stats["stage_seconds"]) == TIMED - {"poll_feeds"}  # nothing was due


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

    # The broken feed fails alone: its batch succeeds and the report names it.
    assert run.mapped("poll_feeds") == {0: "success"}
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
    [record] = recorded_runs()
    assert (record.airflow_run, record.status) == (run.dag_run.run_id, "failed") and record.finished_at is not None
    # fetch_articles runs whatever the polls did (it works on what the store has queued), and so do the stages after it.
    assert set(record.stats["stage_seconds"]) == TIMED - {"poll_feeds"}


class _Publishers(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, hits: Counter[str], lock: threading.Lock) -> None:
        super().__init__((host, 0), _Feeds)
        self.hits, self.lock = hits, lock
        self.base_url = f"http://{host}:{self.server_address[1]}"


class _Feeds(BaseHTTPRequestHandler):
    """An empty RSS feed at every path, except: 404 under /missing/, 503 with Retry-After: 3600
    under /down/, and under /slow/ a first answer slower than the poll task may take."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body leave at once, not 40 ms apart
    server: _Publishers

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.hits[self.server.base_url + self.path] += 1
            first = self.server.hits[self.server.base_url + self.path] == 1
        status, body, headers = 200, b"<rss version='2.0'><channel><title>Quiet</title></channel></rss>", {}
        if self.path.startswith("/missing/"):
            status, body = 404, b"no such feed"
        elif self.path.startswith("/down/"):
            status, body, headers = 503, b"down for maintenance", {"Retry-After": "3600"}
        elif self.path.startswith("/slow/") and first:
            time.sleep(SLOW_ANSWER)
        self.send_response(status)
        for name, value in {"Content-Type": "application/rss+xml", "Content-Length": str(len(body)), **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@contextmanager
def publishers(count: int) -> Iterator[tuple[list[str], Counter[str]]]:
    """A feed server on each of 127.0.0.1 .. 127.0.0.<count> (each address its own registrable
    domain); yields their base URLs and the number of requests seen by URL."""
    hits: Counter[str] = Counter()
    lock = threading.Lock()
    servers = [_Publishers(f"127.0.0.{n}", hits, lock) for n in range(1, count + 1)]
    for server in servers:
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield [server.base_url for server in servers], hits
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def write_feeds(path: Path, urls: list[str]) -> Path:
    path.write_text(yaml.safe_dump({"feeds": [{"name": f"Feed {n}", "url": u} for n, u in enumerate(urls)]}),
                    encoding="utf-8")
    return path


# Airflow's retries of the poll task, as production has them (NETWORK_RETRIES), without the delay.
POLL_RETRIES = {"poll_feeds": 3}
SLOW_ANSWER = 8.0  # seconds the first request under /slow/ waits: longer than the poll task's time limit below


def _poll_runs_out_of_time_on_slow_feeds(dagbag: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A poll try that waits for a slow feed's first answer runs out of time: its time limit is half the wait."""
    poll = dagbag.dags["news_pipeline"].get_task("poll_feeds")
    monkeypatch.setattr(poll, "execution_timeout", timedelta(seconds=SLOW_ANSWER / 2))


def test_a_retry_leaves_a_publisher_alone_until_its_retry_after_and_counts_once(
    newsagg_env: Callable[..., Path],
    run_dag: Callable[..., Any],
    dagbag: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with publishers(1) as ([base], hits):
        down, slow = f"{base}/down/feed.xml", f"{base}/slow/feed.xml"
        newsagg_env(base, write_feeds(tmp_path / "feeds.yaml", [down, slow]))
        # The first try of the batch runs out of time on the slow feed, after the 503 was recorded.
        _poll_runs_out_of_time_on_slow_feeds(dagbag, monkeypatch)

        run = run_dag("news_pipeline", retries=POLL_RETRIES)

        # The retry polled the slow feed again but not the one that asked for an hour's rest.
        assert run.tries[("poll_feeds", 0)] == 2 and run.mapped("poll_feeds") == {0: "success"}
        assert hits[down] == 1 and hits[slow] == 2
        # The retry is the same run: one row, and the time of the try that ran out counts (the retry's
        # own is a fast answer; the try's stage starts after the task's clock, so it is under the limit).
        [record] = recorded_runs()
        assert (record.airflow_run, record.status) == (run.dag_run.run_id, "ok")
        assert record.stats["stage_seconds"]["poll_feeds"] >= SLOW_ANSWER / 4
        report = run.value("report")
        assert report["failed_feeds"] == ["feed-0"]
        failed = next(f for f in report["feeds"] if f["feed_id"] == "feed-0")
        assert failed["status"] == "failed" and "503" in failed["error"]
        with Pipeline(load_settings()) as pipeline:
            state = pipeline.store.feed_state("feed-0")
        assert state is not None and (state.status, state.consecutive_failures, state.failure_score) == ("failing", 1, 1.0)
        assert state.next_attempt_at is not None and state.next_attempt_at - run.dag_run.start_date > timedelta(minutes=55)

        # The next scheduled run while the publisher asks to wait: nothing is due, nobody is asked.
        again = run_dag("news_pipeline", retries=POLL_RETRIES)
        assert again.mapped("poll_feeds") == {} and again.state("report") == "success"
        assert hits[down] == 1 and hits[slow] == 2


def test_the_report_of_a_retried_then_cleared_dag_run_lists_each_feed_it_polled_once(
    newsagg_env: Callable[..., Path],
    run_dag: Callable[..., Any],
    dagbag: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with publishers(1) as ([base], hits):
        urls = [f"{base}/quiet/feed.xml", f"{base}/down/feed.xml", f"{base}/missing/feed.xml", f"{base}/slow/feed.xml"]
        newsagg_env(base, write_feeds(tmp_path / "feeds.yaml", urls))
        # The batch's first try polls three feeds and runs out of time on the slow one; its retry polls that one.
        _poll_runs_out_of_time_on_slow_feeds(dagbag, monkeypatch)

        run = run_dag("news_pipeline", retries=POLL_RETRIES)
        # An operator clears the finished run: it runs again under its id, and every feed waits for its next poll.
        again = run_dag("news_pipeline", again=run.dag_run)

    assert run.tries[("poll_feeds", 0)] == 2 and again.mapped("poll_feeds") == {}
    assert [hits[url] for url in urls] == [1, 1, 1, 2]  # the slow feed again by the retry, no feed by the Clear
    want = {
        "feed-0": ("ok", None),
        "feed-1": ("failed", "HTTP 503 Service Unavailable"),
        "feed-2": ("failed", "HTTP 404 Not Found"),
        "feed-3": ("ok", None),
    }
    for report in (run.value("report"), again.value("report")):
        # Each feed the DAG run polled, once, with its outcome: the first try's too, and after the Clear.
        assert {f["feed_id"]: (f["status"], f["error"]) for f in report["feeds"]} == want
        assert len(report["feeds"]) == 4 and report["failed_feeds"] == ["feed-1", "feed-2"]
    [record] = recorded_runs()
    assert (record.airflow_run, record.status) == (run.dag_run.run_id, "ok")
    assert {f["feed_id"]: (f["status"], f["error"]) for f in record.stats["feeds"]} == want


def test_five_thousand_feeds_poll_in_few_batches_and_a_failed_feed_shows_per_feed(
    newsagg_env: Callable[..., Path],
    run_dag: Callable[..., Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with publishers(41) as (bases, hits):
        # One publisher with 1,000 feeds, forty with 100; the last feed is missing (404).
        urls = [f"{bases[0]}/big/{n}.xml" for n in range(1000)]
        urls += [f"{base}/small/{n}.xml" for base in bases[1:] for n in range(100)]
        urls[-1] = f"{bases[-1]}/missing/feed.xml"
        newsagg_env(bases[0], write_feeds(tmp_path / "feeds.yaml", urls))
        monkeypatch.setenv("NEWSAGG_FETCH__ALLOWED_HOSTS", '["127.0.0.0/8"]')
        monkeypatch.setenv("NEWSAGG_WORKERS", "1")

        run = run_dag("news_pipeline", retries=POLL_RETRIES)

    # 21 mapped instances, not 5,000 (Airflow maps at most 1024): the big publisher whole, the
    # others two to a batch of 200 (feeds.poll_batch_size).
    batches = run.mapped("poll_feeds")
    assert len(batches) == 21 and set(batches.values()) == {"success"}
    labels = [run.labels[("poll_feeds", i)] for i in range(21)]
    assert labels[0] == "127.0.0.1, 1000 feeds"
    assert all(label.endswith(" +1 domains, 200 feeds") for label in labels[1:])
    assert len(hits) == 5000 and set(hits.values()) == {1}  # every feed polled once
    report = run.value("report")
    assert len(report["feeds"]) == 5000 and report["failed_feeds"] == ["feed-4999"]
    failed = next(f for f in report["feeds"] if f["feed_id"] == "feed-4999")
    assert failed["status"] == "failed" and "404" in failed["error"]
    assert main(["feeds", "status"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith("feed-")}
    assert len(rows) == 5000 and rows["feed-4999"].split()[1:3] == ["failing", "1"]
    assert rows["feed-4999"].endswith("HTTP 404 Not Found")
    assert {row.split()[1] for name, row in rows.items() if name != "feed-4999"} == {"active"}


def test_a_dag_run_that_stops_before_its_report_is_recorded_failed(
    newsagg_env: Callable[..., Path],
    run_dag: Callable[..., Any],
    dagbag: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def killed(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the report task died before it recorded the run")

    with publishers(1) as ([base], _):
        newsagg_env(base, write_feeds(tmp_path / "feeds.yaml", [f"{base}/quiet/feed.xml"]))
        monkeypatch.setattr(dagbag.dags["news_pipeline"].get_task("report"), "python_callable", killed)

        run = run_dag("news_pipeline")

    assert run.state("report") == "failed" and run.dag_run.state == "failed"
    # The DAG's failure callback recorded it: not left running until it is taken for abandoned.
    [record] = recorded_runs()
    assert (record.airflow_run, record.status) == (run.dag_run.run_id, "failed") and record.finished_at is not None
    assert set(record.stats["stage_seconds"]) == TIMED
    capsys.readouterr()
    assert main(["runs", "list"]) == 0
    [line] = [line for line in capsys.readouterr().out.splitlines() if "airflow" in line]
    assert line.split()[1:3] == ["failed", "airflow"] and line.endswith(f"(Airflow run {run.dag_run.run_id})")
