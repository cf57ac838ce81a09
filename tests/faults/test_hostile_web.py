"""The whole pipeline (`Pipeline.run`) over a hostile loopback web: it completes, keeps what is good,
records an outcome for everything bad, and never fetches where it must not.

The units behind each behaviour are tested in tests/fetching, tests/test_feeds.py and
tests/test_extraction.py; here they meet in one run, as they would on the real web.
"""

from __future__ import annotations

import gzip
import json
import logging
from email.utils import format_datetime
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from trafilatura import bare_extraction

from faultkit import Handler, Web, article_html, fault_settings, rss, write_feed_list
from pipeline import extraction
from pipeline.candidates import paragraphs, trimmed
from pipeline.models import FeedSource, SearchQuery, TextSource
from pipeline.runner import Pipeline
from pipeline.urls import article_id

BOMB = gzip.compress(b"\0" * 8_000_000)  # 8 MB of zeros in about 8 kB
SCRIPT_ONLY = (
    "<!doctype html><html><head><title>App</title></head><body><div id=root></div>"
    "<script>window.__STATE__={};" + "var x=1;" * 2000 + "</script>"
    "<noscript>Please enable JavaScript.</noscript></body></html>"
)
MALFORMED_TAIL = "<item><title>Broken & unescaped <b>tag</title><link>"  # cut off mid-item, bare '&'

def _quirky(title: str, topic: str, old: str, new: str) -> tuple[str, str, str]:
    page = article_html(title, topic)
    assert old in page
    return title, page.replace(old, new, 1), page


# Faulty pages a browser renders as if they were sound (issue 18): path -> (title, faulty page, sound page).
QUIRKS = {
    "/quirks/backspace.html": _quirky("Ferry timetable changes", "ferrybury", "officials in", "officials\x08 in"),
    "/quirks/nul.html": _quirky("Market hall reopens", "stallford", "<head>", "<head>\x00"),
    "/quirks/controls.html": _quirky(
        "Canal locks repaired", "lockwick", "described paragraph 2", "described\x0c paragraph\x0b 2\x1b"),
    "/quirks/comment.html": _quirky("Choir wins award", "cantorby", "<footer>", "<!-- unterminated comment <footer>"),
    "/quirks/doctype.html": _quirky(
        "Museum extends hours", "galleria", "<!doctype html><html lang=en>",
        '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">'
        '<html lang="en"/>'),
}


