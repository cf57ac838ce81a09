"""Text with lone UTF-16 surrogates: a JSON escape or a character reference for half a character.

Truncating a string in a UTF-16 language (JavaScript's ``substring``) can split an emoji's
surrogate pair, and ``JSON.stringify`` then writes the half as ``\\ud83d``; some feeds write
``&#55357;``. Such a half is no character: Python reads the JSON escape into a string that
UTF-8 cannot encode, and the store, the search index and Elasticsearch refuse it. Browsers show
U+FFFD in its place; so does the pipeline, and the rest of the entry, the feed and the run go on.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from faultkit import Web, article_html, fault_settings, rss
from pipeline.models import SearchQuery
from pipeline.runner import Pipeline

HALF = "\ud83d"  # the first half of 😀 (U+1F600)


def test_a_feed_entry_holding_half_a_character_is_kept_with_a_replacement_character(web: Web, tmp_path: Path) -> None:
    web.serve("/feed.json", json.dumps({
        "version": "https://jsonfeed.org/version/1.1", "title": f"Lagoon Times {HALF}",
        "items": [{
            "id": "1", "url": web.url("/a/1.html"), "title": f"Lagoon swimmers return {HALF}",
            "summary": f"Swimmers are back in the lagoon {HALF}", "authors": [{"name": f"Ada {HALF}"}],
            "tags": [f"summer{HALF}"], "date_published": "2026-11-02T08:00:00Z",
        }],
    }), "application/feed+json")
    web.serve("/a/1.html", article_html("Lagoon swimmers return", "lagoonia"))
    # A numeric reference to a surrogate in XML, as a browser reads it: U+FFFD.
    web.serve("/feed.xml", rss("Reef Review", [
        ("Reef survey published &#55357;&#xDE00;", web.url("/a/2.html"), "Divers counted fish &#xd83d;"),
    ]), "application/rss+xml")
    web.serve("/a/2.html", article_html("Reef survey published", "reefton"))
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(yaml.safe_dump({"feeds": [
        {"name": "Lagoon Times", "url": web.url("/feed.json")},
        {"name": "Reef Review", "url": web.url("/feed.xml")},
    ]}), encoding="utf-8")
    with Pipeline(fault_settings(web, tmp_path, feeds)) as pipeline:
        report = pipeline.run(force=True)
        assert report.failed_feeds == [] and {f.status for f in report.feeds} == {"ok"}
        assert report.articles_added == 2 and report.articles_failed == 0
        lagoon, reef = (pipeline.store.feed_entry(web.url(path)) for path in ("/a/1.html", "/a/2.html"))
        assert lagoon is not None and reef is not None
        assert (lagoon.title, lagoon.summary, lagoon.author) == (
            "Lagoon swimmers return \ufffd", "Swimmers are back in the lagoon \ufffd", "Ada \ufffd")
        assert (reef.title, reef.summary) == ("Reef survey published \ufffd\ufffd", "Divers counted fish \ufffd")
        assert pipeline.index.search(SearchQuery(text="lagoonia")).total == 1
