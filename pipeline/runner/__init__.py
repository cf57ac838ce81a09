"""The stages wired together: what `newsagg run` and each Airflow task call.

Every stage reads its input from the store and commits its output there, so each can
run alone (one Airflow task each), in any process, and be repeated without harm.

One module per concern: ``base`` (what every stage shares: the store, the fetcher, the
search index, the worker pool, the archive, the run's heartbeat and stage times), ``feeds``
(polling feeds), ``articles`` (fetching and extracting their articles) and ``stories``
(clustering, merging stories, indexing). ``Pipeline`` combines them, with the runs: one
pass (``run``) and the bookkeeping of an Airflow DAG run's tasks.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from pipeline.errors import SearchUnavailable
from pipeline.runner.articles import ArticleStages
from pipeline.runner.feeds import MIN_PARALLEL_FEEDS, FeedOutcome, FeedStages
from pipeline.runner.stories import OUTBOX_BATCH, StoryStages

__all__ = ["MIN_PARALLEL_FEEDS", "OUTBOX_BATCH", "FeedOutcome", "Pipeline", "RunReport"]

log = logging.getLogger(__name__)


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


class Pipeline(FeedStages, ArticleStages, StoryStages):
    """The stages over one store, one fetcher and one search index.

    Args:
        settings: the one settings object.
        progress: show progress bars (the CLI passes True on a terminal).
    """

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

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
