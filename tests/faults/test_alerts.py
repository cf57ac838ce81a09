"""Alerts: a feed's change of health is reported once, to the log and to a loopback webhook."""

from __future__ import annotations

import json
import logging
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from faultkit import Web, fault_settings, rss, write_feed_list
from pipeline.errors import ConfigError
from pipeline.runner import Pipeline
from pipeline.settings import load_settings

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def events(web: Web, path: str = "/hook") -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(body) for p, body in web.posts if p == path]


def test_each_change_of_health_is_reported_once(web: Web, tmp_path: Path) -> None:
    status = {"code": 503}
    web.routes["/feed.xml"] = lambda h: (
        h.reply(200, rss("Flaky", [("One", web.url("/a1.html"), "Summary one.")]).encode(), "application/rss+xml")
        if status["code"] == 200 else h.reply(status["code"], b"no", "text/plain")
    )
    web.routes["/hook"] = lambda h: h.reply(200, b"ok", "text/plain")
    feeds = write_feed_list(tmp_path / "feeds.yaml", {"flaky": web.url("/feed.xml")})
    settings = fault_settings(web, tmp_path, feeds, alert_webhook_url=web.url("/hook"))
    with Pipeline(settings) as pipeline:
        pipeline.load_feeds()
        for minutes in (0, 15, 45):  # three failures in a row: one alert
            assert pipeline.poll_feed("flaky", now=T0 + timedelta(minutes=minutes)).status == "failed"
        assert [e["event"] for e in events(web)] == ["newsagg.feed.failing"]
        first = events(web)[0]
        assert first["feed"] == {"id": "flaky", "name": "flaky", "url": web.url("/feed.xml")}
        assert first["status"] == "failing" and first["previous_status"] == "active"
        assert "HTTP 503" in first["error"] and first["consecutive_failures"] == 1
        assert first["text"].startswith("newsagg: feed 'flaky' (flaky) is failing")

        status["code"] = 200
        for minutes in (120, 240):  # recovers: one alert
            assert pipeline.poll_feed("flaky", now=T0 + timedelta(minutes=minutes)).status in ("ok", "not_modified")
        assert [e["event"] for e in events(web)] == ["newsagg.feed.failing", "newsagg.feed.recovered"]
        assert events(web)[1]["error"] is None

        status["code"] = 410
        assert pipeline.poll_feed("flaky", now=T0 + timedelta(minutes=300)).status == "retired"
        assert [e["event"] for e in events(web)][-1] == "newsagg.feed.retired"
        state = pipeline.store.feed_state("flaky")
        assert state is not None and state.alerted_status == "retired"

    # A later run does not repeat it (the retired feed is not even polled).
    with Pipeline(settings) as pipeline:
        pipeline.run()
    assert len(events(web)) == 3


def test_an_unreachable_webhook_never_breaks_polling_and_the_alert_is_sent_later(
    web: Web, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    secret_hook = f"http://127.0.0.1:{dead_port}/hooks/T0KEN-s3cr3t"
    web.serve("/feed.xml", "gone", "text/plain", status=404)
    feeds = write_feed_list(tmp_path / "feeds.yaml", {"broken": web.url("/feed.xml")})
    caplog.set_level(logging.INFO)

    settings = fault_settings(web, tmp_path, feeds, alert_webhook_url=secret_hook, alert_webhook_timeout=1.0)
    with Pipeline(settings) as pipeline:
        report = pipeline.run()
        assert [f.status for f in report.feeds] == ["failed"]
        state = pipeline.store.feed_state("broken")
        assert state is not None and state.status == "failing" and state.alerted_status is None
    assert any("alert webhook unreachable (ConnectError)" in r.getMessage() for r in caplog.records)
    assert any("alert: feed 'broken'" in r.getMessage() for r in caplog.records)  # the log always has it

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
    assert [e["event"] for e in events(web, "/hooks/T0KEN-s3cr3t")] == ["newsagg.feed.failing"] * 2  # 500, then 204
    assert "T0KEN" not in caplog.text


def test_the_webhook_setting_must_be_http_and_is_never_echoed() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(alert_webhook_url="ftp://user:pa55word@hooks.example/x")
    assert "alert_webhook_url" in str(caught.value) and "pa55word" not in str(caught.value)
    settings = load_settings(alert_webhook_url="https://hooks.example/services/T0KEN")
    assert "T0KEN" not in repr(settings) and "T0KEN" not in str(settings.model_dump())