@pytest.fixture
def hostile(web: Web, witness: Web, tmp_path: Path) -> dict[str, str]:
    """Script the web: good feeds, broken feeds, and a feed whose entries point at hostile pages."""
    u = web.url
    web.serve("/good/feed.xml", rss("Good Gazette", [
        ("Harbour bridge closed", u("/good/bridge.html"), "The harbour bridge is closed."),
        ("Orchard festival returns", u("/good/orchard.html"), "The orchard festival is back."),
    ]), "application/rss+xml", Cache_Control="public, max-age=7200")
    web.serve("/good/bridge.html", article_html("Harbour bridge closed", "quaywall"))
    web.serve("/good/orchard.html", article_html("Orchard festival returns", "appleton"))

    web.serve("/weekly/feed.xml", rss("Slow Weekly", [
        ("Library hours extended", u("/weekly/library.html"), "Longer library hours."),
    ], ttl=240), "application/rss+xml")
    web.serve("/weekly/library.html", article_html("Library hours extended", "readingham"))

    # Malformed XML (bare '&', document cut off mid-item) whose first entry is still usable.
    web.serve("/malformed/feed.xml", rss("Broken Bugle", [
        ("Tram line opens", u("/malformed/tram.html"), "A new tram line."),
    ]).replace("</channel></rss>", MALFORMED_TAIL), "application/rss+xml")
    web.serve("/malformed/tram.html", article_html("Tram line opens", "railsby"))

    web.serve("/mixed/feed.xml", rss("Mixed Messenger", [
        ("Compressed surprise", u("/mixed/bomb.html"), "Summary of the compressed surprise story."),
        ("Annual report", u("/mixed/report.pdf"), "Summary of the annual report story."),
        ("Moved elsewhere", u("/mixed/moved.html"), "Summary of the moved story."),
        ("App shell", u("/mixed/app.html"), "Summary of the app shell story."),
        ("Vanished page", u("/mixed/vanished.html"), None),
        ("Busy page", u("/mixed/busy.html"), "Summary of the busy page story."),
        ("Script link", "javascript:alert(document.cookie)", "Should never be queued."),
        ("Data link", "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==", "Never queued either."),
    ]), "application/rss+xml", Expires=format_datetime(datetime.now(UTC) + timedelta(hours=3), usegmt=True))
    web.routes["/mixed/bomb.html"] = lambda h: h.reply(200, BOMB, Content_Encoding="gzip")
    web.serve("/mixed/report.pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "application/pdf")
    web.routes["/mixed/moved.html"] = lambda h: h.reply(302, b"", Location=witness.url("/stolen"))
    web.serve("/mixed/app.html", SCRIPT_ONLY)
    busy_calls = []

    def busy_once(h: Handler) -> None:
        busy_calls.append(1)
        if len(busy_calls) == 1:
            h.reply(503, b"try later", "text/plain", Retry_After="60")
        else:
            h.reply(200, article_html("Busy page", "waitsworth").encode())

    web.routes["/mixed/busy.html"] = busy_once
    web.serve("/html/feed.xml", '<!doctype html><html><head><link rel="alternate" type="application/rss+xml" '
              'href="/good/feed.xml"></head><body><p>Welcome to our site</p></body></html>')
    web.serve("/quirks/feed.xml", rss("Quirky Courier", [
        (title, u(path), f"Summary of {title.lower()}.") for path, (title, _, _) in QUIRKS.items()
    ]), "application/rss+xml")
    for path, (_, faulty, _) in QUIRKS.items():
        web.serve(path, faulty)
    web.serve("/missing/feed.xml", "not here", "text/plain", status=404)
    web.serve("/gone/feed.xml", "gone for good", "text/plain", status=410)
    web.serve("/limited/feed.xml", "slow down", "text/plain", status=429, Retry_After="7200")
    web.serve("/down/feed.xml", "maintenance", "text/plain", status=503)
    web.routes["/hang/feed.xml"] = lambda h: h.hang()
    web.routes["/hook"] = lambda h: h.reply(204)
    return {
        "good": u("/good/feed.xml"), "weekly": u("/weekly/feed.xml"), "malformed": u("/malformed/feed.xml"),
        "mixed": u("/mixed/feed.xml"), "html": u("/html/feed.xml"), "missing": u("/missing/feed.xml"),
        "gone": u("/gone/feed.xml"), "limited": u("/limited/feed.xml"), "down": u("/down/feed.xml"),
        "hang": u("/hang/feed.xml"), "quirks": u("/quirks/feed.xml"),
    }



def test_a_hostile_web_never_crashes_the_run_and_every_bad_item_has_its_outcome(
    web: Web, witness: Web, hostile: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    feeds_file = write_feed_list(tmp_path / "feeds.yaml", hostile)
    settings = fault_settings(web, tmp_path, feeds_file, fetch={"max_body_bytes": 1_000_000},
                              alert_webhook_url=web.url("/hook"))
    caplog.set_level(logging.INFO, logger="pipeline")
    started = datetime.now(UTC)
    with Pipeline(settings) as pipeline:
        report = pipeline.run()  # nothing escapes as an exception
        store = pipeline.store
        states = {s.source.id: s for s in store.feed_states()}

        # -- feeds: each bad one has its recorded, logged outcome -----------------------------
        assert sorted(f.feed_id for f in report.failed_feeds) == ["down", "gone", "hang", "html", "limited", "missing"]
        assert {k: states[k].status for k in states} == {
            "good": "active", "weekly": "active", "malformed": "active", "mixed": "active", "quirks": "active",
            "html": "failing", "missing": "failing", "limited": "failing", "down": "failing", "hang": "failing",
            "gone": "retired",
        }
        errors = {k: states[k].last_error or "" for k in states}
        assert "HTML page, not a feed" in errors["html"] and "/good/feed.xml" in errors["html"]
        assert "HTTP 404" in errors["missing"] and "HTTP 410" in errors["gone"]
        assert "HTTP 429" in errors["limited"] and "HTTP 503" in errors["down"]
        assert "within 2s" in errors["hang"] or "Timeout" in errors["hang"]
        assert errors["malformed"], "a malformed but usable feed keeps its parse error"
        assert errors["good"] == errors["weekly"] == errors["mixed"] == errors["quirks"] == ""
        # Weighted failures: the feed's own fault (404, not a feed) counts double a passing one.
        assert {k: states[k].failure_score for k in ("html", "missing", "limited", "down", "hang")} == {
            "html": 2.0, "missing": 2.0, "limited": 1.0, "down": 1.0, "hang": 1.0}
        assert states["gone"].next_attempt_at is None
        for feed_id in ("html", "missing", "gone", "limited", "down", "hang"):
            assert any(feed_id in r.getMessage() and r.levelno >= logging.WARNING for r in caplog.records), feed_id

        # -- the publisher's pace: Retry-After, Cache-Control and ttl set the earliest next poll ---
        def wait(feed_id: str) -> timedelta:
            at = states[feed_id].next_attempt_at
            assert at is not None
            return at - started

        assert timedelta(hours=2) <= wait("limited") < timedelta(hours=2, minutes=1)  # Retry-After: 7200
        assert timedelta(hours=2) <= wait("good") < timedelta(hours=2, minutes=1)  # max-age=7200
        assert timedelta(hours=4) <= wait("weekly") < timedelta(hours=4, minutes=1)  # <ttl>240</ttl>
        assert timedelta(hours=2, minutes=59) <= wait("mixed") < timedelta(hours=3, minutes=1)  # Expires: +3 h
        assert timedelta(minutes=15) <= wait("down") < timedelta(minutes=16)  # first backoff step

        # -- articles: good pages in full, hostile pages fall back to the feed, with the reason ---
        articles = store.articles_by_id(article_id(web.url(p)) for p in (
            "/good/bridge.html", "/good/orchard.html", "/weekly/library.html", "/malformed/tram.html",
            "/mixed/bomb.html", "/mixed/report.pdf", "/mixed/moved.html", "/mixed/app.html"))
        by_path = {a.url.removeprefix(web.base): a for a in articles.values()}
        assert len(by_path) == 8
        for path in ("/good/bridge.html", "/good/orchard.html", "/weekly/library.html", "/malformed/tram.html"):
            assert by_path[path].text_source is TextSource.PAGE, path
        reasons = {p: by_path[p].text_source_reason or "" for p in by_path}
        assert by_path["/mixed/bomb.html"].text_source is TextSource.FEED_SUMMARY
        assert "body larger than 1000000 bytes" in reasons["/mixed/bomb.html"]
        assert "unexpected content type 'application/pdf'" in reasons["/mixed/report.pdf"]
        assert f"127.0.0.1:{witness.port}" in reasons["/mixed/moved.html"]
        assert "not allowed" in reasons["/mixed/moved.html"] or "refused" in reasons["/mixed/moved.html"]
        assert "no article text" in reasons["/mixed/app.html"] or "too short" in reasons["/mixed/app.html"]
        assert by_path["/mixed/app.html"].text == "Summary of the app shell story."

        # -- faulty pages a browser renders: the text trafilatura finds on the sound page (less
        # what extract_page cuts from any page: here the headline trafilatura repeats) ----------
        quirky = store.articles_by_id(article_id(web.url(path)) for path in QUIRKS)
        assert len(quirky) == len(QUIRKS)
        for article in quirky.values():
            path = article.url.removeprefix(web.base)
            assert (article.text_source, article.text_source_reason) == (TextSource.PAGE, None), path
            plain = bare_extraction(QUIRKS[path][2].encode(), url=article.url, **extraction.TRAFILATURA_OPTIONS)
            assert plain is not None, path
            assert article.text == trimmed(paragraphs(plain.text or ""), plain.title, plain.author), path

        # -- entries: a page with no text anywhere fails for good, a busy page waits for a retry ---
        entries = _entries(pipeline)
        assert entries[web.url("/mixed/vanished.html")][0] == "failed"
        assert "HTTP 404" in entries[web.url("/mixed/vanished.html")][2]
        assert entries[web.url("/mixed/busy.html")][:2] == ("pending", 1)
        assert "HTTP 503" in entries[web.url("/mixed/busy.html")][2]
        # javascript:/data: links are never queued as links: those entries are their feed text, never fetched.
        linkless = sorted(url for url in entries if not url.startswith(web.base + "/"))
        assert len(linkless) == 2 and all(url.startswith("urn:newsagg:mixed:") for url in linkless)
        assert sorted(a.text for a in store.articles_by_id(article_id(url) for url in linkless).values()) == [
            "Never queued either.", "Should never be queued."]
        assert report.articles_failed == 1 and report.pages_deferred == 1
        for path in ("/mixed/bomb.html", "/mixed/report.pdf", "/mixed/moved.html", "/mixed/app.html",
                     "/mixed/vanished.html"):
            assert any(web.url(path) in r.getMessage() for r in caplog.records), f"{path} outcome not logged"

        # -- never fetched where it must not: the redirect target on another port saw nothing ----
        assert witness.seen == []

        # -- good articles are stored, clustered, merged and searchable ------------------------------
        assert report.index_error is None and report.outbox_left == 0
        hits = pipeline.index.search(SearchQuery(text="quaywall")).hits
        assert [h.title for h in hits] == ["Harbour bridge closed"]

    # -- alerts: one digest, of the feeds that started failing or were retired ----------------------
    [digest] = [json.loads(body) for path, body in web.posts if path == "/hook"]
    assert sorted((a["feed"]["id"], a["event"]) for a in digest["changes"]) == sorted(
        [(f, "newsagg.feed.failing") for f in ("down", "hang", "html", "limited", "missing")]
        + [("gone", "newsagg.feed.retired")])

    # -- the next run: nothing is due yet, so no feed is fetched; the busy page is retried ---------
    feed_requests = sum(web.hits(p) for p in ("/good/feed.xml", "/limited/feed.xml", "/down/feed.xml"))
    posts = len(web.posts)
    with Pipeline(settings) as pipeline:
        again = pipeline.run()
        assert again.feeds == [] and again.articles_added == 1
        busy = pipeline.store.articles_by_id([article_id(web.url("/mixed/busy.html"))])
        assert [a.text_source for a in busy.values()] == [TextSource.PAGE]
        assert _entries(pipeline)[web.url("/mixed/busy.html")][0] == "done"
    assert sum(web.hits(p) for p in ("/good/feed.xml", "/limited/feed.xml", "/down/feed.xml")) == feed_requests
    assert len(web.posts) == posts, "no new alert without a change of state"
    assert witness.seen == []


def _entries(pipeline: Pipeline) -> dict[str, tuple[str, int, str]]:
    """url -> (state, attempts, last error) for every queued entry."""
    import sqlalchemy as sa

    from pipeline.storage.schema import entries

    with pipeline.store.engine.connect() as conn:
        return {
            row.url: (row.state, row.attempts, row.last_error or "")
            for row in conn.execute(sa.select(entries.c.url, entries.c.state, entries.c.attempts, entries.c.last_error))
        }


def test_a_feed_that_makes_reading_it_fail_costs_that_feed_not_the_run(
    web: Web, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.feeds import documents

    web.serve("/good/feed.xml", rss("Good Gazette", [("Harbour bridge closed", web.url("/good/bridge.html"), "Closed.")]),
              "application/rss+xml")
    web.serve("/good/bridge.html", article_html("Harbour bridge closed", "quaywall"))
    web.serve("/odd/feed.xml", rss("Odd Observer", [("Odd story", web.url("/odd/story.html"), "Odd.")]),
              "application/rss+xml")
    real = documents._clean_entries

    def fault_on_one_feed(feed: FeedSource, *args: Any, **kwargs: Any) -> Any:
        if feed.id == "odd-observer":
            raise IndexError("a fault of ours that this document meets")
        return real(feed, *args, **kwargs)

    monkeypatch.setattr(documents, "_clean_entries", fault_on_one_feed)
    feeds = write_feed_list(tmp_path / "feeds.yaml", {"Good Gazette": web.url("/good/feed.xml"), "Odd Observer": web.url("/odd/feed.xml")})
    with Pipeline(fault_settings(web, tmp_path, feeds)) as pipeline:
        report = pipeline.run(force=True)
        assert [f.feed_id for f in report.failed_feeds] == ["odd-observer"] and report.articles_added == 1
        state = pipeline.store.feed_state("odd-observer")
        assert state is not None and state.last_error is not None
        assert "reading the document failed: IndexError" in state.last_error
