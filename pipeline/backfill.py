"""Articles from archived pages, without the network: `newsagg reextract` and `newsagg import-warc`.

``reextract`` runs extraction again over the pages the WARC archive holds for stored
articles (after an extractor or setting changed), stores what changed and has those
articles' clusters formed anew. ``import_warc`` reads WARC files written by anyone
(Common Crawl's CC-NEWS: one response record per page, gzip per record) and stores an
article per HTML page. Both then cluster, build stories and index as a run does.

Both commit batch by batch and are safe to kill: ``reextract`` compares each article
with its page again, so a second pass changes nothing; ``import_warc`` records in the
store how far it got in each file and goes on from there (articles are keyed by URL,
so a batch read twice is stored once).
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from pipeline.archive import (
    FEED_TYPES,
    HTML_TYPES,
    TRUNCATED,
    ArchiveError,
    ArchivedPage,
    ScannedRecord,
    nothing_after,
    read_page,
    scan_warc,
)
from pipeline.errors import ExtractionError, FeedParseError, SearchUnavailable
from pipeline.extraction import build_article, extract_pages
from pipeline.feeds import parse_feed
from pipeline.fetching import registrable_domain
from pipeline.models import ArchiveRecord, Article, FeedEntry, FeedSource
from pipeline.progress import ProgressBar
from pipeline.runner import Pipeline
from pipeline.storage import PendingEntry
from pipeline.urls import canonicalize

log = logging.getLogger(__name__)

#: Bytes of a WARC file's start that name it in the import progress (its warcinfo record is there).
FILE_KEY_BYTES = 64 * 1024
#: Feed entries an import remembers (the newest), to give the pages they link to their feed's text and outlet.
MAX_FEED_ENTRIES = 100_000


@dataclass(slots=True)
class Settled:
    """What clustering, stories and indexing did after new or changed articles."""

    clustered: int = 0
    stories_built: int = 0
    stories_removed: int = 0
    indexed: int = 0
    index_error: str | None = None


@dataclass(slots=True)
class ReextractReport:
    examined: int = 0
    changed: int = 0
    unreadable: int = 0  # archived pages that could not be read (file deleted, record damaged)
    failed: int = 0  # pages that now give no article text: the stored article is kept
    settled: Settled = field(default_factory=Settled)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class ImportReport:
    files: int = 0
    files_done_before: int = 0
    files_failed: list[str] = field(default_factory=list)  # why each file that could not be read was not
    records: int = 0
    feeds: int = 0
    pages: int = 0
    articles_added: int = 0
    failed: int = 0  # HTML pages without article text
    skipped: Counter[str] = field(default_factory=Counter)  # records that are no page, by reason
    settled: Settled = field(default_factory=Settled)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["skipped"] = dict(self.skipped)
        return data


def settle(pipeline: Pipeline) -> Settled:
    """Cluster, build stories and index what the store holds unclustered, as a run ends."""
    settled = Settled()
    settled.clustered, _ = pipeline.cluster()
    settled.stories_built, settled.stories_removed = pipeline.build_stories()
    try:
        settled.indexed, _ = pipeline.index_outbox()
    except SearchUnavailable as exc:
        settled.index_error = str(exc)
        log.error("search index unavailable, %d documents wait in the outbox: %s", pipeline.store.outbox_size(), exc)
    return settled


# -- reextract -----------------------------------------------------------------------------------


def reextract(
    pipeline: Pipeline, *, since: datetime | None = None, outlet: str | None = None, progress: bool = False
) -> ReextractReport:
    """Extract the archived pages of stored articles again; store, re-cluster and re-index those that changed.

    Args:
        pipeline: the store, settings and search index.
        since: only articles that arrived since then.
        outlet: only this outlet's articles.
        progress: show a progress bar.
    """
    settings = pipeline.settings
    directory = settings.resolved_archive_dir
    report = ReextractReport()
    pipeline.pool.start()  # forked before the progress bar or any thread starts
    with ProgressBar(desc="re-extracting", unit="article", disable=not progress, leave=False) as bar:
        for batch in pipeline.store.archived_articles(since, outlet, chunk=settings.extraction.batch_size):
            pages: list[tuple[Article, ArchivedPage, ArchiveRecord]] = []
            for article, record in batch:
                try:
                    pages.append((article, read_page(directory, record), record))
                except ArchiveError as exc:
                    log.warning("article %s: archived page unreadable: %s", article.id, exc)
                    report.unreadable += 1
            entries = pipeline.store.entries_by_url(p.page.requested_url for _, p, _ in pages)
            extracted = extract_pages([(p.page.url, p.page.body, p.page.content_type) for _, p, _ in pages],
                                      pipeline.pool)
            changed: list[tuple[Article, ArchiveRecord]] = []
            for (old, archived, record), found in zip(pages, extracted):
                pending = entries.get(archived.page.requested_url) or _entry_of(old)
                try:
                    new = build_article(
                        pending.entry, archived.page, extracted=found, outlet=old.outlet, settings=settings.extraction,
                        now=old.fetched_at, feed_language=pending.language, tags=old.tags,
                    )
                except ExtractionError as exc:
                    log.warning("article %s: no text from its archived page now (%s); kept as it was", old.id, exc)
                    report.failed += 1
                    continue
                # What identifies the article and where it came from stays; what extraction decides may change.
                new = replace(new, id=old.id, url=old.url, feed_id=old.feed_id, outlet=old.outlet, tags=old.tags)
                if pipeline.store.without_template(new, settings.extraction) != old:
                    changed.append((new, record))
            with pipeline.store.exclusive("clusters"):  # not while a clustering pass works on these clusters
                report.changed += pipeline.store.replace_articles(changed, settings.extraction)
            report.examined += len(batch)
            bar.update(len(batch))
    report.settled = settle(pipeline)
    return report


def _entry_of(article: Article) -> PendingEntry:
    """A stand-in for an article's feed entry when the store has none (an imported page, a removed feed)."""
    entry = FeedEntry(feed_id=article.feed_id or "", url=article.url, title="", published=article.feed_published)
    return PendingEntry(entry=entry, outlet=article.outlet, attempts=0)


