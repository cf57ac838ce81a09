"""Keeping the store and the search index in shape: retention, feed health, the search backend's setup.

What the daily maintenance DAG (``dags/news_maintenance.py``) and ``newsagg maintenance``
(a deployment that runs ``newsagg run`` from cron) call. Every function is safe to repeat;
compaction is ``Store.compact`` itself.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.archive import WARC_SUFFIX
from pipeline.settings import Settings
from pipeline.storage import FeedState, Store

if TYPE_CHECKING:
    from pipeline.runner import Pipeline

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetentionResult:
    """What one retention pass removed."""

    signatures_dropped: int
    signature_cutoff: datetime
    stories_pruned: int = 0
    articles_pruned: int = 0
    story_cutoff: datetime | None = None
    domain_clocks_pruned: int = 0
    archive_files_deleted: int = 0
    template_blocks_forgotten: int = 0
    archive_cutoff: datetime | None = None  # WARC files last written before it were deleted


#: A domain's politeness clock is forgotten this long after its last request slot.
DOMAIN_CLOCK_RETENTION = timedelta(days=1)


def apply_retention(store: Store, settings: Settings, now: datetime | None = None) -> RetentionResult:
    """Drop signatures older than the matching window and forgotten template blocks; prune stories past
    ``story_retention_days`` and archived pages past it or ``archive.retention_days``; forget the
    politeness clocks of domains not contacted for a day.

    Articles that left the window stay stored and searchable: they only stop being
    candidates for new matches. Stories (with their articles) are deleted only when
    ``story_retention_days`` is set, and never before they left the matching window;
    so are the WARC files of the archive last written before that time, or before
    ``archive.retention_days`` when that comes sooner (whole files: a file's records
    are all older than its last change), and the articles forget their pages there.

    Args:
        store: the store to clean.
        settings: ``clustering.window_days``, ``story_retention_days`` and ``archive.retention_days`` are read.
        now: the reference time (default: the current time).
    """
    now = now or datetime.now(UTC)
    clocks = store.prune_domain_clock(now - DOMAIN_CLOCK_RETENTION)
    log.info("%d domains not contacted for %s: their politeness clocks forgotten", clocks, DOMAIN_CLOCK_RETENTION)
    window_days = settings.clustering.window_days
    signature_cutoff = now - timedelta(days=window_days)
    dropped = store.drop_signatures_before(signature_cutoff)
    log.info("%d signatures older than %s left the matching window", dropped, signature_cutoff.isoformat())
    forgotten = store.forget_template_blocks(now, settings.extraction.template_half_life_days)
    log.info("%d outlet template blocks not seen again were forgotten", forgotten)
    story_cutoff: datetime | None = None
    stories = articles = 0
    if settings.story_retention_days is not None:
        story_cutoff = now - timedelta(days=max(settings.story_retention_days, window_days))
        while True:
            pruned_stories, pruned_articles = store.prune_stories_before(story_cutoff)
            if not pruned_stories:
                break
            stories, articles = stories + pruned_stories, articles + pruned_articles
        log.info("%d stories (%d articles) last seen before %s deleted", stories, articles, story_cutoff.isoformat())
    days = settings.archive.retention_days
    cutoffs = [c for c in (story_cutoff, None if days is None else now - timedelta(days=days)) if c is not None]
    archive_cutoff = max(cutoffs, default=None)  # the sooner of the two deletes more
    files = 0 if archive_cutoff is None else _prune_archive(store, settings.resolved_archive_dir, archive_cutoff)
    return RetentionResult(dropped, signature_cutoff, stories, articles, story_cutoff, clocks, files, forgotten,
                           archive_cutoff)


def maintain(pipeline: Pipeline) -> RetentionResult:
    """``apply_retention``, then the deletions it queued delivered to the search index."""
    result = apply_retention(pipeline.store, pipeline.settings)
    if pipeline.settings.story_retention_days is not None:
        pipeline.index_outbox()  # also on a retry, when there is nothing left to prune
    return result


def _prune_archive(store: Store, directory: Path, cutoff: datetime) -> int:
    """Delete the archive's WARC files last written before ``cutoff``; returns how many."""
    old = [
        path for path in directory.glob(f"*{WARC_SUFFIX}")
        if datetime.fromtimestamp(path.stat().st_mtime, UTC) < cutoff
    ] if directory.is_dir() else []
    # Pointers first: an article never names a file that is gone (a kill between the two leaves files only).
    cleared = store.clear_archive_pointers(path.name for path in old)
    for path in old:
        path.unlink(missing_ok=True)
    log.info("%d archive files last written before %s deleted (%d articles pointed there)",
             len(old), cutoff.isoformat(), cleared)
    return len(old)


