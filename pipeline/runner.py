"""The stages wired together: what `newsagg run` and each Airflow task call.

Every stage reads its input from the store and commits its output there, so each can
run alone (one Airflow task each), in any process, and be repeated without harm.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from pipeline import alerts, polling
from pipeline.archive import HTML_TYPES, ArchiveWriter
from pipeline.clustering import ClusterEngine
from pipeline.errors import (
    ExtractionError,
    FeedParseError,
    FetchError,
    SearchUnavailable,
    StoreError,
    TransientFetchError,
)
from pipeline.extraction import MIN_PARALLEL_BATCH, PageBatch, build_article
from pipeline.feeds import load_feed_list, parse_feed
from pipeline.feeds.sitemaps import is_sitemap, read_sitemap
from pipeline.fetching import Fetcher, redact_url
from pipeline.models import (
    ArchiveRecord,
    Article,
    Fetched,
    FeedSource,
    IndexChange,
    IndexedArticle,
    ParsedFeed,
)
from pipeline.pool import WorkerPool
from pipeline.progress import ProgressBar
from pipeline.search import SearchIndex, open_index
from pipeline.settings import Settings
from pipeline.stories import build_story
from pipeline.storage import FeedState, NewArticle, OutboxItem, PendingEntry, Store
from pipeline.urls import link_of

log = logging.getLogger(__name__)

MAX_PAGE_ATTEMPTS = 3
# Outbox items per index write: the first piece of a write is built, and its last awaited,
# with nothing else in flight, so bigger writes keep the search node busier (2000: 0.8 of
# a raw _bulk stream, 500: 0.67; bench/indexing.py).
OUTBOX_BATCH = 2000
CLUSTER_BATCH = 2000  # articles clustered and committed at a time
#: How often a run notes in the store that it is alive (see storage.runs.RUN_STALE_AFTER).
HEARTBEAT_SECONDS = 60.0
#: Polls of fewer feeds parse them in this process: starting worker processes would cost more.
MIN_PARALLEL_FEEDS = 32
#: Batches of article pages downloading at once (their requests share ``fetch.concurrency``).
BATCHES_DOWNLOADING = 2


@dataclass(slots=True)
class FeedOutcome:
    """What polling one feed did."""

    feed_id: str
    status: Literal["ok", "not_modified", "failed", "retired"]
    new_entries: int = 0
    error: str | None = None
    transient: bool = False  # a failure that polling again later may cure (timeout, 429, 5xx)


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


@dataclass(slots=True)
class RunReport:
    """Counts per stage for one pass of the pipeline."""

    feeds: list[FeedOutcome] = field(default_factory=list)
    articles_added: int = 0
    articles_failed: int = 0
    pages_deferred: int = 0
    clustered: int = 0
    clusters_merged: int = 0
    stories_built: int = 0
    stories_removed: int = 0
    indexed: int = 0
    index_failures: int = 0
    index_error: str | None = None
    outbox_left: int = 0

    @property
    def failed_feeds(self) -> list[FeedOutcome]:
        return [f for f in self.feeds if f.status in ("failed", "retired")]

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["failed_feeds"] = [f.feed_id for f in self.failed_feeds]
        return data


# Objects a collection of the youngest generation waits for. A run makes millions of short-lived
# containers (rows, statements' parameters, records) and few reference cycles; at CPython's 700
# it collected thousands of times a run, and scanned the whole long-lived heap (SQLAlchemy,
# trafilatura, the suffix list) now and then: a tenth of the run's CPU (bench/README.md).
_FIRST_GENERATION_THRESHOLD = 10_000


def _collect_less_often() -> None:
    """Raise the garbage collector's first threshold for this process (and the workers it forks); a higher one stays."""
    first, *older = gc.get_threshold()
    if first and first < _FIRST_GENERATION_THRESHOLD:
        gc.set_threshold(_FIRST_GENERATION_THRESHOLD, *older)