# -- import-warc ---------------------------------------------------------------------------------


def import_warc(
    pipeline: Pipeline,
    paths: Sequence[Path],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    language: str | None = None,
    progress: bool = False,
) -> ImportReport:
    """Store an article for every HTML page of these WARC files, then cluster, build stories and index.

    Each file is read as a stream, ``extraction.batch_size`` pages at a time, extracted on
    the run's worker processes (``workers``). After each batch the store records the offset of the
    next record, so a killed import goes on from there; a file imported to its end is
    skipped the next time it is imported with the same ``since``, ``until`` and ``language``
    (under others it is read again, storing only the articles not stored yet), unless it has
    grown since: a file that ended inside a record (a download cut off) is read on from that
    record once it is whole. A record that is no page (warcinfo, request, metadata, dns,
    non-HTML, not 200, truncated, unreadable) is counted by reason and skipped.

    A page's outlet is the registrable domain of its URL, and its title, date and text
    come from the page alone, unless a feed document earlier in the files (as in the
    archive of a run) lists it: then the feed's entry and title are used as a run uses
    them (its summary when the page yields no text, its title as the outlet).

    Args:
        pipeline: the store, settings and search index.
        paths: WARC files (.warc or .warc.gz).
        since, until: only pages fetched (WARC-Date) within these bounds.
        language: only articles in this language (primary subtag, e.g. "en").
        progress: show a progress bar (bytes read).

    Raises:
        OSError: a file cannot be read.
    """
    report = ImportReport()
    pipeline.pool.start()  # forked before the progress bar or any thread starts
    total = sum(p.stat().st_size for p in paths)
    listed: dict[str, tuple[FeedEntry, str]] = {}  # a page's canonical URL -> its feed entry and outlet
    with ProgressBar(total=total, desc="importing", unit="B", unit_scale=True, disable=not progress, leave=False) as bar:
        for path in paths:
            report.files += 1
            key = _file_key(path, since, until, language)
            offset, done = pipeline.store.warc_import_progress(key)
            if done and nothing_after(path, offset):  # else it grew since: a download cut off, now whole
                log.info("%s was imported before", path)
                report.files_done_before += 1
                bar.update(path.stat().st_size)
                continue
            bar.update(offset)
            try:
                read = _import_file(pipeline, path, key, offset, listed, since, until, language, report, bar)
            except ArchiveError as exc:
                # Said once, by whoever reads the report (`newsagg import-warc`: "not imported: ...").
                log.debug("%s", exc)
                report.files_failed.append(str(exc))
                continue
            pipeline.store.record_warc_import(key, str(path), read, done=True)
    report.settled = settle(pipeline)
    return report