@dataclass(frozen=True, slots=True)
class FeedProblem:
    """A feed that keeps failing or was retired, as the health summary lists it."""

    feed_id: str
    name: str
    url: str
    status: str
    consecutive_failures: int
    last_error: str | None
    last_success_at: datetime | None
    next_attempt_at: datetime | None  # the backoff: when the feed is polled again (None: retired)


@dataclass(slots=True)
class FeedHealth:
    """The state of every feed in the feed list (the store keeps removed feeds too: they are left out)."""

    total: int = 0
    healthy: int = 0
    failing: list[FeedProblem] = field(default_factory=list)  # at least ``min_failures`` in a row
    retired: list[FeedProblem] = field(default_factory=list)
    never_succeeded: list[str] = field(default_factory=list)  # polled, never fetched once

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for group in ("failing", "retired"):
            for problem in data[group]:
                for key in ("last_success_at", "next_attempt_at"):
                    problem[key] = problem[key].isoformat() if problem[key] else None
        return data


def feed_health_summary(store: Store, min_failures: int = 3) -> FeedHealth:
    """Feeds failing ``min_failures`` polls in a row or more, retired feeds, and feeds that never worked.

    A failing feed is already backed off by the polling policy (exponential from its
    interval, retired after ``feeds.retire_after_failures`` over ``feeds.retire_after_days``); ``next_attempt_at`` says when
    it is tried again.
    """
    if min_failures < 1:
        raise ValueError(f"min_failures must be at least 1, got {min_failures}")
    health = FeedHealth()
    for state in store.feed_states():
        if state.status == "removed":  # no longer in the feed list: its health is no one's concern
            continue
        health.total += 1
        if state.status == "retired":
            health.retired.append(_problem(state))
        elif state.consecutive_failures >= min_failures:
            health.failing.append(_problem(state))
        elif state.consecutive_failures == 0:
            health.healthy += 1
        if state.last_attempt_at is not None and state.last_success_at is None:
            health.never_succeeded.append(state.source.id)
    health.failing.sort(key=lambda p: (-p.consecutive_failures, p.feed_id))
    for problem in health.failing:
        log.warning(
            "feed %s failed %d polls in a row (next try %s): %s",
            problem.feed_id, problem.consecutive_failures, problem.next_attempt_at, problem.last_error,
        )
    return health


def _problem(state: FeedState) -> FeedProblem:
    return FeedProblem(
        feed_id=state.source.id,
        name=state.source.name,
        url=state.source.url,
        status=state.status,
        consecutive_failures=state.consecutive_failures,
        last_error=state.last_error,
        last_success_at=state.last_success_at,
        next_attempt_at=state.next_attempt_at,
    )


def search_index_problems(settings: Settings) -> list[str] | None:
    """What is wrong with the Elasticsearch aliases, templates and mappings; None for the SQLite backend.

    Raises:
        SearchUnavailable: the cluster cannot be reached.
    """
    if settings.search_backend != "elasticsearch":
        return None
    from pipeline.search.elastic import ElasticsearchIndex

    index = ElasticsearchIndex(settings.es)
    try:
        checks = index.check()
    finally:
        index.close()
    return [problem for check in checks for problem in check.problems]
