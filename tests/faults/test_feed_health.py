"""Feed health end to end: adaptive intervals, weighted failures and retirement, `newsagg feeds status`."""

from __future__ import annotations

import hashlib
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from faultkit import Handler, Web, fault_settings, rss, write_feed_list
from pipeline.cli import main
from pipeline.runner import Pipeline

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


class GrowingFeed:
    """An RSS feed that gains ``per_poll`` items at each request, with ETags (304 when unchanged)."""

    def __init__(self, web: Web, name: str, per_poll: int) -> None:
        self.web, self.name, self.per_poll, self.count = web, name, per_poll, 3

    def __call__(self, h: Handler) -> None:
        self.count += self.per_poll
        items = [(f"{self.name} {n}", self.web.url(f"/{self.name}/{n}.html"), f"Item {n}.")
                 for n in range(self.count, 0, -1)][:50]
        body = rss(self.name, items).encode()
        etag = '"%s"' % hashlib.sha256(body).hexdigest()[:16]
        if h.headers.get("If-None-Match") == etag:
            h.send_response(304)
            h.send_header("ETag", etag)
            h.end_headers()
            return
        h.reply(200, body, "application/rss+xml", ETag=etag)


def test_intervals_adapt_to_each_feeds_pace(web: Web, tmp_path: Path) -> None:
    web.routes["/busy.xml"] = GrowingFeed(web, "busy", per_poll=6)
    web.routes["/quiet.xml"] = GrowingFeed(web, "quiet", per_poll=0)
    feeds = write_feed_list(tmp_path / "feeds.yaml", {"busy": web.url("/busy.xml"), "quiet": web.url("/quiet.xml")})
    settings = fault_settings(web, tmp_path, feeds, feeds={"default_poll_interval": 900, "min_poll_interval": 120,
                                                           "max_poll_interval": 6 * 3600})
    with Pipeline(settings) as pipeline:
        pipeline.load_feeds()
        intervals: dict[str, list[int]] = {"busy": [], "quiet": []}
        for feed_id in intervals:
            now = T0
            for _ in range(8):  # each poll at the time the previous one scheduled
                outcome = pipeline.poll_feed(feed_id, now=now)
                state = pipeline.store.feed_state(feed_id)
                assert state is not None and state.learned_interval is not None, outcome
                assert state.next_attempt_at == now + timedelta(seconds=state.learned_interval)
                intervals[feed_id].append(state.learned_interval)
                now = state.next_attempt_at
        busy, quiet = intervals["busy"], intervals["quiet"]
        assert busy[0] == quiet[0] == 900  # the first poll only sees a backlog
        assert busy == sorted(busy, reverse=True) and busy[-1] == 120  # six new items a poll: as often as allowed
        assert quiet == sorted(quiet) and quiet[-1] > 5 * 3600  # nothing new (304s): hours apart
        state = pipeline.store.feed_state("busy")
        assert state is not None and state.last_new_entry_at is not None


def test_feeds_are_retired_on_weighted_failures(web: Web, tmp_path: Path) -> None:
    web.serve("/missing.xml", "no", "text/plain", status=404)
    web.serve("/down.xml", "no", "text/plain", status=503)
    web.serve("/html.xml", "<!doctype html><html><body>Hello</body></html>")
    feeds = write_feed_list(tmp_path / "feeds.yaml", {
        "missing": web.url("/missing.xml"), "down": web.url("/down.xml"), "html": web.url("/html.xml")})
    settings = fault_settings(web, tmp_path, feeds, feeds={"retire_after_failures": 4, "retire_after_days": 1})
    with Pipeline(settings) as pipeline:
        pipeline.load_feeds()
        history: dict[str, list[str]] = {"missing": [], "down": [], "html": []}
        for n in range(4):
            for feed_id, outcomes in history.items():
                outcomes.append(pipeline.poll_feed(feed_id, now=T0 + timedelta(days=n)).status)
        # A 404 or an HTML page counts 2 towards 4: retired at the second poll; a 503 counts 1.
        assert history == {
            "missing": ["failed", "retired", "retired", "retired"],
            "html": ["failed", "retired", "retired", "retired"],
            "down": ["failed", "failed", "failed", "retired"],
        }
        states = {s.source.id: s for s in pipeline.store.feed_states()}
        assert states["down"].failure_score == 4.0 and states["down"].consecutive_failures == 4
        assert states["missing"].next_attempt_at is None and states["missing"].status == "retired"


