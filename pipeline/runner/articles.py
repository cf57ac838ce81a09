"""Fetching articles: queued entries claimed in batches, their pages downloaded, extracted on the
worker processes as they arrive, and stored as articles (or revisions of them)."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Sequence
from contextlib import suppress
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime

from pipeline.archive import HTML_TYPES
from pipeline.errors import ExtractionError, FetchError, StoreError, TransientFetchError
from pipeline.extraction import MIN_PARALLEL_BATCH, PageBatch, build_article
from pipeline.fetching import Fetcher, redact_url
from pipeline.models import ArchiveRecord, Fetched
from pipeline.runner.base import PipelineBase
from pipeline.storage import NewArticle, PendingEntry
from pipeline.urls import link_of

# One logger name for all the runner's modules: operators know its lines by it, and filter them
# so ("WARNING pipeline.runner: feed ... failed"), whichever module a line now comes from.
log = logging.getLogger("pipeline.runner")

MAX_PAGE_ATTEMPTS = 3
#: Batches of article pages downloading at once (their requests share ``fetch.concurrency``).
BATCHES_DOWNLOADING = 2


#: A batch's pages, the errors of those not fetched, where each was archived, and the URLs being
#: extracted with their extraction.
_Downloaded = tuple[dict[str, Fetched], dict[str, FetchError], dict[str, ArchiveRecord], list[str], PageBatch]


@dataclass(frozen=True, slots=True)
class _Extracting:
    """A claimed batch whose pages were downloaded and are being extracted."""

    batch: list[PendingEntry]
    fetched: dict[str, Fetched]
    errors: dict[str, FetchError]
    archived: dict[str, ArchiveRecord]
    urls: list[str]
    pages: PageBatch


class ArticleStages(PipelineBase):
    """The stage of the articles: ``fetch_articles``."""

    def fetch_articles(self, limit: int | None = None) -> tuple[int, int, int]:
        """Fetch and extract queued entries in batches; returns (added, failed, deferred).

        Each batch is claimed in the store for ``extraction.claim_lease`` seconds, so
        several workers at once share the queue and fetch each page once; a killed
        worker's entries are taken by another once its lease ends, or at once by a worker
        on the same machine. A batch's pages go to the pool's workers as they are
        downloaded, while this process stores the batch before. After
        ``extraction.max_pass_seconds`` no new batch is taken: the run goes on to cluster and
        index what it fetched, and the next run takes the rest.
        """
        batch_size = self.settings.extraction.batch_size
        lease = self.settings.extraction.claim_lease
        worker = self.store.new_worker()
        added = failed = deferred = planned = 0
        time_up = time.monotonic() + self.settings.extraction.max_pass_seconds

        def next_batch() -> list[PendingEntry]:
            nonlocal planned
            size = batch_size if limit is None else min(batch_size, limit - planned)
            if size <= 0:
                return []
            if planned and time.monotonic() >= time_up:  # the first batch is taken whatever the time
                log.info("fetch_articles takes no new batch after %g s (extraction.max_pass_seconds): what is "
                         "left in the queue waits for the next run", self.settings.extraction.max_pass_seconds)
                return []
            # Deferred entries stay marked as this pass's, so they are not claimed again here.
            batch = self.store.claim_entries(size, worker, lease_seconds=lease, max_attempts=MAX_PAGE_ATTEMPTS)
            planned += len(batch)
            self._beat()
            return batch

        try:
            self.store.release_dead_claims()
            batch = next_batch()
            if len(batch) >= MIN_PARALLEL_BATCH:
                self.pool.start()  # forked before the download thread starts
            fetcher = self.fetcher  # built here, not in the download thread
            # Batches at once: the next ones downloading (their pages queued for the workers as
            # they arrive), this one with the workers, the last one being stored by this thread,
            # so that the workers never wait for the store, nor for a whole batch's downloads,
            # nor does a batch's slowest page hold up the downloads of the next.
            extracting: _Extracting | None = None
            downloading: deque[tuple[list[PendingEntry], Future[_Downloaded]]] = deque()
            with self._bar(None, "articles") as bar, \
                    self._downloading("newsagg-pages", BATCHES_DOWNLOADING) as downloads:

                def download(batch: list[PendingEntry]) -> bool:
                    """Start downloading ``batch``; False when it is empty (the queue is)."""
                    if batch:
                        downloading.append((batch, downloads.submit(self._download_pages, fetcher, batch, worker)))
                    return bool(batch)

                more = download(batch)
                while more and len(downloading) < BATCHES_DOWNLOADING:
                    more = download(next_batch())
                while downloading or extracting is not None:
                    started: _Extracting | None = None
                    if downloading:
                        current, pages = downloading.popleft()
                        started = _Extracting(current, *pages.result())
                        more = more and download(next_batch())
                    if extracting is not None:
                        a, f, d = self._store_batch(extracting)
                        self._count(articles_failed=f, pages_deferred=d)  # the store counted the articles it saved
                        added, failed, deferred = added + a, failed + f, deferred + d
                        bar.update(len(extracting.batch))
                    extracting = started
        finally:
            # Whatever this pass did not finish (it failed) is free for the next worker at once.
            with suppress(StoreError):
                self.store.release_claims(worker)
        return added, failed, deferred

    def _download_pages(self, fetcher: Fetcher, batch: Sequence[PendingEntry], worker: str) -> _Downloaded:
        """Download the batch's pages, handing each to the workers as it arrives.

        Returns the pages, the errors of those that could not be fetched, where each page
        was archived, and the URLs of the pages being extracted, in the order of the
        extraction's results. Keeps ``worker``'s claims alive (entries without a link have
        no page). Archiving here, in the download thread, keeps it off the extraction's path.
        """
        pages: dict[str, Fetched] = {}
        errors: dict[str, FetchError] = {}
        archived: dict[str, ArchiveRecord] = {}
        extracting: list[str] = []
        lease = self.settings.extraction.claim_lease
        renew_at = time.monotonic() + lease / 3
        urls = list(dict.fromkeys(p.entry.url for p in batch if link_of(p.entry.url)))
        extraction = PageBatch(self.pool, len(urls))
        # A revisit (the feed entry was updated) asks for the page only if it changed since.
        known = {p.entry.url: p.validators for p in batch if p.revisit}
        for url, result in fetcher.fetch_all(urls, robots=True, content_types=HTML_TYPES, validators=known):
            if isinstance(result, FetchError):
                errors[url] = result
            else:
                pages[url] = result
                if not result.not_modified:
                    extraction.add((url, result.body, result.content_type))
                    extracting.append(url)
                if (record := self._archive(result)) is not None:
                    archived[url] = record
            if time.monotonic() >= renew_at:  # a batch of one slow site can outlast a lease
                self.store.renew_claims(worker, lease_seconds=lease)
                renew_at = time.monotonic() + lease / 3
        extraction.finish()
        return pages, errors, archived, extracting, extraction

    def _store_batch(self, done: _Extracting) -> tuple[int, int, int]:
        """Store the articles of a batch whose pages were extracted; returns (added, failed, deferred).

        Each article is stored without its outlet's template blocks (``pipeline.templates``).
        A revisit's page that did not change (304) closes its entry; one that did becomes a
        new revision of its article when its text changed (``Store.revise_article``).
        """
        extracted = dict(zip(done.urls, done.pages.result()))
        lost = {done.urls[i] for i in done.pages.lost}
        failed = deferred = 0
        built: list[NewArticle] = []
        now = datetime.now(UTC)
        for url, pending in {p.entry.url: p for p in done.batch}.items():
            page = done.fetched.get(url)
            if page is not None and page.not_modified:
                self.store.close_entry(url, pending.entry.updated)
                log.info("article page %s not modified since the last fetch", redact_url(url))
                continue
            error = done.errors.get(url)
            retry = pending.attempts + 1 < MAX_PAGE_ATTEMPTS
            if isinstance(error, TransientFetchError) and retry:
                # The page may come back; its full text beats the feed's summary, so wait for it.
                self.store.record_entry_failure(url, str(error), final=False)
                deferred += 1
                continue
            if url in lost and retry:
                # Its worker died with it (out of memory?): the next pass extracts it again.
                self.store.record_entry_failure(url, "the extraction worker died", final=False)
                deferred += 1
                continue
            if pending.revisit and (error is not None or url in lost):
                # The article has its page's text: the feed's summary is no correction of it.
                reason = f"page fetch failed: {error.reason}" if error is not None else "the extraction worker died"
                self.store.record_entry_failure(url, reason, final=True)
                log.info("article page %s not fetched again (%s); the article stays as it was", redact_url(url), reason)
                continue
            try:
                article = build_article(
                    pending.entry,
                    done.fetched.get(url),
                    extracted=extracted.get(url),
                    outlet=pending.outlet,
                    settings=self.settings.extraction,
                    page_error=None if error is None else f"page fetch failed: {error.reason}",
                    now=now,
                    feed_language=pending.language,
                    tags=pending.tags,
                )
            except ExtractionError as exc:
                log.warning("no article from %s: %s", url, exc)
                self.store.record_entry_failure(url, str(exc), final=True)
                failed += 1
                continue
            validators = page.validators if page is not None else None
            if not pending.revisit:
                built.append(NewArticle(article, url, validators, done.archived.get(url), pending.entry.updated))
                continue
            updated = pending.entry.updated.isoformat() if pending.entry.updated else "unknown"
            if self.store.revise_article(
                article, url, reason=f"feed entry updated {updated}", templates=self.settings.extraction,
                validators=validators, updated=pending.entry.updated, archived=done.archived.get(url),
            ):
                log.info("article %s: its text changed, stored as a new revision", article.url)
        return self.store.save_articles(built, self.settings.extraction), failed, deferred
