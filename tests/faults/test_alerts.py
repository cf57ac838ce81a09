"""Alerts: changes of feeds' health go out once each, as one digest per run, to the log and a loopback webhook."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from faultkit import Handler, Web, fault_settings, rss, write_feed_list
from services import postgres_database

from pipeline import alerts
from pipeline.errors import ConfigError
from pipeline.runner import Pipeline
from pipeline.settings import load_settings
from pipeline.storage import Store

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def digests(web: Web, path: str = "/hook") -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(body) for p, body in web.posts if p == path]


def changes(web: Web, path: str = "/hook") -> list[tuple[str, str]]:
    """(feed id, event) of every change in every digest, in order."""
    return [(c["feed"]["id"], c["event"]) for d in digests(web, path) for c in d["changes"]]


def test_each_change_of_health_is_reported_once(web: Web, tmp_path: Path) -> None:
    status = {"code": 503}
    web.routes["/feed.xml"] = lambda h: (
        h.reply(200, rss("Flaky", [("One", web.url("/a1.html"), "Summary one.")]).encode(), "application/rss+xml")
        if status["code"] == 200 else h.reply(status["code"], b"no", "text/plain")
    )
    web.routes["/hook"] = lambda h: h.reply(200, b"ok", "text/plain")
    feeds = write_feed_list(tmp_path / "feeds.yaml", {"flaky": web.url("/feed.xml")})
    settings = fault_settings(web, tmp_path, feeds, alert_webhook_url=web.url("/hook"), alert_digest_interval=0)
    with Pipeline(settings) as pipeline:
        pipeline.load_feeds()
        for minutes in (0, 15, 45):  # three failures in a row: one alert
            assert pipeline.poll_feed("flaky", now=T0 + timedelta(minutes=minutes)).status == "failed"
            pipeline.send_alerts(now=T0 + timedelta(minutes=minutes))
        assert changes(web) == [("flaky", "newsagg.feed.failing")]
        [digest] = digests(web)
        assert digest["event"] == "newsagg.feeds.digest"
        assert digest["counts"] == {"failing": 1, "retired": 0, "recovered": 0}
        assert digest["text"].startswith("newsagg: 1 feed(s) started failing, 0 retired, 0 recovered\n- feed 'flaky'")
        first = digest["changes"][0]
        assert first["feed"] == {"id": "flaky", "name": "flaky", "url": web.url("/feed.xml")}
        assert first["status"] == "failing" and first["previous_status"] == "active"
        assert first["error"] == "HTTP 503 Service Unavailable" and first["consecutive_failures"] == 1
        assert first["text"].startswith("newsagg: feed 'flaky' (flaky) is failing")

        status["code"] = 200
        for minutes in (120, 240):  # recovers: one alert
            assert pipeline.poll_feed("flaky", now=T0 + timedelta(minutes=minutes)).status in ("ok", "not_modified")
            pipeline.send_alerts(now=T0 + timedelta(minutes=minutes))
        assert changes(web) == [("flaky", "newsagg.feed.failing"), ("flaky", "newsagg.feed.recovered")]
        assert digests(web)[1]["changes"][0]["error"] is None

        status["code"] = 410
        assert pipeline.poll_feed("flaky", now=T0 + timedelta(minutes=300)).status == "retired"
        pipeline.send_alerts(now=T0 + timedelta(minutes=300))
        assert changes(web)[-1] == ("flaky", "newsagg.feed.retired")
        state = pipeline.store.feed_state("flaky")
        assert state is not None and state.alerted_status == "retired"

    # A later run does not repeat it (the retired feed is not even polled).
    with Pipeline(settings) as pipeline:
        pipeline.run()
    assert len(digests(web)) == 3


def test_digests_to_one_webhook_are_spaced_and_what_waits_is_carried(
    web: Web, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    status = {"a": 500, "b": 500, "c": 200}
    for name in status:
        web.routes[f"/{name}.xml"] = lambda h, name=name: (  # type: ignore[misc]
            h.reply(200, rss(name, [("One", web.url(f"/{name}/1.html"), "Summary.")]).encode(), "application/rss+xml")
            if status[name] == 200 else h.reply(status[name], b"no", "text/plain")
        )
    web.routes["/hook"] = lambda h: h.reply(204)
    feeds = write_feed_list(tmp_path / "feeds.yaml", {n: web.url(f"/{n}.xml") for n in status})
    settings = fault_settings(web, tmp_path, feeds, alert_webhook_url=web.url("/hook"), alert_digest_interval=3600)
    caplog.set_level(logging.INFO, logger="pipeline.alerts")

    def poll_all(at: datetime) -> None:
        for name in status:
            pipeline.poll_feed(name, now=at)

    with Pipeline(settings) as pipeline:
        pipeline.load_feeds()
        poll_all(T0)
        assert pipeline.send_alerts(now=T0) is not None
        assert sorted(changes(web)) == [("a", "newsagg.feed.failing"), ("b", "newsagg.feed.failing")]

        # Within the hour: a recovers, c starts failing; the webhook hears nothing yet.
        status.update(a=200, c=404)
        poll_all(T0 + timedelta(minutes=20))
        assert pipeline.send_alerts(now=T0 + timedelta(minutes=20)) is None
        assert len(digests(web)) == 1
        assert "alerts held for the webhook's next digest" in caplog.text
        assert "1 feed(s) started failing, 0 retired, 1 recovered" in caplog.text

        # Nothing new meanwhile, but the held changes go out once the hour is over.
        assert pipeline.send_alerts(now=T0 + timedelta(minutes=61)) is not None
        assert len(digests(web)) == 2
        assert digests(web)[1]["counts"] == {"failing": 1, "retired": 0, "recovered": 1}
        assert sorted(changes(web)[2:]) == [("a", "newsagg.feed.recovered"), ("c", "newsagg.feed.failing")]
        assert pipeline.send_alerts(now=T0 + timedelta(hours=5)) is None  # each change once
    assert len(digests(web)) == 2


def test_an_unreachable_webhook_never_breaks_polling_and_the_alert_is_sent_later(
    web: Web, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    secret_hook = f"http://127.0.0.1:{dead_port}/hooks/T0KEN-s3cr3t"
    web.serve("/feed.xml", "gone", "text/plain", status=404)
    feeds = write_feed_list(tmp_path / "feeds.yaml", {"broken": web.url("/feed.xml")})
    caplog.set_level(logging.DEBUG, logger="pipeline")

    settings = fault_settings(web, tmp_path, feeds, alert_webhook_url=secret_hook, alert_webhook_timeout=1.0)
    with Pipeline(settings) as pipeline:
        report = pipeline.run()
        assert [f.status for f in report.failed_feeds] == ["failed"]
        state = pipeline.store.feed_state("broken")
        assert state is not None and state.status == "failing" and state.alerted_status is None
    assert any("alert webhook unreachable (ConnectError)" in r.getMessage() for r in caplog.records)

    # A webhook that answers 500 is no better; the token in its URL is never logged either.
    web.routes["/hooks/T0KEN-s3cr3t"] = lambda h: h.reply(500, b"oops", "text/plain")
    settings = fault_settings(web, tmp_path, feeds, alert_webhook_url=web.url("/hooks/T0KEN-s3cr3t"))
    with Pipeline(settings) as pipeline:
        pipeline.run(force=True)
    assert any("alert webhook answered HTTP 500" in r.getMessage() for r in caplog.records)

    # Once the webhook takes it, the (still unreported) change is delivered, once.
    web.routes["/hooks/T0KEN-s3cr3t"] = lambda h: h.reply(204)
    with Pipeline(settings) as pipeline:
        pipeline.run(force=True)
        pipeline.run(force=True)
        state = pipeline.store.feed_state("broken")
        assert state is not None and state.alerted_status == "failing"
    assert changes(web, "/hooks/T0KEN-s3cr3t") == [("broken", "newsagg.feed.failing")] * 2  # 500, then 204
    assert any("alerts: 1 feed(s) started failing, 0 retired, 0 recovered; sent to the webhook" in r.getMessage()
               for r in caplog.records)
    assert any("alert: feed 'broken' (broken) is failing" in r.getMessage() for r in caplog.records)  # at -v
    assert "T0KEN" not in caplog.text
    assert b"T0KEN" not in (settings.data_dir / "store.sqlite3").read_bytes()  # its quiet period is keyed by a hash


def test_the_webhook_setting_must_be_http_and_is_never_echoed() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(alert_webhook_url="ftp://user:pa55word@hooks.example/x")
    assert "alert_webhook_url" in str(caught.value) and "pa55word" not in str(caught.value)
    settings = load_settings(alert_webhook_url="https://hooks.example/services/T0KEN")
    assert "T0KEN" not in repr(settings) and "T0KEN" not in str(settings.model_dump())


def test_a_first_run_over_a_thousand_broken_feeds_sends_one_digest_and_logs_a_line_per_feed(
    web: Web, tmp_path: Path
) -> None:
    """`newsagg run` as a user runs it, at its default log level, with a webhook configured."""
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{probe.getsockname()[1]}"
    urls = {
        "500": web.url("/500.xml"), "404": web.url("/404.xml"), "410": web.url("/410.xml"),
        "refused": f"http://{closed}/feed.xml",  # allowed, but nothing listens: connection refused
        "blocked": "http://127.0.0.1:1/feed.xml",  # the address guard refuses it
    }
    groups = {"500": 300, "404": 300, "refused": 100, "blocked": 100, "410": 200}
    names = [f"{group}-{n:03d}" for group, count in groups.items() for n in range(count)]
    for code in ("500", "404", "410"):
        web.serve(f"/{code}.xml", "broken", "text/plain", status=int(code))
    web.routes["/hook"] = lambda h: h.reply(204)
    feeds = write_feed_list(tmp_path / "feeds.yaml", {n: f"{urls[n.split('-')[0]]}?{n}" for n in names})
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSAGG_")}
    env.update({
        "NEWSAGG_DATA_DIR": str(tmp_path / "data"),
        "NEWSAGG_SEARCH_BACKEND": "sqlite",
        "NEWSAGG_ALERT_WEBHOOK_URL": web.url("/hook"),
        "NEWSAGG_FETCH__ALLOWED_HOSTS": json.dumps([f"127.0.0.1:{web.port}", closed]),
        "NEWSAGG_FETCH__POLITENESS_DELAY": "0",
        "NEWSAGG_FETCH__PER_DOMAIN_CONCURRENCY": "16",
        "NEWSAGG_FETCH__CONNECT_TIMEOUT": "2",
        "NEWSAGG_FETCH__READ_TIMEOUT": "2",
        "NEWSAGG_WORKERS": "1",
    })

    done = subprocess.run([sys.executable, "-m", "pipeline", "run", "--feeds", str(feeds)], env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)

    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("feeds 0/1000 ok")
    [digest] = digests(web)  # one webhook request for the whole run
    assert digest["counts"] == {"failing": 800, "retired": 200, "recovered": 0}
    assert sorted(c["feed"]["id"] for c in digest["changes"]) == sorted(names)
    assert digest["text"].count("\n- feed ") == 20 and digest["text"].endswith("... and 980 more (`newsagg feeds status`)")
    lines = done.stderr.splitlines()
    assert len(lines) == 1000, lines[:5]  # one line per failed feed, and nothing else
    named = sorted(line.split()[3] for line in lines if line.startswith("WARNING pipeline.runner: feed "))
    assert named == sorted(names)
    assert "WARNING pipeline.runner: feed 500-000 failed (1 in a row): HTTP 500 Internal Server Error" in lines
    assert "WARNING pipeline.runner: feed 410-000 failed (1 in a row, retired): HTTP 410 Gone" in lines
    assert any(line.startswith("WARNING pipeline.runner: feed refused-000 failed (1 in a row): connection failed")
               for line in lines)
    assert any(line.startswith("WARNING pipeline.runner: feed blocked-000 failed (1 in a row): address guard")
               for line in lines)
    store = Store(f"sqlite:///{tmp_path / 'data' / 'store.sqlite3'}")
    try:
        errors = {s.source.id: s.last_error for s in store.feed_states()}
    finally:
        store.close()
    assert errors["404-000"] == "HTTP 404 Not Found"  # without the feed or its URL: every reader names the feed


@pytest.mark.parametrize("backend", ["embedded", "postgresql"])
def test_two_runs_sending_alerts_at_once_send_one_digest(backend: str, web: Web, tmp_path: Path) -> None:
    # A `newsagg run` from cron and an Airflow run (or two workers) finishing their polls together
    # both read the changes not reported yet, and both posted them: the chat got every alert twice.
    first_arrived, release = threading.Event(), threading.Event()

    def hook(handler: Handler) -> None:
        if not first_arrived.is_set():
            first_arrived.set()
            release.wait(10)  # the first digest is on its way while the second run sends
        handler.reply(200, b"ok", "text/plain")

    web.routes["/hook"] = hook
    web.routes["/feed.xml"] = lambda h: h.reply(503, b"no", "text/plain")
    feeds = write_feed_list(tmp_path / "feeds.yaml", {"flaky": web.url("/feed.xml")})
    with contextlib.ExitStack() as stack:
        store_url = {} if backend == "embedded" else {"store_url": stack.enter_context(postgres_database())}
        settings = fault_settings(web, tmp_path, feeds, alert_webhook_url=web.url("/hook"), alert_digest_interval=0,
                                  **store_url)
        with Pipeline(settings) as pipeline:
            pipeline.load_feeds()
            assert pipeline.poll_feed("flaky", now=T0).status == "failed"
        sent: list[object] = []

        def send() -> None:
            store = Store(settings.resolved_store_url)  # each run has its own
            try:
                sent.append(alerts.send_digest(store, settings, T0))
            finally:
                store.close()

        first = threading.Thread(target=send)
        first.start()
        assert first_arrived.wait(10)
        second = threading.Thread(target=send)
        second.start()
        second.join(2)  # before the fix, its own digest went out meanwhile
        release.set()
        first.join(10)
        second.join(10)
    assert len(digests(web)) == 1, changes(web)
    assert sum(digest is not None for digest in sent) == 1
