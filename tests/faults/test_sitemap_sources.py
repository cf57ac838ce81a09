"""Sitemaps as sources over loopback: every kind of sitemap, the high-water mark and max age, and hostile sitemaps
(an index listing itself, 10,000 children, a gzip bomb, other sites' URLs, malformed XML), each costing that item only."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from faultkit import Web, article_html, fault_settings, rss

from pipeline.archive import scan_warc
from pipeline.errors import FeedParseError
from pipeline.feeds.sitemaps import parse_sitemap
from pipeline.runner import Pipeline
from pipeline.storage import FeedState

NOW = datetime.now(UTC).replace(microsecond=0)
NS = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'
NEWS_NS = 'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9"'


def ago(hours: float) -> str:
    return (NOW - timedelta(hours=hours)).isoformat()


def urlset(urls: list[tuple[str, str | None]], base: str = "") -> str:
    """A plain sitemap of (path, lastmod or None)."""
    rows = "".join(f"<url><loc>{base}{path}</loc>" + (f"<lastmod>{mod}</lastmod>" if mod else "") + "</url>"
                   for path, mod in urls)
    return f'<?xml version="1.0" encoding="UTF-8"?><urlset {NS}>{rows}</urlset>'


def news_sitemap(urls: list[tuple[str, str, str]], base: str, name: str = "Harbor Ledger", language: str = "en") -> str:
    """A Google News sitemap of (path, publication date, title)."""
    rows = "".join(
        f"<url><loc>{base}{path}</loc><news:news><news:publication><news:name>{name}</news:name>"
        f"<news:language>{language}</news:language></news:publication>"
        f"<news:publication_date>{date}</news:publication_date><news:title>{title}</news:title></news:news></url>"
        for path, date, title in urls
    )
    return f'<?xml version="1.0" encoding="UTF-8"?><urlset {NS} {NEWS_NS}>{rows}</urlset>'


def index(children: list[tuple[str, str | None]], base: str) -> str:
    rows = "".join(f"<sitemap><loc>{base}{path}</loc>" + (f"<lastmod>{mod}</lastmod>" if mod else "") + "</sitemap>"
                   for path, mod in children)
    return f'<?xml version="1.0" encoding="UTF-8"?><sitemapindex {NS}>{rows}</sitemapindex>'


def feed_list(path: Path, *feeds: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump({"feeds": list(feeds)}), encoding="utf-8")
    return path


@contextmanager
def pipeline_for(web: Web, tmp_path: Path, *feeds: dict[str, Any], **feed_settings: Any) -> Iterator[Pipeline]:
    settings = fault_settings(web, tmp_path, feed_list(tmp_path / "feeds.yaml", *feeds), feeds=feed_settings)
    with Pipeline(settings) as pipeline:
        yield pipeline


def poll(pipeline: Pipeline) -> dict[str, FeedState]:
    pipeline.poll_feeds(pipeline.load_feeds())
    return {s.source.id: s for s in pipeline.store.feed_states()}


def queued(pipeline: Pipeline) -> dict[str, tuple[str, datetime | None]]:
    """URL -> (title, published) of every queued entry."""
    return {p.entry.url: (p.entry.title, p.entry.published) for p in pipeline.store.pending_entries(100_000)}


def test_a_google_news_sitemap_becomes_entries_with_their_titles_and_dates(web: Web, tmp_path: Path) -> None:
    web.serve("/news.xml", news_sitemap([("/a.html", ago(1), "Port strike ends"), ("/b.html", ago(2), "Mayor resigns")],
                                        web.base), "application/xml")
    with pipeline_for(web, tmp_path, {"name": "Ledger", "url": web.url("/news.xml"), "type": "sitemap"}) as pipeline:
        states = poll(pipeline)
        assert queued(pipeline) == {web.url("/a.html"): ("Port strike ends", NOW - timedelta(hours=1)),
                                    web.url("/b.html"): ("Mayor resigns", NOW - timedelta(hours=2))}
        assert (states["ledger"].status, states["ledger"].last_error) == ("active", None)
        assert states["ledger"].high_water == NOW - timedelta(hours=1)

    sitemap = parse_sitemap(news_sitemap([("/a.html", ago(1), "T")], web.base, "Harbor Ledger", "de").encode(), "x", 10**6)
    assert (sitemap.publication, sitemap.language) == ("Harbor Ledger", "de")


def test_a_title_cut_in_the_middle_of_a_character_is_read_with_a_replacement_character(web: Web, tmp_path: Path) -> None:
    # A CMS cutting titles in UTF-16 (JavaScript's substring) halves an emoji: "&#55357;" is no character,
    # and libxml2 stopped at it, losing it and every URL after it.
    web.serve("/news.xml", news_sitemap([("/a.html", ago(1), "Surfers return &#55357;"), ("/b.html", ago(2), "Mayor resigns")],
                                        web.base), "application/xml")
    with pipeline_for(web, tmp_path, {"name": "Ledger", "url": web.url("/news.xml"), "type": "sitemap"}) as pipeline:
        states = poll(pipeline)
        assert queued(pipeline) == {web.url("/a.html"): ("Surfers return \ufffd", NOW - timedelta(hours=1)),
                                    web.url("/b.html"): ("Mayor resigns", NOW - timedelta(hours=2))}
        assert (states["ledger"].status, states["ledger"].last_error) == ("active", None)


def test_a_plain_urlset_is_recognised_without_a_type_and_its_pages_become_articles(web: Web, tmp_path: Path) -> None:
    web.serve("/sitemap.xml", urlset([("/a.html", ago(3)), ("/b.html", ago(1)[:10])], web.base), "text/xml")
    web.serve("/a.html", article_html("Port strike ends", "harbour"))
    web.serve("/b.html", article_html("Mayor resigns", "council"))
    with pipeline_for(web, tmp_path, {"name": "Ledger", "url": web.url("/sitemap.xml")}, sitemap_max_age_days=0) as pipeline:
        report = pipeline.run(force=True)
        assert [f.status for f in report.feeds] == ["ok"] and report.articles_added == 2
        titles = {a.title for a, _, _ in pipeline.store.iter_articles()}
        assert titles == {"Port strike ends", "Mayor resigns"}


def test_an_index_is_followed_newest_first_within_the_children_budget_gzip_included(web: Web, tmp_path: Path) -> None:
    web.serve("/index.xml", index([("/old.xml", ago(30)), ("/new.xml.gz", ago(1)), ("/mid.xml", ago(5))], web.base))
    web.serve("/new.xml.gz", gzip.compress(urlset([("/n1.html", ago(1)), ("/n2.html", ago(2))], web.base).encode()),
              "application/x-gzip")
    web.serve("/mid.xml", urlset([("/m1.html", ago(5))], web.base))
    web.serve("/old.xml", urlset([("/o1.html", ago(30))], web.base))
    with pipeline_for(web, tmp_path, {"name": "Ledger", "url": web.url("/index.xml")}, sitemap_max_children=2) as pipeline:
        state = poll(pipeline)["ledger"]
        assert set(queued(pipeline)) == {web.url("/n1.html"), web.url("/n2.html"), web.url("/m1.html")}
        assert web.hits("/old.xml") == 0
        assert state.status == "active" and "lists 3 sitemaps; read the 2 newest (sitemap_max_children 2)" in (
            state.last_error or "")
        # Every document the poll read is in the archive, the children too.
        archived = [record.page.page.url for warc in sorted(pipeline.settings.resolved_archive_dir.glob("*.warc.gz"))
                    for record in scan_warc(warc, max_bytes=10**7, types=None) if record.page is not None]
        assert sorted(archived) == sorted(web.url(p) for p in ("/index.xml", "/new.xml.gz", "/mid.xml"))


def test_the_high_water_mark_takes_only_newer_urls_and_a_304_changes_nothing(web: Web, tmp_path: Path) -> None:
    first = urlset([("/a.html", ago(5)), ("/b.html", ago(4))], web.base)
    web.serve("/sitemap.xml", first, "application/xml")
    with pipeline_for(web, tmp_path, {"name": "Ledger", "url": web.url("/sitemap.xml")}) as pipeline:
        assert poll(pipeline)["ledger"].high_water == NOW - timedelta(hours=4)
        assert set(queued(pipeline)) == {web.url("/a.html"), web.url("/b.html")}

        # Published since: c. Listed late with an older date, never seen: d is behind the mark, not taken.
        second = urlset([("/a.html", ago(5)), ("/b.html", ago(4)), ("/c.html", ago(1)), ("/d.html", ago(6))], web.base)
        etag = '"v2"'
        web.routes["/sitemap.xml"] = lambda h: (
            h.reply(304, b"", "application/xml", ETag=etag) if h.headers.get("If-None-Match") == etag
            else h.reply(200, second.encode(), "application/xml", ETag=etag))
        outcome = pipeline.poll_feeds(pipeline.load_feeds())[0]
        assert (outcome.status, outcome.new_entries) == ("ok", 1)
        assert set(queued(pipeline)) == {web.url("/a.html"), web.url("/b.html"), web.url("/c.html")}
        assert pipeline.store.feed_state("ledger").high_water == NOW - timedelta(hours=1)  # type: ignore[union-attr]

        assert pipeline.poll_feeds(pipeline.load_feeds())[0].status == "not_modified"  # conditional GET, as for feeds


def test_urls_older_than_the_max_age_are_ignored_and_the_newest_are_kept_within_the_entry_limit(
    web: Web, tmp_path: Path
) -> None:
    urls = [(f"/recent-{n}.html", ago(n / 10)) for n in range(1, 41)] + [("/last-week.html", ago(24 * 7))]
    web.serve("/sitemap.xml", urlset(urls, web.base))
    with pipeline_for(web, tmp_path, {"name": "Ledger", "url": web.url("/sitemap.xml")},
                      sitemap_max_age_days=3, max_entries_per_feed=10) as pipeline:
        poll(pipeline)
        assert set(queued(pipeline)) == {web.url(f"/recent-{n}.html") for n in range(1, 11)}


def test_other_sites_urls_are_dropped_unless_the_source_allows_them(web: Web, tmp_path: Path) -> None:
    foreign = f"http://localhost:{web.port}"  # another host than 127.0.0.1, same server
    web.serve("/sitemap.xml", urlset([("/own.html", ago(1))], web.base)[: -len("</urlset>")]
              + urlset([("/theirs.html", ago(1))], foreign).split(f"<urlset {NS}>")[1])
    own = {"name": "Ledger", "url": web.url("/sitemap.xml")}
    with pipeline_for(web, tmp_path, own) as pipeline:
        state = poll(pipeline)["ledger"]
        assert set(queued(pipeline)) == {web.url("/own.html")}
        assert "1 URLs on another site or unusable, dropped" in (state.last_error or "")
    (tmp_path / "cross").mkdir()
    with pipeline_for(web, tmp_path / "cross", {**own, "cross_host": True}) as pipeline:
        poll(pipeline)
        assert set(queued(pipeline)) == {web.url("/own.html"), f"{foreign}/theirs.html"}


def test_an_index_listing_itself_or_looping_costs_those_children_only(web: Web, tmp_path: Path) -> None:
    web.serve("/index.xml", index([("/index.xml", ago(1)), ("/loop.xml", ago(2)), ("/good.xml", ago(3))], web.base))
    web.serve("/loop.xml", index([("/index.xml", ago(1)), ("/deeper.xml", ago(1))], web.base))
    web.serve("/deeper.xml", index([("/good.xml", ago(1))], web.base))  # an index below an index below the index
    web.serve("/good.xml", urlset([("/a.html", ago(3))], web.base))
    with pipeline_for(web, tmp_path, {"name": "Ledger", "url": web.url("/index.xml")}) as pipeline:
        state = poll(pipeline)["ledger"]
        assert set(queued(pipeline)) == {web.url("/a.html")}
        assert state.status == "active"
        assert f"lists {web.url('/index.xml')}, already read (a cycle); skipped" in (state.last_error or "")
        assert f"{web.url('/deeper.xml')}: a sitemap index nested more than 2 deep; not read" in (state.last_error or "")
        assert web.hits("/index.xml") == 1 and web.hits("/loop.xml") == 1 and web.hits("/good.xml") == 1


def test_an_index_of_10000_children_reads_the_newest_few_and_the_run_goes_on(web: Web, tmp_path: Path) -> None:
    children = [(f"/child-{n}.xml", ago(n / 100)) for n in range(10_000)]
    web.serve("/index.xml", index(children, web.base))
    for n in range(10_000):
        web.serve(f"/child-{n}.xml", urlset([(f"/page-{n}.html", ago(n / 100))], web.base))
    web.serve("/feed.xml", rss("Other", [("Story", web.url("/story.html"), "A summary")]), "application/rss+xml")
    with pipeline_for(web, tmp_path, {"name": "Ledger", "url": web.url("/index.xml")},
                      {"name": "Other", "url": web.url("/feed.xml")}) as pipeline:
        states = poll(pipeline)
        assert set(queued(pipeline)) == {web.url(f"/page-{n}.html") for n in range(20)} | {web.url("/story.html")}
        assert sum(web.hits(f"/child-{n}.xml") for n in range(10_000)) == 20
        assert "lists 10000 sitemaps; read the 20 newest" in (states["ledger"].last_error or "")
        assert states["other"].status == "active"


def gzip_bomb(inflated: int) -> bytes:
    """A gzip body that inflates to ``inflated`` bytes of XML: one member of blanks repeated."""
    head = gzip.compress(f'<?xml version="1.0"?><urlset {NS}><url><loc>/a.html</loc></url>'.encode())
    chunk = 16 * 1024 * 1024
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    member = compressor.compress(b" " * chunk) + compressor.flush()
    return head + member * (inflated // chunk)


def test_a_gzip_bomb_costs_its_source_with_a_clear_error_and_nothing_else(web: Web, tmp_path: Path) -> None:
    bomb = gzip_bomb(2 * 1024**3)  # 2 GiB inflated, 2 MB sent
    assert len(bomb) < 3 * 1024**2
    web.serve("/sitemap.xml.gz", bomb, "application/gzip")
    web.serve("/index.xml", index([("/sitemap.xml.gz", ago(1)), ("/good.xml", ago(2))], web.base))
    web.serve("/good.xml", urlset([("/a.html", ago(2))], web.base))
    web.serve("/feed.xml", rss("Other", [("Story", web.url("/story.html"), "A summary")]), "application/rss+xml")
    with pipeline_for(web, tmp_path, {"name": "Bomb", "url": web.url("/sitemap.xml.gz"), "type": "sitemap"},
                      {"name": "Index", "url": web.url("/index.xml")},
                      {"name": "Other", "url": web.url("/feed.xml")}) as pipeline:
        states = poll(pipeline)
        limit = pipeline.settings.fetch.max_body_bytes
        assert states["bomb"].status == "failing"
        assert states["bomb"].last_error == (f"gzip-compressed sitemap inflates to more than {limit} bytes "
                                             "(fetch.max_body_bytes): a compression bomb, or too large; refused")
        assert states["index"].status == "active" and "a compression bomb" in (states["index"].last_error or "")
        assert set(queued(pipeline)) == {web.url("/a.html"), web.url("/story.html")}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("<urlset><url><loc>/a.html</loc></urlx></urlset>", "not well-formed XML"),
        ("garbage", "not a sitemap (root element no XML root element, expected <urlset> or <sitemapindex>)"),
        ('<?xml version="1.0"?><!DOCTYPE urlset [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
         "<urlset><url><loc>&b;</loc></url></urlset>", "declares XML entities"),
        (b"\x1f\x8b\x08\x00garbage, not deflate", "corrupt gzip data"),
    ],
    ids=["malformed", "not-xml", "entities", "corrupt-gzip"],
)
def test_a_broken_sitemap_fails_its_source_with_a_clear_error(
    web: Web, tmp_path: Path, body: str | bytes, error: str
) -> None:
    web.serve("/sitemap.xml", body, "application/xml")
    with pipeline_for(web, tmp_path, {"name": "Ledger", "url": web.url("/sitemap.xml"), "type": "sitemap"}) as pipeline:
        state = poll(pipeline)["ledger"]
        assert state.status == "failing" and error in (state.last_error or "")
        assert queued(pipeline) == {}
    with pytest.raises(FeedParseError, match=error.replace("(", r"\(").replace(")", r"\)")):
        parse_sitemap(body.encode() if isinstance(body, str) else body, "x", 10**6)


def test_a_malformed_child_costs_what_follows_its_break_only(web: Web, tmp_path: Path) -> None:
    broken = urlset([("/a.html", ago(1)), ("/b.html", ago(1))], web.base)[:-30]  # cut inside the second <url>
    web.serve("/index.xml", index([("/broken.xml", ago(1)), ("/good.xml", ago(2))], web.base))
    web.serve("/broken.xml", broken)
    web.serve("/good.xml", urlset([("/c.html", ago(2))], web.base))
    with pipeline_for(web, tmp_path, {"name": "Ledger", "url": web.url("/index.xml")}) as pipeline:
        state = poll(pipeline)["ledger"]
        assert set(queued(pipeline)) == {web.url("/a.html"), web.url("/c.html")}
        assert f"{web.url('/broken.xml')}: not well-formed XML" in (state.last_error or "")
        assert "1 entries read before it" in (state.last_error or "")


def test_feeds_status_shows_a_sitemaps_recorded_error(web: Web, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.cli import main

    web.serve("/index.xml", index([("/index.xml", ago(1))], web.base))
    with pipeline_for(web, tmp_path, {"name": "Ledger", "url": web.url("/index.xml")}) as pipeline:
        poll(pipeline)
    assert main(["--data-dir", str(tmp_path / "data"), "feeds", "status"]) == 0
    assert "already read (a cycle); skipped" in capsys.readouterr().out