def _import_file(
    pipeline: Pipeline,
    path: Path,
    key: str,
    offset: int,
    listed: dict[str, tuple[FeedEntry, str]],
    since: datetime | None,
    until: datetime | None,
    language: str | None,
    report: ImportReport,
    bar: ProgressBar,
) -> int:
    """Import one file from ``offset`` on, recording the progress after each batch; returns where it ended."""
    settings = pipeline.settings
    batch: list[ScannedRecord] = []
    read = shown = offset
    for record in scan_warc(path, offset, max_bytes=settings.fetch.max_body_bytes, types=HTML_TYPES + FEED_TYPES):
        report.records += 1
        if record.page is None:
            kind = _reason_kind(record.skipped or "")
            report.skipped[kind] += 1
            # Damage is worth a line; records that are simply no page (requests, images...) are not.
            level = logging.WARNING if kind in ("unreadable record", TRUNCATED) else logging.DEBUG
            log.log(level, "%s@%d: skipped: %s", path, record.offset, record.skipped)
        elif (since and record.page.fetched_at < since) or (until and record.page.fetched_at > until):
            report.skipped["outside --since/--until"] += 1
        elif _media(record.page.page.content_type) not in HTML_TYPES:
            _remember_feed(record.page, settings.feeds.max_entries_per_feed, listed, report)
        else:
            batch.append(record)
        bar.update(record.end - shown)
        shown = record.end
        if record.skipped != TRUNCATED:  # the file ends in it: read again once the file is whole
            read = record.end
        if len(batch) >= settings.extraction.batch_size:
            _import_batch(pipeline, path, batch, listed, language, report)
            pipeline.store.record_warc_import(key, str(path), record.end)
            batch = []
    _import_batch(pipeline, path, batch, listed, language, report)
    return read


def _remember_feed(
    archived: ArchivedPage, max_entries: int, listed: dict[str, tuple[FeedEntry, str]], report: ImportReport
) -> None:
    page = archived.page
    try:
        parsed = parse_feed(FeedSource(id="", name="", url=page.url), page, max_entries=max_entries,
                            now=archived.fetched_at)
    except FeedParseError as exc:
        log.debug("%s: %s", page.url, exc)
        report.skipped["not a feed"] += 1
        return
    report.feeds += 1
    outlet = parsed.title or registrable_domain(httpx.URL(page.url).host)
    for entry in parsed.entries:
        listed.pop(entry.url, None)  # the newest listing wins, and is the last to be forgotten
        listed[entry.url] = (entry, outlet)
    while len(listed) > MAX_FEED_ENTRIES:
        del listed[next(iter(listed))]


def _media(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _import_batch(
    pipeline: Pipeline,
    path: Path,
    batch: list[ScannedRecord],
    listed: dict[str, tuple[FeedEntry, str]],
    language: str | None,
    report: ImportReport,
) -> None:
    settings = pipeline.settings
    pages = [r.page for r in batch if r.page is not None]
    extracted = extract_pages([(p.page.url, p.page.body, p.page.content_type) for p in pages], pipeline.pool)
    where = str(path.resolve())
    for record, archived, found in zip(batch, pages, extracted):
        page = archived.page
        report.pages += 1
        url = canonicalize(page.requested_url) or page.url
        entry, outlet = listed.get(url) or (FeedEntry(feed_id="", url=url, title=""), registrable_domain(httpx.URL(page.url).host))
        try:
            article = build_article(
                entry, page, extracted=found, outlet=outlet, settings=settings.extraction, now=archived.fetched_at
            )
        except ExtractionError as exc:
            log.info("%s@%d: %s", path, record.offset, exc)
            report.failed += 1
            continue
        if language is not None and article.language != language:
            report.skipped["another language"] += 1
            continue
        article = replace(article, feed_id=None)  # no feed: a page from a WARC file
        report.articles_added += pipeline.store.save_article(
            article, templates=settings.extraction, archived=ArchiveRecord(where, record.offset, record.end - record.offset)
        )


def _file_key(path: Path, since: datetime | None, until: datetime | None, language: str | None) -> str:
    """The file (a digest of its first bytes) as imported under these filters: under others, it is read again."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        digest.update(file.read(FILE_KEY_BYTES))
    if since or until or language:  # an import without filters keeps the key of the releases before filters counted
        digest.update(f"\0since={since and since.isoformat()}\0until={until and until.isoformat()}"
                      f"\0language={language}".encode())
    return digest.hexdigest()


def _reason_kind(reason: str) -> str:
    """A skip reason without its details, to count by ("HTTP status 404" -> "HTTP status")."""
    for kind in ("HTTP status", "not a page", "unreadable record", "larger than"):
        if reason.startswith(kind):
            return kind
    return reason
