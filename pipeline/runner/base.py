"""What every stage shares: the settings, the store, the worker pool, the fetcher, the search index
and the archive; the run's heartbeat and the time of each stage; progress bars; download threads."""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from pipeline.archive import ArchiveWriter
from pipeline.errors import StoreError
from pipeline.fetching import Fetcher, redact_url
from pipeline.models import ArchiveRecord, Fetched
from pipeline.pool import WorkerPool
from pipeline.progress import ProgressBar
from pipeline.search import SearchIndex, open_index
from pipeline.settings import Settings
from pipeline.storage import Store

# One logger name for all the runner's modules: operators know its lines by it, and filter them
# so ("WARNING pipeline.runner: feed ... failed"), whichever module a line now comes from.
log = logging.getLogger("pipeline.runner")

#: How often a run notes in the store that it is alive (see storage.runs.RUN_STALE_AFTER).
HEARTBEAT_SECONDS = 60.0


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


class PipelineBase:
    """The store, the fetcher, the search index and the worker pool of one pipeline, shared by its stages."""

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

    def _bar(self, total: int | None, desc: str) -> ProgressBar:
        return ProgressBar(total=total, desc=desc, unit="item", disable=not self.progress, leave=False)

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