def test_a_retried_scheduled_poll_counts_once_and_retirement_needs_days_of_failures(web: Web, tmp_path: Path) -> None:
    web.serve("/down.xml", "busy", "text/plain", status=503)
    feeds = write_feed_list(tmp_path / "feeds.yaml", {"down": web.url("/down.xml")})
    settings = fault_settings(web, tmp_path, feeds, feeds={"retire_after_failures": 3})  # retire_after_days: 3
    with Pipeline(settings) as pipeline:
        pipeline.load_feeds()
        # Airflow retrying the poll of one scheduled run: one failed attempt, however many tries.
        for minutes in (0, 1, 3, 7):
            assert pipeline.poll_feed("down", now=T0 + timedelta(minutes=minutes), attempt="run-1").status == "failed"
        state = pipeline.store.feed_state("down")
        assert state is not None and web.hits("/down.xml") == 4
        assert (state.consecutive_failures, state.failure_score, state.failing_since) == (1, 1.0, T0)
        assert state.attempt_key == "run-1" and state.last_attempt_at == T0 + timedelta(minutes=7)

        # Down for a day, polled by every scheduled run: far past three failures, not retired.
        runs = [T0 + timedelta(minutes=15 * n) for n in range(1, 97)]
        assert {pipeline.poll_feed("down", now=at, attempt=f"run-{n}").status for n, at in enumerate(runs, 2)} == {"failed"}
        state = pipeline.store.feed_state("down")
        assert state is not None and state.status == "failing" and state.consecutive_failures == 97
        # Three days after its first failure, it is.
        assert pipeline.poll_feed("down", now=T0 + timedelta(days=3), attempt="run-x").status == "retired"

        # The streak starts again after a success.
        web.routes["/down.xml"] = lambda h: h.reply(200, rss("Down", [("One", web.url("/1.html"), "One.")]).encode(),
                                                    "application/rss+xml")
        assert pipeline.poll_feed("down", now=T0 + timedelta(days=4)).status == "ok"
        state = pipeline.store.feed_state("down")
        assert state is not None and (state.status, state.failing_since, state.consecutive_failures) == ("active", None, 0)


def test_a_retry_skips_feeds_it_polled_until_they_are_due(web: Web, tmp_path: Path) -> None:
    web.serve("/down.xml", "busy", "text/plain", status=503, Retry_After="3600")
    web.serve("/fine.xml", rss("Fine", [("One", web.url("/1.html"), "One.")]), "application/rss+xml")
    feeds = write_feed_list(tmp_path / "feeds.yaml", {"down": web.url("/down.xml"), "fine": web.url("/fine.xml")})
    settings = fault_settings(web, tmp_path, feeds)
    with Pipeline(settings) as pipeline:
        sources = pipeline.load_feeds()
        assert [o.status for o in pipeline.poll_feeds(pipeline.due_feeds(sources, now=T0, force=True), now=T0,
                                                      attempt="run-1")] == ["failed", "ok"]
        # Retries of the same forced run, a minute and then two hours later: only what is due again.
        assert pipeline.due_feeds(sources, now=T0 + timedelta(minutes=1), force=True, attempt="run-1") == []
        later = T0 + timedelta(hours=2)
        assert [f.id for f in pipeline.due_feeds(sources, now=later, force=True, attempt="run-1")] == ["down", "fine"]
        # Another run with force polls everything; without, only what is due.
        assert len(pipeline.due_feeds(sources, now=T0 + timedelta(minutes=1), force=True, attempt="run-2")) == 2
        assert pipeline.due_feeds(sources, now=T0 + timedelta(minutes=1), attempt="run-2") == []
        state = pipeline.store.feed_state("down")
        assert state is not None and state.next_attempt_at == T0 + timedelta(hours=1)  # Retry-After beats 15 min


def test_feeds_status_reads_well_and_has_a_json_form(
    web: Web, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    web.routes["/news.xml"] = GrowingFeed(web, "news", per_poll=2)
    web.serve("/missing.xml", "no", "text/plain", status=404)
    web.serve("/gone.xml", "no", "text/plain", status=410)
    feeds = write_feed_list(tmp_path / "feeds.yaml", {
        "news": web.url("/news.xml"), "missing": web.url("/missing.xml"), "gone": web.url("/gone.xml")})
    settings = fault_settings(web, tmp_path, feeds)
    with Pipeline(settings) as pipeline:
        pipeline.load_feeds()
        for feed_id in ("news", "missing", "gone"):
            pipeline.poll_feed(feed_id)

    data_dir = str(settings.data_dir)
    assert main(["feeds", "status", "--data-dir", data_dir]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["feed", "status", "fails", "score", "every", "entries", "waiting", "last", "success",
                                "next", "poll", "last", "error"]
    rows = {line.split()[0]: line for line in lines[1:-1]}
    assert set(rows) == {"gone", "missing", "news"}
    assert rows["news"].split()[1:7] == ["active", "0", "0/10", "15m", "5", "5"]  # polled; no page fetched yet
    assert rows["missing"].split()[1:4] == ["failing", "1", "2/10"] and "never" in rows["missing"]
    assert rows["missing"].endswith("  HTTP 404 Not Found")  # piped: not cut; the row names the feed, not the error
    assert "never (retired)" in rows["gone"] and rows["gone"].endswith("HTTP 410 Gone")
    # Columns line up: every row has the status column where the header has it.
    assert {line.index(line.split()[1]) for line in lines[1:-1]} == {lines[0].index("status")}
    assert lines[-1].startswith("3 feeds: 1 active, 1 failing, 1 retired, 0 removed; 5 pages waiting to be fetched")

    # On a terminal, a long error is cut to the window's width.
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys.stdout, "isatty", lambda: True)
        mp.setenv("COLUMNS", "110")
        assert main(["feeds", "status", "--data-dir", data_dir]) == 0
    narrow = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in narrow[:-1]) <= 110 and narrow[2].endswith("…")

    assert main(["feeds", "status", "--json", "--data-dir", data_dir]) == 0
    states = {s["source"]["id"]: s for s in json.loads(capsys.readouterr().out)}
    assert states["missing"]["failure_score"] == 2.0 and states["missing"]["status"] == "failing"
    assert states["news"]["learned_interval"] == 900 and states["news"]["next_attempt_at"].endswith("+00:00")
    assert states["gone"]["next_attempt_at"] is None
    assert (states["news"]["entries_waiting"], states["gone"]["entries_waiting"]) == (5, 0)
