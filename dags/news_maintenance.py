"""
### newsagg maintenance

Daily (`NEWSAGG_MAINTENANCE_SCHEDULE`, a cron expression or preset; `none` for manual
runs only):

- `apply_retention`: articles older than the matching window (`clustering.window_days`)
  leave the LSH state (they stay stored and searchable); with `story_retention_days`
  set, older stories are deleted with their articles, from the store and the search index,
  and so are the page archive's WARC files last written before them (with
  `archive.retention_days`, those older than that too); the politeness clocks of domains not
  contacted for a day are forgotten.
- `compact_store`: reclaims the space retention freed (SQLite `VACUUM`; PostgreSQL
  does this itself).
- `feed_health`: feeds failing `min_failures` polls in a row or more, retired feeds and
  feeds that never worked, with the error and when each is tried again (failing feeds
  are backed off by the polling policy and retired after `feeds.retire_after_failures`).
- `check_search_index`: with the Elasticsearch backend, each alias must point at one
  index whose mapping matches the template (`newsagg es check`); skipped on SQLite.

Settings come from `NEWSAGG_*` or the file named by `NEWSAGG_CONFIG`, as for
`news_pipeline`.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import ExceptionRetryPolicy, Param, RetryAction, RetryRule, dag, get_current_context, task

log = logging.getLogger(__name__)

SCHEDULE = os.environ.get("NEWSAGG_MAINTENANCE_SCHEDULE", "30 3 * * *")

TERMINAL = ExceptionRetryPolicy(
    rules=[RetryRule(exception="pipeline.errors.ConfigError", action=RetryAction.FAIL, reason="bad settings")]
)
# For the tasks that talk to the search backend.
NETWORK_RETRIES: dict[str, Any] = {
    "retries": 3,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=10),
}


def _settings() -> Any:
    from pipeline import load_settings

    return load_settings()


@task(multiple_outputs=False, execution_timeout=timedelta(hours=1), **NETWORK_RETRIES)
def apply_retention() -> dict[str, Any]:
    """Drop signatures older than the matching window and forgotten outlet template blocks; with
    `story_retention_days`, delete older stories with their articles (and the archive's WARC files
    last written before them) and deliver the deletions to the search index; with
    `archive.retention_days`, delete older WARC files; forget the politeness clocks of domains not
    contacted for a day."""
    from pipeline import Pipeline
    from pipeline.maintenance import maintain

    with Pipeline(_settings()) as pipeline:
        result = maintain(pipeline)
    return {
        "signatures_dropped": result.signatures_dropped,
        "stories_pruned": result.stories_pruned,
        "articles_pruned": result.articles_pruned,
        "domain_clocks_pruned": result.domain_clocks_pruned,
        "archive_files_deleted": result.archive_files_deleted,
    }


@task(execution_timeout=timedelta(hours=1))
def compact_store() -> None:
    """Reclaim the space retention freed (SQLite VACUUM); waits for writers, retried if the store stays busy."""
    from pipeline.storage import Store

    store = Store(_settings().resolved_store_url)
    try:
        store.compact()
    finally:
        store.close()


@task(multiple_outputs=False, execution_timeout=timedelta(minutes=10))
def feed_health() -> dict[str, Any]:
    """Feeds failing `min_failures` polls in a row or more, retired feeds, feeds that never worked."""
    from pipeline.maintenance import feed_health_summary
    from pipeline.storage import Store

    min_failures = int(get_current_context()["params"]["min_failures"])
    store = Store(_settings().resolved_store_url)
    try:
        health = feed_health_summary(store, min_failures=min_failures)
    finally:
        store.close()
    log.info(
        "%d feeds: %d healthy, %d failing %d+ times in a row, %d retired",
        health.total, health.healthy, len(health.failing), min_failures, len(health.retired),
    )
    return health.as_dict()


@task(execution_timeout=timedelta(minutes=10), **NETWORK_RETRIES)
def check_search_index() -> None:
    """With Elasticsearch: each alias points at one index whose mapping matches its template."""
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from pipeline.maintenance import search_index_problems

    problems = search_index_problems(_settings())
    if problems is None:
        raise AirflowSkipException("the search backend is SQLite: nothing to check")
    if problems:
        raise AirflowFailException("; ".join(problems))


@dag(
    dag_id="news_maintenance",
    schedule=None if SCHEDULE.lower() in ("", "none") else SCHEDULE,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2), "retry_policy": TERMINAL},
    params={
        "min_failures": Param(
            3, type="integer", minimum=1, description="Report feeds that failed this many polls in a row."
        ),
    },
    doc_md=__doc__,
    tags=["newsagg"],
)
def news_maintenance() -> None:
    apply_retention() >> compact_store()
    feed_health()
    check_search_index()


news_maintenance()
