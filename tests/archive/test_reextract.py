"""`newsagg reextract`: extraction again from the archive, without the network; what changed is stored,
clustered and indexed again; a second pass changes nothing."""

from __future__ import annotations

import os
import zlib
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import pytest

from faultkit import Web, article_html, fault_settings, rss, write_feed_list
from pipeline.backfill import reextract
from pipeline.models import SearchQuery, TextSource
from pipeline.runner import Pipeline
from pipeline.settings import Settings
from services import postgres_database

STORIES = {
    "/news/harbour-cranes": ("Harbour cranes stand still", "harbour"),
    "/news/orchard-frost": ("Frost hits the orchards", "orchard"),
    "/news/tunnel-opens": ("The tunnel opens", "tunnel"),
}


def _settings(web: Web, tmp_path: Path, **overrides: object) -> Settings:
    return fault_settings(web, tmp_path, tmp_path / "feeds.yaml", **overrides)


def _serve(web: Web, tmp_path: Path) -> None:
    items = []
    for path, (title, topic) in STORIES.items():
        web.serve(path, article_html(title, topic))
        items.append((title, web.url(path), f"The {topic} summary: what the feed says about {title.lower()}."))
    web.serve("/feed.xml", rss("Ledger", items), "application/rss+xml")
    write_feed_list(tmp_path / "feeds.yaml", {"Ledger": web.url("/feed.xml")})


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_reextract_after_a_setting_changed_updates_reclusters_and_reindexes_then_changes_nothing(
    backend: str, web: Web, tmp_path: Path
) -> None:
    with ExitStack() as stack:
        store_url = stack.enter_context(postgres_database()) if backend == "postgresql" else None
        _check_reextract(web, tmp_path, store_url)


def _check_reextract(web: Web, tmp_path: Path, store_url: str | None) -> None:
    _serve(web, tmp_path)
    with Pipeline(_settings(web, tmp_path, store_url=store_url)) as pipeline:
        assert pipeline.run().articles_added == 3
        before = {a.id: a for a, _, _ in pipeline.store.iter_articles()}
    assert {a.text_source for a in before.values()} == {TextSource.PAGE}
    requests = len(web.seen)

    # Page text shorter than min_text_chars is not used: the articles fall back to their feed summaries.
    stricter = _settings(web, tmp_path, store_url=store_url, extraction={"min_text_chars": 100_000})
    with Pipeline(stricter) as pipeline:
        report = reextract(pipeline)
        assert (report.examined, report.changed, report.unreadable) == (3, 3, 0)
        assert report.settled.clustered == 3 and report.settled.index_error is None
        after = {a.id: (a, cluster) for a, _, cluster in pipeline.store.iter_articles()}
        assert set(after) == set(before)
        for article, cluster in after.values():
            assert article.text_source is TextSource.FEED_SUMMARY
            assert "summary: what the feed says" in article.text
            assert article.fetched_at == before[article.id].fetched_at
            assert cluster is not None  # clustered again
            story = pipeline.store.story(pipeline.store.resolve_cluster(cluster))
            assert story is not None and article.id in {s.article_id for s in story.sources}
        assert pipeline.store.outbox_size() == 0
        frost = next(c for a, c in after.values() if a.title == "Frost hits the orchards")
        hits = pipeline.index.search(SearchQuery(text="orchard summary feed says")).hits
        assert pipeline.store.resolve_cluster(frost or "") in [h.story_id for h in hits]  # indexed anew

        again = reextract(pipeline)
        assert (again.examined, again.changed, again.settled.clustered) == (3, 0, 0)
    assert len(web.seen) == requests  # nothing fetched: the archive was enough

    # Back to the defaults: the page texts return.
    with Pipeline(_settings(web, tmp_path, store_url=store_url)) as pipeline:
        assert reextract(pipeline).changed == 3
        assert {a.text for a, _, _ in pipeline.store.iter_articles()} == {a.text for a in before.values()}


def test_reextract_limits_and_unreadable_pages(web: Web, tmp_path: Path) -> None:
    _serve(web, tmp_path)
    settings = _settings(web, tmp_path, archive={"max_file_bytes": 1024})  # a file per document
    with Pipeline(settings) as pipeline:
        pipeline.run()
        assert reextract(pipeline, outlet="Another outlet").examined == 0
        assert reextract(pipeline, since=datetime(2030, 1, 1, tzinfo=UTC)).examined == 0  # arrived before then
        first = next(a for a, _, _ in pipeline.store.iter_articles())
        record = pipeline.store.archive_record(first.id)
    assert record is not None
    (settings.data_dir / "archive" / record.file).unlink()
    with Pipeline(settings) as pipeline:
        report = reextract(pipeline, outlet="Ledger")
    assert (report.examined, report.unreadable, report.changed) == (3, 1, 0)


def test_an_archive_file_cut_short_leaves_its_articles_as_they_were(web: Web, tmp_path: Path) -> None:
    # A file cut inside a page's record (a disk that filled, a copy that stopped) gave the part of the
    # page before the cut as the page: its article lost the text after it, and was clustered and
    # indexed so. A cut inside the record's WARC headers stopped reextract with a traceback.
    _serve(web, tmp_path)
    settings = _settings(web, tmp_path, archive={"max_file_bytes": 1024})  # a file per document
    with Pipeline(settings) as pipeline:
        pipeline.run()
        before = {a.id: a for a, _, _ in pipeline.store.iter_articles()}
        records = [pipeline.store.archive_record(article_id) for article_id in sorted(before)]
    archive = settings.data_dir / "archive"
    in_page, in_headers = records[0], records[1]
    assert in_page is not None and in_headers is not None
    os.truncate(archive / in_page.file, in_page.offset + in_page.length * 2 // 3)
    data = (archive / in_headers.file).read_bytes()
    (archive / in_headers.file).write_bytes(data[:next(
        end for end in range(in_headers.offset + 10, len(data))
        if b"WARC-Type: response\r\n" in zlib.decompressobj(31).decompress(data[in_headers.offset:end]))])

    with Pipeline(settings) as pipeline:
        report = reextract(pipeline)
        assert (report.examined, report.unreadable, report.changed) == (3, 2, 0)
        assert {a.id: a for a, _, _ in pipeline.store.iter_articles()} == before
