"""A batch's pages are extracted as they arrive, not once its slowest page is downloaded.

A run's batches are downloaded whole before: the extraction of a batch started only once
its last download ended, so one slow publisher held up the extraction of every other
page of its batch, and a run of a single batch (what most scheduled runs are) did its
downloading and its extracting one after the other.
"""

from __future__ import annotations

import threading
from contextlib import suppress
from pathlib import Path

import pytest

import pipeline.extraction as extraction
import pipeline.pool
from faultkit import Handler, Web, article_html, fault_settings, rss, wait_until, write_feed_list
from pipeline.extraction import ExtractedPage
from pipeline.runner import Pipeline

FAST_PAGES = 11


@pytest.mark.parametrize("workers", [2, 1])
def test_the_pages_of_a_batch_are_extracted_while_its_slowest_page_downloads(
    workers: int, web: Web, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    extracted = tmp_path / "extracted"  # a line per page extracted, written by whichever process extracts it
    extracted.touch()
    real = extraction._extract_contained

    def noted(html: bytes, url: str, content_type: str | None) -> ExtractedPage | None:
        with extracted.open("a", encoding="utf-8") as out:
            out.write(url + "\n")
        return real(html, url, content_type)

    monkeypatch.setattr(pipeline.pool, "start_method", lambda: "fork")  # the workers inherit the note
    monkeypatch.setattr(extraction, "_extract_contained", noted)

    others_extracted = threading.Event()

    def slow(handler: Handler) -> None:
        # Answers once every other page of the batch is extracted, or after 20 s if that never happens.
        with suppress(AssertionError):
            wait_until(lambda: len(extracted.read_text(encoding="utf-8").splitlines()) >= FAST_PAGES, timeout=20)
            others_extracted.set()
        handler.reply(200, article_html("Slow story", "tunnel").encode(), "text/html; charset=utf-8")

    web.routes["/news/slow"] = slow
    links = [web.url("/news/slow")]
    for n in range(FAST_PAGES):
        web.serve(f"/news/{n}", article_html(f"Story {n}", f"topic{n}"))
        links.append(web.url(f"/news/{n}"))
    web.serve("/feed.xml", rss("Ledger", [(f"s{n}", link, None) for n, link in enumerate(links)]),
              "application/rss+xml")
    feeds = write_feed_list(tmp_path / "feeds.yaml", {"Ledger": web.url("/feed.xml")})
    settings = fault_settings(web, tmp_path, feeds, workers=workers, fetch={"total_timeout": 30.0, "read_timeout": 30.0})
    with Pipeline(settings) as pipe:
        pipe.poll_feeds(pipe.load_feeds())
        added, failed, deferred = pipe.fetch_articles()

    assert (added, failed, deferred) == (FAST_PAGES + 1, 0, 0)
    assert others_extracted.is_set(), "no page was extracted until the slowest page of its batch was downloaded"
    assert sorted(extracted.read_text(encoding="utf-8").splitlines()) == sorted(links)  # each page once


def test_a_batchs_slowest_page_does_not_hold_up_the_next_batchs_downloads(web: Web, tmp_path: Path) -> None:
    batch = 4
    asked: list[str] = []
    next_batch_asked = threading.Event()

    def logged(path: str, html: str) -> None:
        def route(handler: Handler) -> None:
            asked.append(path)
            handler.reply(200, html.encode(), "text/html; charset=utf-8")
        web.routes[path] = route

    def slow(handler: Handler) -> None:
        # Answers once every page of the next batch was asked for, or after 20 s if none is.
        with suppress(AssertionError):
            wait_until(lambda: len(asked) >= 2 * batch - 1, timeout=20)
            next_batch_asked.set()
        handler.reply(200, article_html("Slow story", "tunnel").encode(), "text/html; charset=utf-8")

    web.routes["/news/0"] = slow  # the first entry of the first batch
    links = [web.url("/news/0")]
    for n in range(1, 2 * batch):
        logged(f"/news/{n}", article_html(f"Story {n}", f"topic{n}"))
        links.append(web.url(f"/news/{n}"))
    web.serve("/feed.xml", rss("Ledger", [(f"s{n}", link, None) for n, link in enumerate(links)]),
              "application/rss+xml")
    feeds = write_feed_list(tmp_path / "feeds.yaml", {"Ledger": web.url("/feed.xml")})
    settings = fault_settings(web, tmp_path, feeds, extraction={"batch_size": batch},
                              fetch={"total_timeout": 30.0, "read_timeout": 30.0})
    with Pipeline(settings) as pipe:
        pipe.poll_feeds(pipe.load_feeds())
        assert pipe.fetch_articles() == (2 * batch, 0, 0)
    assert next_batch_asked.is_set(), "the next batch was downloaded only once the slowest page of this one came"