class Pipeline:
    """The stages over one store, one fetcher and one search index.

    Args:
        settings: the one settings object.
        progress: show progress bars (the CLI passes True on a terminal).
    """

    def __init__(self, settings: Settings, *, progress: bool = False) -> None:
        self.settings = settings
        self.progress = progress
        _collect_less_often()
        self.store = Store(settings.resolved_store_url)
        #: The worker processes every stage shares (started at first use, stopped by close).
        self.pool = WorkerPool(settings.workers)
        self._fetcher: Fetcher | None = None
        self._index: SearchIndex | None = None
        self.archive = (
            ArchiveWriter(settings.resolved_archive_dir, settings.archive.max_file_bytes)
            if settings.archive.enabled
            else None
        )
        self._run_id: int | None = None  # the run in progress, whose heartbeat the stages keep
        self._next_beat = 0.0
        # The stage in progress, and the moment up to which its time is recorded in the run.
        self._stage_name: str | None = None
        self._stage_recorded = 0.0
        # Documents the archive refused in this run, by reason: a full disk refuses every page,
        # which is one warning and a count at the end, not a line per page.
        self._archive_refusals: Counter[str] = Counter()
        self._archive_refusals_lock = threading.Lock()

    @property
    def fetcher(self) -> Fetcher:
        if self._fetcher is None:
            # Politeness holds across every process on the store: the domains' clock is kept there.
            self._fetcher = Fetcher(self.settings.fetch, domain_clock=self.store.reserve_domain_slot)
        return self._fetcher

    @property
    def index(self) -> SearchIndex:
        if self._index is None:
            index = open_index(self.settings, stories=self._unqueued_stories, writing=True)
            index.setup()
            self._index = index
        return self._index

    def _unqueued_stories(self) -> int:
        """The stories a search index made anew would lack; none when the outbox could hold them all
        (a first run's, or what `outbox fill` queued), which it then delivers."""
        counts = self.store.counts()
        return counts.stories if counts.outbox < counts.stories else 0

    def close(self) -> None:
        self.pool.close()
        if self._fetcher is not None:
            self._fetcher.close()
        if self._index is not None:
            self._index.close()
        self.store.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _beat(self) -> None:
        """Show that the run in progress is still at work, and add the time of the stage in progress so far
        (at most every HEARTBEAT_SECONDS): a task killed midway has recorded its time up to its last beat."""
        if self._run_id is not None and time.monotonic() >= self._next_beat:
            if self._stage_name is None:
                self.store.run_heartbeat(self._run_id)
            else:
                self._record_stage_time(self._run_id, self._stage_name)
            self._next_beat = time.monotonic() + HEARTBEAT_SECONDS

    def _record_stage_time(self, run_id: int, name: str) -> None:
        """Add the time of stage ``name`` since it was last recorded to the run (which also notes it alive)."""
        now = time.monotonic()
        self.store.record_stage(run_id, name, now - self._stage_recorded)
        self._stage_recorded = now  # only once recorded: a write that failed leaves its time to the next

    def _count(self, **counts: int) -> None:
        """Add outcomes recorded apart from the batch commits (which the store counts) to the DAG run in progress."""
        if self.store.counting_run is not None and any(counts.values()):
            self.store.add_counts(self.store.counting_run, counts)

    @contextmanager
    def _stage(self, name: str) -> Iterator[None]:
        """Add the time the block takes, whether it completes or fails, to stage ``name`` of the run in progress
        (part of it on the way, at each ``_beat``)."""
        self._stage_name, self._stage_recorded = name, time.monotonic()
        try:
            yield
        except BaseException:
            if self._run_id is not None:
                with suppress(StoreError):  # the error that stopped the stage is the one to report
                    self._record_stage_time(self._run_id, name)
            raise
        else:
            if self._run_id is not None:
                self._record_stage_time(self._run_id, name)
        finally:
            self._stage_name = None

    @contextmanager
    def airflow_stage(self, name: str, airflow_run: str) -> Iterator[None]:
        """Run the block as stage ``name`` (an Airflow task) of the DAG run ``airflow_run``, recorded in the runs table.

        Every task of a DAG run, and every retry, records into the one row of that run
        (``Store.start_run``); its heartbeat is kept while the block runs. The stages add
        what they commit to the run's counts in the transaction of each batch
        (``Store.counting_run``), so a try that fails or is killed midway has counted what it
        committed and its retry counts only the rest (``airflow_counts``).
        """
        self._run_id = self.store.counting_run = self.store.start_run("airflow", airflow_run=airflow_run)
        try:
            with self._stage(name):
                yield
        finally:
            self._run_id = self.store.counting_run = None
            self._say_archive_refusals()

    def airflow_counts(self, airflow_run: str) -> dict[str, int]:
        """What the tasks of the DAG run ``airflow_run`` committed, every try added up (`RunReport` field names)."""
        return self.store.counted(airflow_run)

    def airflow_feeds(self, airflow_run: str) -> list[FeedOutcome]:
        """Each feed the DAG run ``airflow_run`` polled, once, with what its last poll did, by feed id.

        Read from the store, not from the poll tasks' return values: a try that failed after
        polling some feeds returned nothing, and a run cleared and run again polls only the
        feeds due again (what it polled before is in its row, ``finish_airflow_run``).
        """
        outcomes = {f["feed_id"]: FeedOutcome(**f) for f in self.store.reported_feeds(airflow_run)}
        for feed_id, outcome in self.store.attempt_outcomes(airflow_run).items():
            outcomes[feed_id] = FeedOutcome(feed_id, **outcome)
        return [outcomes[feed_id] for feed_id in sorted(outcomes)]

    def finish_airflow_run(self, airflow_run: str, report: RunReport, status: str) -> None:
        """Record how the DAG run ``airflow_run`` ended, with its counts (its last task has them all)."""
        self.store.finish_run(self.store.start_run("airflow", airflow_run=airflow_run), status, report.as_dict())

    def _bar(self, total: int | None, desc: str) -> ProgressBar:
        return ProgressBar(total=total, desc=desc, unit="item", disable=not self.progress, leave=False)

    # -- feeds -----------------------------------------------------------------------

    def load_feeds(self, path: Path | None = None) -> list[FeedSource]:
        """Read the feed list (YAML or OPML) and register its feeds in the store; returns them with the store's ids.

        The store knows a feed by its URL, so renaming or reordering feeds keeps their
        ids and history (``Store.sync_feeds``). Stored feeds missing from the configured
        list are marked removed; another list (``path``, polled once) removes nothing.
        The list is read and registered under the store's feed-list lock, which
        ``newsagg feeds add|remove|move|import-opml`` hold while they edit it: a list read before such
        an edit and registered after it would undo it.
        """
        configured = self.settings.resolved_feeds_file
        path = path or configured
        whole_list = path.resolve() == configured.resolve()
        with self.store.exclusive("feed_list"):
            return self.store.sync_feeds(load_feed_list(path), whole_list=whole_list)

    def due_feeds(
        self,
        sources: Sequence[FeedSource],
        now: datetime | None = None,
        *,
        force: bool = False,
        attempt: str | None = None,
    ) -> list[FeedSource]:
        """The feeds to poll now: those whose next poll is due (retired feeds never are), or all with ``force``.

        A feed that the scheduled poll ``attempt`` already polled (this is Airflow
        retrying that poll) waits for its next poll time even when forced, so a retry
        never contacts a publisher before its Retry-After or backoff has passed.
        """
        now = now or datetime.now(UTC)
        states = {s.source.id: s for s in self.store.feed_states([f.id for f in sources])}
        return [
            f
            for f in sources
            if (state := states.get(f.id)) is None
            or (force and (attempt is None or state.attempt_key != attempt))
            or (state.status != "retired" and (state.next_attempt_at is None or state.next_attempt_at <= now))
        ]

    def poll_feed(self, feed_id: str, *, now: datetime | None = None, attempt: str | None = None) -> FeedOutcome:
        """Fetch one feed (conditional GET) and queue its new entries; failures are recorded, not raised.

        ``attempt`` names the scheduled poll (an Airflow run id): however often it is
        retried, it counts as one failed poll at most. A change of the feed's health (it
        starts failing, is retired, recovers) is reported by the next ``send_alerts``.
        """
        now = now or datetime.now(UTC)
        state = self.store.feed_state(feed_id)
        if state is None:
            return FeedOutcome(feed_id, "failed", error="unknown feed (not in the feed list)")
        fetched, parsed = self._download(state, self.fetcher, now)
        if parsed is None and isinstance(fetched, Fetched) and not fetched.not_modified:  # a feed document
            parsed = self._parse(state.source, fetched, now)
        return self._record_poll(state, now, fetched, parsed, attempt)

    def _download(
        self, state: FeedState, fetcher: Fetcher, now: datetime
    ) -> tuple[Fetched | FetchError, ParsedFeed | FeedParseError | None]:
        """The conditional GET of a source, and a sitemap read at once (it may fetch child sitemaps);
        a feed document is parsed later (None). Safe in any thread."""
        try:
            fetched = fetcher.fetch(state.source.url, validators=state.validators)
        except FetchError as exc:
            return exc, None
        if not fetched.not_modified:
            self._archive(fetched)
        max_bytes = self.settings.fetch.max_body_bytes
        if fetched.not_modified or (state.source.kind != "sitemap" and not is_sitemap(fetched.body, max_bytes)):
            return fetched, None
        def fetch_child(url: str) -> Fetched:
            child = fetcher.fetch(url)
            self._archive(child)  # the children are documents of this source as much as the index
            return child

        try:
            return fetched, read_sitemap(
                state.source, fetched, fetch_child, settings=self.settings.feeds, max_bytes=max_bytes,
                high_water=state.high_water, now=now,
            )
        except FeedParseError as exc:
            return fetched, exc

    def _archive(self, fetched: Fetched) -> ArchiveRecord | None:
        """Write a fetched document to the archive (safe in any thread); None when the archive is off or failed."""
        if self.archive is None:
            return None
        try:
            return self.archive.write(fetched, datetime.now(UTC))
        except OSError as exc:  # a full disk costs the archive copy, not the page
            reason = exc.strerror or str(exc)
            with self._archive_refusals_lock:
                self._archive_refusals[reason] += 1
                first = self._archive_refusals[reason] == 1
            log.log(logging.WARNING if first else logging.DEBUG, "cannot archive %s: %s", redact_url(fetched.url), exc)
            return None

    def _say_archive_refusals(self) -> None:
        """How many documents the archive refused, once a run or a DAG run's task ends (the first was a warning)."""
        for reason, count in self._archive_refusals.items():
            if count > 1:
                log.warning("the archive refused %d documents of this run: %s", count, reason)
        self._archive_refusals.clear()

    def _parse(self, feed: FeedSource, fetched: Fetched, now: datetime) -> ParsedFeed | FeedParseError:
        return _parse_document(feed, fetched, self.settings.feeds.max_entries_per_feed, now)

    def _record_poll(
        self,
        state: FeedState,
        now: datetime,
        fetched: Fetched | FetchError,
        parsed: ParsedFeed | FeedParseError | None,
        attempt: str | None,
    ) -> FeedOutcome:
        feed = state.source
        if isinstance(fetched, Fetched) and fetched.not_modified:
            interval = self._learned_interval(state, 0, now)
            next_at = polling.next_poll_after_success(feed, fetched, self.settings.feeds, now, interval=interval)
            self.store.record_feed_fetched(
                feed.id, [], state.validators, now=now, next_attempt_at=next_at, learned_interval=interval, attempt=attempt,
                not_modified=True,
            )
            return FeedOutcome(feed.id, "not_modified")
        exc = fetched if isinstance(fetched, FetchError) else parsed if isinstance(parsed, FeedParseError) else None
        if exc is not None:
            # A retry of a scheduled poll that already failed is the same attempt: counted once.
            counted = attempt is None or state.attempt_key != attempt or state.consecutive_failures == 0
            failures = state.consecutive_failures + (1 if counted else 0)
            weight = polling.failure_weight(exc, self.settings.feeds)
            score = state.failure_score + (weight if counted else 0.0)
            failing_for = now - (state.failing_since or now)
            retire = polling.should_retire(exc, score, failing_for, self.settings.feeds)
            next_at = polling.next_poll_after_failure(feed, exc, failures, self.settings.feeds, now)
            error = exc.reason  # without the feed or URL: whoever shows it names the feed
            self.store.record_feed_failure(
                feed.id, error, now=now, next_attempt_at=next_at, retire=retire, weight=weight, attempt=attempt,
                counted=counted, transient=exc.transient,
            )
            # One line per failed feed; the rest for -v.
            log.warning("feed %s failed (%d in a row%s%s): %s", feed.id, failures, "" if counted else ", not counted again",
                        ", retired" if retire else "", error)
            log.debug("feed %s (%s): %s; next poll %s", feed.id, redact_url(feed.url), type(exc).__name__,
                      "never (retired)" if retire else next_at.isoformat())
            return FeedOutcome(feed.id, "retired" if retire else "failed", error=error, transient=exc.transient)
        assert isinstance(fetched, Fetched) and isinstance(parsed, ParsedFeed)
        if parsed.error:
            log.info("feed %s is malformed but usable: %s", feed.id, parsed.error)
        interval = self._learned_interval(state, self.store.unseen_entry_count(e.url for e in parsed.entries), now)
        next_at = polling.next_poll_after_success(
            feed, fetched, self.settings.feeds, now, ttl_minutes=parsed.ttl_minutes, interval=interval
        )
        added = self.store.record_feed_fetched(
            feed.id,
            parsed.entries,
            fetched.validators,
            now=now,
            next_attempt_at=next_at,
            error=parsed.error,
            learned_interval=interval,
            attempt=attempt,
            high_water=parsed.high_water,
        )
        log.info("feed %s: %d entries, %d new; next poll %s", feed.id, len(parsed.entries), added, next_at.isoformat())
        return FeedOutcome(feed.id, "ok", new_entries=added)

    def _learned_interval(self, state: FeedState, new_entries: int, now: datetime) -> int:
        return polling.adapt_interval(
            state.source,
            self.settings.feeds,
            current=state.learned_interval,
            new_entries=new_entries,
            now=now,
            last_success_at=state.last_success_at,
            last_new_entry_at=state.last_new_entry_at,
        )

    def poll_feeds(
        self, sources: Sequence[FeedSource], now: datetime | None = None, *, attempt: str | None = None
    ) -> list[FeedOutcome]:
        """Poll many feeds: what `poll_feed` does for each, with the waiting and the parsing overlapped.

        Up to ``fetch.concurrency`` conditional GETs are in flight at once (threads; the
        fetcher's per-domain limits still apply), feed documents are parsed by
        the run's worker processes (in this process for fewer than
        ``MIN_PARALLEL_FEEDS`` feeds unless the workers are running already), and this thread records each result in the store as
        it arrives, so the store is written from one thread only. ``attempt`` names the
        scheduled poll, as for `poll_feed`.

        Returns:
            One outcome per feed, in the order of ``sources``.
        """
        states = {s.source.id: s for s in self.store.feed_states([f.id for f in sources])}
        outcomes: list[FeedOutcome] = [
            FeedOutcome(f.id, "failed", error="unknown feed (not in the feed list)") for f in sources
        ]
        queue = iter([(i, states[f.id]) for i, f in enumerate(sources) if f.id in states])
        concurrency = self.settings.fetch.concurrency
        fetcher = self.fetcher  # built here, not by several download threads at once
        parsers = _Parsers(self.pool if len(states) >= MIN_PARALLEL_FEEDS or self.pool.running else None)
        downloading: dict[
            Future[tuple[Fetched | FetchError, ParsedFeed | FeedParseError | None]], tuple[int, FeedState, datetime]
        ] = {}
        parsing: dict[Future[ParsedFeed], tuple[int, FeedState, datetime, Fetched]] = {}
        try:
            with self._bar(len(sources), "feeds") as bar, self._downloading("newsagg-poll", concurrency) as downloads:
                bar.update(len(sources) - len(states))
                while True:
                    # Bounded: few bodies wait for a parser, and closing early cancels little.
                    while len(downloading) < 2 * concurrency and len(parsing) < 4 * parsers.workers:
                        if (item := next(queue, None)) is None:
                            break
                        i, state = item
                        at = now or datetime.now(UTC)
                        downloading[downloads.submit(self._download, state, fetcher, at)] = (i, state, at)
                    if not downloading and not parsing:
                        break
                    waiting: list[Future[Any]] = [*downloading, *parsing]
                    for future in wait(waiting, return_when=FIRST_COMPLETED).done:
                        if future in downloading:
                            i, state, at = downloading.pop(future)
                            fetched, read = future.result()
                            if read is None and isinstance(fetched, Fetched) and not fetched.not_modified:
                                parsed_later = parsers.submit(state.source, fetched, self.settings.feeds.max_entries_per_feed, at)
                                parsing[parsed_later] = (i, state, at, fetched)
                                continue
                            outcomes[i] = self._record_poll(state, at, fetched, read, attempt)
                        else:
                            i, state, at, fetched = parsing.pop(future)
                            try:
                                parsed = future.result()
                            except FeedParseError as exc:
                                parsed = exc
                            except BrokenProcessPool:  # a worker died (out of memory?): parse here from now on
                                log.warning("a feed parser process died; parsing %s in this process", state.source.id)
                                parsers.broken()
                                parsed = self._parse(state.source, fetched, at)
                            outcomes[i] = self._record_poll(state, at, fetched, parsed, attempt)
                        bar.update()
                    self._beat()
        finally:
            for pending in downloading:
                pending.cancel()
        return outcomes

    def send_alerts(self, now: datetime | None = None) -> alerts.Digest | None:
        """Report the feeds' changes of health not reported yet, as one digest (see ``pipeline.alerts``)."""
        return alerts.send_digest(self.store, self.settings, now)

    # -- articles ----------------------------------------------------------------------

    @contextmanager
    def _downloading(self, name: str, threads: int) -> Iterator[ThreadPoolExecutor]:
        """Threads for a stage's downloads, which end at once if the stage fails or is stopped.

        Leaving the block waits for the threads; without the halt they would first make every
        request queued in them, at one a second per site, and wait for a slow publisher's
        answers up to their timeouts: minutes, and `docker stop` or Airflow kills the process
        before it can record the run. The halt cuts the requests in flight and refuses the rest.
        """
        fetcher = self.fetcher
        try:
            with ThreadPoolExecutor(threads, thread_name_prefix=name) as pool:
                try:
                    yield pool
                except BaseException:
                    fetcher.halt()
                    raise
        except BaseException:
            self._fetcher = None  # it refuses every request now: the next stage builds another
            fetcher.close()
            raise

    def fetch_articles(self, limit: int | None = None) -> tuple[int, int, int]:
        """Fetch and extract queued entries in batches; returns (added, failed, deferred).

        Each batch is claimed in the store for ``extraction.claim_lease`` seconds, so
        several workers at once share the queue and fetch each page once; a killed
        worker's entries are taken by another once its lease ends, or at once by a worker
        on the same machine. A batch's pages go to the pool's workers as they are
        downloaded, while this process stores the batch before.
        """
        batch_size = self.settings.extraction.batch_size
        lease = self.settings.extraction.claim_lease
        worker = self.store.new_worker()
        added = failed = deferred = planned = 0

        def next_batch() -> list[PendingEntry]:
            nonlocal planned
            size = batch_size if limit is None else min(batch_size, limit - planned)
            if size <= 0:
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

    # -- clustering and stories ----------------------------------------------------------

    def cluster(self, batch_size: int = CLUSTER_BATCH) -> tuple[int, int]:
        """Cluster every unclustered article against the matching window; returns (clustered, merges).

        One worker at a time (the store's "clusters" lock): the engine's state is restored
        under the lock, so it holds every assignment another worker committed before.

        Raises:
            LockLost: the lock was lost (PostgreSQL); the batches committed before are kept.
        """
        with self.store.exclusive("clusters"):
            oldest = self.store.oldest_unclustered_arrival()
            if oldest is None:
                return 0, 0
            window = timedelta(days=self.settings.clustering.window_days)
            engine = ClusterEngine(self.settings.clustering, self.pool)
            engine.restore(*self.store.clustering_state(since=oldest - window))
            clustered = merges = 0
            with self._bar(None, "clustering") as bar:
                while batch := self.store.unclustered_articles(limit=batch_size):
                    assignments = engine.add_many(batch)
                    self.store.save_assignments(assignments)
                    clustered += len(assignments)
                    merges += sum(len(a.absorbed) for a in assignments)
                    bar.update(len(batch))
                    self._beat()
            return clustered, merges

    def build_stories(self) -> tuple[int, int]:
        """Rebuild the stories of clusters that changed; returns (built, removed).

        Under the "clusters" lock too: memberships must not change between reading a
        cluster's members and clearing its dirty mark.

        Raises:
            LockLost: the lock was lost (PostgreSQL); the stories saved before are kept.
        """
        built_total = removed_total = 0
        with self.store.exclusive("clusters"):
            while cluster_ids := self.store.dirty_cluster_ids(500):
                built, removed = [], []
                # Two reads for the whole batch of clusters, not two for each.
                members_of = self.store.members_of_clusters(cluster_ids)
                articles = self.store.articles_by_id(m.article_id for ms in members_of.values() for m in ms)
                for cluster_id in cluster_ids:
                    members = members_of.get(cluster_id)
                    if not members:
                        removed.append(cluster_id)
                        continue
                    built.append(build_story(cluster_id, [articles[m.article_id] for m in members]))
                self.store.save_stories(built, removed)
                built_total, removed_total = built_total + len(built), removed_total + len(removed)
                self._beat()
        return built_total, removed_total

    # -- indexing ----------------------------------------------------------------------

    def index_outbox(self, batch_size: int = OUTBOX_BATCH) -> tuple[int, int]:
        """Deliver the outbox to the search index; returns (indexed, failed).

        Each document is written with its outbox sequence number as its version, and the
        index keeps the higher version whatever order writes arrive in, so two runs at once
        cannot leave an older story behind. A document refused ``outbox.max_attempts`` times
        moves to the dead letters (`newsagg outbox list|retry`).

        Raises:
            SearchUnavailable: the backend cannot be reached, or refuses writes for now (a document
                refused for no fault of its own: a blocked index, 429); undelivered items stay queued.
        """
        indexed = failed = 0
        after: tuple[str, str] | None = None
        with self._bar(self.store.outbox_size(), "indexing") as bar:
            while items := self.store.outbox_batch(batch_size, after=after):
                after = (items[-1].kind, items[-1].doc_id)
                changes = self._changes(items)
                failures = self.index.write(changes)
                refused = {(f.kind, f.id): f for f in failures}
                # Elasticsearch remembers a deletion's version for index.gc_deletes (60 s) only:
                # a write read before a deletion and applied later than that would bring the
                # document back. What this batch wrote and the store no longer holds is queued
                # again, so the next delivery reads it afresh and deletes it.
                written = [(c.kind, c.id) for c in changes if c.document is not None and (c.kind, c.id) not in refused]
                for kind, doc_id in self.store.requeue_missing(written):
                    log.info("%s %s was deleted while it was being indexed: queued again", kind, doc_id)
                self.store.outbox_done([i for i in items if (i.kind, i.doc_id) not in refused])
                dead = self.store.outbox_failed(
                    [(i, refused[(i.kind, i.doc_id)]) for i in items if (i.kind, i.doc_id) in refused],
                    self.settings.outbox.max_attempts,
                )
                for failure in failures:
                    if not failure.transient:
                        log.warning("index refused %s %s: %s", failure.kind, failure.id, failure.reason)
                for item in dead:
                    log.error("index refused %s %s %d times: moved to the dead letters (see `newsagg outbox list`)",
                              item.kind, item.doc_id, self.settings.outbox.max_attempts)
                indexed, failed = indexed + len(items) - len(refused), failed + len(refused)
                self._count(index_failures=len(refused))  # the store counted the delivered ones
                bar.update(len(items))
                self._beat()
                if busy := [f for f in failures if f.transient]:
                    # No fault of the documents: the index refuses writes for now (write-blocked by an
                    # interrupted reindex or a full disk, its alias gone, 429s after the retries), and
                    # would refuse the rest of the outbox alike. Said once, as an unreachable index is.
                    raise SearchUnavailable(f"the index refused {len(busy)} documents for now: {busy[0].reason}")
        return indexed, failed

    def _changes(self, items: Sequence[OutboxItem]) -> list[IndexChange]:
        # The documents are read after their outbox items, so each is at least as new as the
        # version it is written with: a version never claims a newer document than it carries.
        story_ids = [i.doc_id for i in items if i.kind == "story" and not i.deleted]
        article_ids = [i.doc_id for i in items if i.kind == "article" and not i.deleted]
        found_stories = self.store.stories_by_id(story_ids)
        found_articles = self.store.articles_by_id(article_ids)
        found_members = self.store.memberships_by_article(found_articles)
        changes: list[IndexChange] = []
        for item in items:
            if item.kind == "story":
                changes.append(IndexChange("story", item.doc_id, found_stories.get(item.doc_id), item.seq))
                continue
            article: Article | None = found_articles.get(item.doc_id)
            member = found_members.get(item.doc_id) if article else None
            document = IndexedArticle(article, member) if article and member else None
            changes.append(IndexChange("article", item.doc_id, document, item.seq))
        return changes

    # -- one pass ----------------------------------------------------------------------

    def run(self, feeds_file: Path | None = None, *, force: bool = False, trigger: str = "cli") -> RunReport:
        """One pass: poll due feeds, fetch and extract, cluster, merge, index.

        Args:
            feeds_file: the feed list; default from the settings.
            force: poll every feed now, ignoring each feed's next poll time.
            trigger: recorded with the run ("cli", "airflow", "demo").
        """
        report = RunReport()
        run_id = self._run_id = self.store.start_run(trigger)
        status = "failed"
        try:
            self.pool.start()  # once for every stage, forked before any of them starts a thread
            with self._stage("load_feeds"):
                sources = self.load_feeds(feeds_file)
            with self._stage("poll_feeds"):
                report.feeds = self.poll_feeds(self.due_feeds(sources, force=force))
            self.send_alerts()
            with self._stage("fetch_articles"):
                report.articles_added, report.articles_failed, report.pages_deferred = self.fetch_articles()
            with self._stage("cluster_articles"):
                report.clustered, report.clusters_merged = self.cluster()
            with self._stage("merge_stories"):
                report.stories_built, report.stories_removed = self.build_stories()
            try:
                with self._stage("index_stories"):
                    report.indexed, report.index_failures = self.index_outbox()
            except SearchUnavailable as exc:
                report.index_error = str(exc)
                log.error("search index unavailable, %d documents wait in the outbox: %s", self.store.outbox_size(), exc)
            report.outbox_left = self.store.outbox_size()
            status = "ok" if report.index_error is None else "partial"
            return report
        finally:
            self._run_id = None
            self._say_archive_refusals()
            self.store.finish_run(run_id, status, report.as_dict())


