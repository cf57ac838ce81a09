"""`newsagg feeds add` on a home page over loopback: the feeds it names, common paths, robots.txt sitemaps, nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from faultkit import Web, rss

from pipeline.cli import main
from pipeline.feeds import load_feed_list

ATOM = ('<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>Ledger (Atom)</title>'
        '<entry><title>A</title><link href="http://127.0.0.1/a.html"/><id>a</id></entry></feed>')
NEWS = ('<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
        'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9"><url><loc>/a.html</loc><news:news><news:publication>'
        "<news:name>Harbor Ledger</news:name><news:language>en</news:language></news:publication>"
        "<news:publication_date>2026-11-02T08:00:00Z</news:publication_date><news:title>A</news:title></news:news></url>"
        "</urlset>")
PLAIN = ('<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
         "<url><loc>/about.html</loc></url></urlset>")


def home(*links: str) -> str:
    return f"<!doctype html><html><head><title>Ledger</title>{''.join(links)}</head><body><h1>Ledger</h1></body></html>"


def add(web: Web, tmp_path: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    config = tmp_path / "newsagg.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data"),
                                      "fetch": {"allowed_hosts": [f"127.0.0.1:{web.port}"], "politeness_delay": 0}}))
    code = main(["--config", str(config), "feeds", "add", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def listed(tmp_path: Path) -> list[tuple[str, str, str]]:
    return [(f.url, f.kind, f.name) for f in load_feed_list(tmp_path / "data" / "feeds.yaml")]


def test_a_home_page_naming_its_feeds_adds_the_first_or_with_all_every_source(
    web: Web, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    web.serve("/", home('<link rel="alternate" type="application/rss+xml" title="RSS" href="/rss">',
                        '<link rel="alternate" type="application/atom+xml" href="/atom">',
                        '<link rel="alternate" type="application/rss+xml" href="/broken">',
                        '<link rel="stylesheet" type="text/css" href="/style.css">'))
    web.serve("/rss", rss("Ledger (RSS)", [("A", web.url("/a.html"), "Summary")]), "application/rss+xml")
    web.serve("/atom", ATOM, "application/atom+xml")
    web.serve("/broken", "<html>not a feed</html>")
    web.serve("/feed.xml", rss("Not looked at", []), "application/rss+xml")
    web.serve("/robots.txt", f"User-agent: *\nSitemap: {web.url('/news.xml')}\n", "text/plain")
    web.serve("/news.xml", NEWS, "application/xml")

    code, out, _ = add(web, tmp_path, capsys, web.url("/"))
    assert code == 0
    assert out.splitlines()[:4] == [
        f"found 3 sources for {web.url('/')}:",
        f"  feed     {web.url('/rss')} (Ledger (RSS))  via <link> on the page",
        f"  feed     {web.url('/atom')} (Ledger (Atom))  via <link> on the page",
        f"  sitemap  {web.url('/news.xml')} (Harbor Ledger)  via robots.txt",
    ]
    assert listed(tmp_path) == [(web.url("/rss"), "feed", "Ledger (RSS)")]
    assert web.hits("/feed.xml") == 0  # common paths only when the page names no feed

    code, out, _ = add(web, tmp_path, capsys, web.url("/"), "--all")
    assert code == 0 and out.count("added to") == 2 and out.count("already in") == 1
    assert listed(tmp_path) == [(web.url("/rss"), "feed", "Ledger (RSS)"), (web.url("/atom"), "feed", "Ledger (Atom)"),
                                (web.url("/news.xml"), "sitemap", "Harbor Ledger")]


def test_a_page_naming_no_feed_falls_back_to_common_paths(
    web: Web, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    web.serve("/news/", home())
    web.serve("/atom.xml", ATOM, "application/atom+xml")
    code, out, _ = add(web, tmp_path, capsys, web.url("/news/"))
    assert code == 0 and f"  feed     {web.url('/atom.xml')} (Ledger (Atom))  via common path" in out
    assert listed(tmp_path) == [(web.url("/atom.xml"), "feed", "Ledger (Atom)")]


def test_a_site_with_only_sitemaps_in_robots_txt_gets_its_news_sitemap(
    web: Web, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    web.serve("/", home())
    web.serve("/robots.txt", "User-agent: *\nDisallow: /private/\nSitemap: /sitemap.xml\nSitemap: /news.xml\n"
              "Sitemap: ftp://elsewhere/s.xml\nSitemap: http://[::1\n", "text/plain")
    web.serve("/sitemap.xml", PLAIN, "application/xml")
    web.serve("/news.xml", NEWS, "application/xml")
    code, out, _ = add(web, tmp_path, capsys, web.url("/"))
    assert code == 0
    assert out.splitlines()[1:3] == [f"  sitemap  {web.url('/news.xml')} (Harbor Ledger)  via robots.txt",
                                     f"  sitemap  {web.url('/sitemap.xml')}  via robots.txt"]
    [feed] = load_feed_list(tmp_path / "data" / "feeds.yaml")
    assert (feed.url, feed.kind, feed.name, feed.language) == (web.url("/news.xml"), "sitemap", "Harbor Ledger", "en")


def test_a_feed_or_sitemap_url_is_added_as_it_is(web: Web, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    web.serve("/news.xml", NEWS, "application/xml")
    code, out, _ = add(web, tmp_path, capsys, web.url("/news.xml"))
    assert code == 0 and out == f"sitemap harbor-ledger (Harbor Ledger, {web.url('/news.xml')}) added to " \
                                f"{tmp_path / 'data' / 'feeds.yaml'}\n"
    assert web.hits("/robots.txt") == 0


def test_a_page_leading_nowhere_says_so_in_one_line_and_adds_nothing(
    web: Web, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    web.serve("/", home('<link rel="alternate" type="application/rss+xml" href="/gone">'))
    code, out, err = add(web, tmp_path, capsys, web.url("/"))
    assert (code, out) == (2, "")
    assert err == (f"newsagg: error: found no feed or sitemap at {web.url('/')}: no <link rel=\"alternate\"> feed on "
                   "the page, none at /feed, /rss.xml, /atom.xml, /feed.xml, /index.xml, no Sitemap: line in its "
                   "robots.txt; give the feed's own URL\n")
    assert not (tmp_path / "data" / "feeds.yaml").exists()


def test_a_url_that_cannot_be_checked_now_is_added_as_given(
    web: Web, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Offline, or the site is down: the user named the feed, and the next polls will tell.
    web.routes["/busy.xml"] = lambda handler: handler.reply(503, b"busy", "text/plain")
    code, out, err = add(web, tmp_path, capsys, web.url("/busy.xml"))
    assert code == 0 and "added to" in out
    assert err == f"newsagg: could not check {web.url('/busy.xml')} (HTTP 503 Service Unavailable); added as given\n"
    assert listed(tmp_path) == [(web.url("/busy.xml"), "feed", f"127.0.0.1:{web.port}")]


def test_a_url_the_publisher_says_is_not_there_is_refused_not_added(
    web: Web, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A 404 was added "as given", and the feed then failed every poll until it was retired.
    code, out, err = add(web, tmp_path, capsys, web.url("/missing.xml"))
    assert (code, out) == (2, "")
    assert err == (f"newsagg: error: cannot add {web.url('/missing.xml')}: HTTP 404 Not Found "
                   "(check the URL; nothing was added)\n")
    assert not (tmp_path / "data" / "feeds.yaml").exists()
    code, out, err = add(web, tmp_path, capsys, "http://10.1.2.3/feed.xml")  # not in fetch.allowed_hosts
    assert (code, out) == (2, "")
    assert err.endswith("(fetch.allowed_hosts lets it through; nothing was added)\n") and err.count("\n") == 1
    assert not (tmp_path / "data" / "feeds.yaml").exists()


