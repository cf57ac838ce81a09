"""Canonical identity: two links to one article (a section page and an AMP copy) whose pages name
the same canonical URL are one article; a canonical URL on another site is not believed."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import sqlalchemy as sa

from faultkit import Web, article_html, fault_settings, rss, write_feed_list
from pipeline.runner import Pipeline
from pipeline.storage.schema import articles, entries
from pipeline.urls import article_id


def _with_head(html: str, head: str) -> str:
    return html.replace("</head>", head + "</head>", 1)


def test_links_whose_pages_name_one_canonical_url_are_one_article(
    web: Web, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    story = article_html("Kaldora holds rates", "banking")
    pages = {
        # the section link, naming its canonical relative to itself
        "/world/kaldora-rates": _with_head(story, '<link rel="canonical" href="/news/kaldora-rates">'),
        # the AMP copy, naming it in another spelling
        "/amp/kaldora-rates": _with_head(
            story, f'<link rel="canonical" href="HTTP://127.0.0.1:{web.port}/news/kaldora-rates?utm_source=amp#top">'
        ),
        # a partner's copy naming the original outlet: clustering's business, not identity's
        "/wire/river-floods": _with_head(
            article_html("River floods the valley", "flooding"),
            '<meta property="og:url" content="https://original.example/river-floods">',
        ),
        "/local/market-moves": article_html("Market moves indoors", "market"),
    }
    for path, html in pages.items():
        web.serve(path, html)
    links = [web.url("/world/kaldora-rates?section=world"), web.url("/amp/kaldora-rates"),
             web.url("/wire/river-floods"), web.url("/local/market-moves")]
    web.serve("/feed.xml", rss("Ledger", [(f"Story {n}", link, "A summary.") for n, link in enumerate(links)], ttl=60),
              "application/rss+xml")
    settings = fault_settings(web, tmp_path, write_feed_list(tmp_path / "feeds.yaml", {"Ledger": web.url("/feed.xml")}))
    caplog.set_level(logging.INFO, logger="pipeline")

    with Pipeline(settings) as pipeline:
        report = pipeline.run()
        canonical = web.url("/news/kaldora-rates")
        expected = {canonical, web.url("/wire/river-floods"), web.url("/local/market-moves")}
        assert report.articles_added == 3
        with pipeline.store.engine.connect() as conn:
            stored = dict(conn.execute(sa.select(articles.c.url, articles.c.id)).all())
            states = dict(conn.execute(sa.select(entries.c.url, entries.c.state)).all())
        assert stored == {url: article_id(url) for url in expected}
        assert states == dict.fromkeys(links, "done")  # both links of the story are closed
        assert f"names {canonical} as its canonical URL" in caplog.text

    requests = len(web.seen)
    with Pipeline(settings) as pipeline:
        again = pipeline.run()
        assert again.articles_added == 0 and again.articles_failed == 0
    assert len(web.seen) == requests, "no page fetched again"