def _parse_document(feed: FeedSource, fetched: Fetched, max_entries: int, now: datetime) -> ParsedFeed | FeedParseError:
    """``parse_feed`` with its expected failure as a value."""
    try:
        return parse_feed(feed, fetched, max_entries=max_entries, now=now)
    except FeedParseError as exc:
        return exc


class _Parsers:
    """Where `poll_feeds` parses feed documents: the pool's workers, or this process.

    The pool is started here, before any download thread starts, so that its workers
    are forked when nothing else runs (see ``pipeline.pool.start_method``).
    """

    def __init__(self, pool: WorkerPool | None) -> None:
        self._pool = pool
        self._executor: ProcessPoolExecutor | None = pool.executor() if pool is not None else None
        self.workers = pool.workers if pool is not None and self._executor is not None else 1

    def submit(self, feed: FeedSource, fetched: Fetched, max_entries: int, now: datetime) -> Future[ParsedFeed]:
        """``parse_feed`` on a worker, or here; the future raises what it raises."""
        if self._executor is not None:
            try:
                return self._executor.submit(parse_feed, feed, fetched, max_entries=max_entries, now=now)
            except RuntimeError:  # BrokenProcessPool: a worker died
                self.broken()
        done: Future[ParsedFeed] = Future()
        try:
            done.set_result(parse_feed(feed, fetched, max_entries=max_entries, now=now))
        except FeedParseError as exc:
            done.set_exception(exc)
        return done

    def broken(self) -> None:
        """A worker died: the pool is discarded (the next stage starts a fresh one) and this poll parses here."""
        if self._pool is not None and self._executor is not None:
            self._pool.discard(self._executor)
        self._executor = None
        self.workers = 1
