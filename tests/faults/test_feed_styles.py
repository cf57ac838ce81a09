"""Feeds in the styles operators meet, end to end: entries without links, declared language and tags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from faultkit import Web, article_html, fault_settings, rss
from pipeline.cli import main
from pipeline.models import TextSource
from pipeline.runner import Pipeline

WIRE_ITEMS = [
    ("Harbour ferry service suspended after storm damage",
     "The ferry service across the harbour was suspended on Monday after storm damage to two piers. "
     "Engineers expect repairs to take a week; buses will replace the boats during rush hours."),
    ("Council delays vote on tram extension",
     "The city council postponed its vote on the tram extension to the airport until next month, "
     "citing new cost estimates that put the project at 1.2 billion, twice the earlier figure."),
]


def wire_feed() -> str:
    """A wire feed whose items carry their whole text and no link (one with a guid, one without)."""
    items = (
        f'<item><title>{WIRE_ITEMS[0][0]}</title><guid isPermaLink="false">wire-1</guid>'
        f"<description>{WIRE_ITEMS[0][1]}</description><pubDate>Mon, 02 Nov 2026 08:00:00 GMT</pubDate></item>"
        f"<item><title>{WIRE_ITEMS[1][0]}</title>"
        f"<description>{WIRE_ITEMS[1][1]}</description><pubDate>Mon, 02 Nov 2026 09:00:00 GMT</pubDate></item>"
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>City Wire</title>'
        f"<link>http://example.invalid/</link><description>Wire</description>{items}</channel></rss>"
    )


def test_entries_without_links_become_articles_from_their_feed_text(
    web: Web, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    web.serve("/wire.xml", wire_feed(), "application/rss+xml")
    web.serve("/news.xml", rss("News", [("Stadium roof repaired", web.url("/a/1.html"), None)]), "application/rss+xml")
    web.serve("/a/1.html", article_html("Stadium roof repaired", "stadium"))
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(yaml.safe_dump({"feeds": [
        {"name": "City Wire", "url": web.url("/wire.xml"), "language": "de", "tags": ["wire", "local"]},
        {"name": "News", "url": web.url("/news.xml"), "language": "fr", "tags": ["sport"]},
    ]}), encoding="utf-8")
    settings = fault_settings(web, tmp_path, feeds)
    with Pipeline(settings) as pipeline:
        report = pipeline.run(force=True)
        assert report.failed_feeds == [] and {f.status for f in report.feeds} == {"ok"}
        assert report.articles_added == 3 and report.articles_failed == 0
        state = pipeline.store.feed_state("city-wire")
        assert state is not None and state.status == "active" and state.last_error is None
        articles = list(pipeline.store.articles_by_id(
            m.article_id for c in pipeline.store.cluster_ids() for m in pipeline.store.memberships_of(c)
        ).values())
        wire = sorted((a for a in articles if a.feed_id == "city-wire"), key=lambda a: a.title)
        assert [a.title for a in wire] == sorted(title for title, _ in WIRE_ITEMS)
        for a in wire:
            assert a.url.startswith("urn:newsagg:city-wire:")
            assert a.text_source is TextSource.FEED_SUMMARY
            assert a.text_source_reason == "the feed entry has no link"
            assert (a.language, a.tags) == ("de", ("wire", "local"))
        (page,) = (a for a in articles if a.feed_id == "news")
        assert page.text_source is TextSource.PAGE
        assert (page.language, page.tags) == ("en", ("sport",))  # the page declares English
        stories = {s.id: s for s in pipeline.store.stories_by_id(pipeline.store.cluster_ids()).values()}
        wire_story = next(s for s in stories.values() if s.sources[0].outlet == "City Wire")
        assert wire_story.sources[0].url is None and wire_story.tags == ("local", "wire")
    # No request for the entries without a link: only the feeds and the one page (and robots.txt).
    assert sorted(path for _, path in web.seen if path != "/robots.txt") == ["/a/1.html", "/news.xml", "/wire.xml"]

    data_dir = str(settings.data_dir)
    assert main(["search", "ferry", "--tag", "local", "--data-dir", data_dir, "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert [(h["story_id"], h["tags"]) for h in hits] == [(wire_story.id, ["local", "wire"])]
    assert main(["search", "ferry", "--tag", "sport", "--data-dir", data_dir]) == 0
    assert capsys.readouterr().out.startswith("0 stories")
    assert main(["clusters", "show", wire_story.id, "--data-dir", data_dir]) == 0
    shown = capsys.readouterr().out
    assert "(no link)" in shown and "urn:" not in shown
