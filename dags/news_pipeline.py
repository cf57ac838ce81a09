"""
### newsagg: feeds to merged, searchable stories

Every 15 minutes (`NEWSAGG_SCHEDULE`, a cron expression or preset; `none` for manual
runs only), one pass of the pipeline:

```
load_feeds -> poll_feeds (one mapped instance per batch of due feeds, pool newsagg_fetch)
           -> fetch_articles -> cluster_articles -> merge_stories -> index_stories -> report
```

Each task calls one stage of `pipeline.runner.Pipeline`. The data lives in the store
(`NEWSAGG_*` settings or the YAML file named by `NEWSAGG_CONFIG`); only feed ids, per-feed
outcomes and counts travel through XCom. Every stage is idempotent, so any task can be
cleared and run again.

Due feeds are polled in batches of whole registrable domains (at most
`feeds.poll_batch_size` feeds, unless one domain has more), so each publisher's
politeness lives in one task. A feed that cannot be polled is recorded against the feed
(`newsagg feeds status`) and listed by `report` with its error; its batch succeeds and
the feed is tried again when its backoff or Retry-After has passed. A batch task that
fails itself (store down, timeout) is retried; a retry polls only the feeds this run has
not polled yet or that are due again, and a feed's failures in one run count once. The
run fails when the feed list cannot be loaded or a stage after polling fails.

Each DAG run is one row of the store's runs table (`newsagg runs list`, `newsagg metrics`):
each task adds its time to its stage, `report` records the counts and how the run ended,
and a run that fails before `report` records it is recorded failed by the DAG's failure
callback.

**Params** (Trigger DAG w/ config): `feeds_file` polls another feed list (YAML or OPML)
once; `force` polls every feed now, ignoring each feed's next poll time.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import (
    ExceptionRetryPolicy,
    Param,
    RetryAction,
    RetryRule,
    TriggerRule,
    chain,
    dag,
    get_current_context,
    task,
)

log = logging.getLogger(__name__)

FETCH_POOL = "newsagg_fetch"
SCHEDULE = os.environ.get("NEWSAGG_SCHEDULE", "*/15 * * * *")

# Errors that trying again cannot fix fail at once; anything else (timeouts, 5xx, the
# search backend down, a locked SQLite store) is retried.
TERMINAL = ExceptionRetryPolicy(
    rules=[
        RetryRule(
            exception=[
                "pipeline.errors.ConfigError",
                "pipeline.errors.PermanentFetchError",
                "pipeline.errors.FeedParseError",
                "pipeline.errors.ExtractionError",
            ],
            action=RetryAction.FAIL,
            reason="terminal error: retrying cannot help",
        )
    ]
)
# Tasks that talk to publishers or the search backend.
NETWORK_RETRIES: dict[str, Any] = {
    "retries": 3,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=10),
}
# Tasks return small dicts of counts; `multiple_outputs=False` keeps each one XCom (Airflow
# would add one per key for a function annotated to return a dict).


def _pipeline() -> Any:
    """The library pipeline on settings from the environment (imported here, not at parse time)."""
    from pipeline import Pipeline, load_settings

    return Pipeline(load_settings(), progress=False)


@contextmanager
def _stage(name: str) -> Iterator[Any]:
    """The library pipeline, this task recorded as stage ``name`` of this DAG run in the runs table."""
    with _pipeline() as pipeline, pipeline.airflow_stage(name, get_current_context()["run_id"]):
        yield pipeline


def _record_failure(context: Any) -> None:
    """Record failed a DAG run that failed before its report task could record how it ended (timed out, marked failed)."""
    from pipeline import load_settings
    from pipeline.storage import Store

    run_id = context["dag_run"].run_id
    store = Store(load_settings().resolved_store_url)
    try:
        if store.fail_unfinished_run(run_id):
            log.warning("run %s failed before its report task recorded it: recorded failed", run_id)
    finally:
        store.close()


@task(execution_timeout=timedelta(minutes=5))
def load_feeds() -> list[dict[str, Any]]:
    """Read the feed list (the `feeds_file` param or the configured one), register it in the
    store, and return the feeds to poll now (all of them with `force`) in batches of whole
    registrable domains: `{"label": ..., "feeds": [feed ids]}`."""
    from pathlib import Path

    from pipeline.polling import feed_batches

    params = get_current_context()["params"]
    feeds_file = Path(params["feeds_file"]) if params.get("feeds_file") else None
    with _stage("load_feeds") as pipeline:
        sources = pipeline.load_feeds(feeds_file)
        due = pipeline.due_feeds(sources, force=params.get("force", False))
        batches = feed_batches(due, pipeline.settings.feeds.poll_batch_size)
    log.info("%d of %d feeds due, in %d batches", len(due), len(sources), len(batches))
    return [{"label": b.label, "feeds": [f.id for f in b.feeds]} for b in batches]


@task(
    multiple_outputs=False,
    pool=FETCH_POOL,
    map_index_template="{{ task.op_kwargs['batch']['label'] }}",
    execution_timeout=timedelta(minutes=30),
    # A mapped task does not take its doc from the docstring.
    doc_md="Fetch a batch of feeds (conditional GETs, whole registrable domains) and queue their new "
    "entries. A feed's failure is recorded against the feed in the store and returned in this task's "
    "outcomes; it does not fail the task. A retry polls only the feeds this run has not polled yet or "
    "whose next poll time (backoff, Retry-After) has come, and counts a feed's failures in this run once.",
    **NETWORK_RETRIES,
)
def poll_feeds(batch: dict[str, Any]) -> list[dict[str, Any]]:
    """Poll one batch of feeds; returns one outcome per feed polled (see doc_md)."""
    from dataclasses import asdict

    context = get_current_context()
    run_id = context["run_id"]  # one scheduled poll: one attempt however often this task is retried
    with _stage("poll_feeds") as pipeline:
        sources = [s.source for s in pipeline.store.feed_states(batch["feeds"])]
        due = pipeline.due_feeds(sources, force=context["params"].get("force", False), attempt=run_id)
        outcomes = pipeline.poll_feeds(due, attempt=run_id)
    failed = [o for o in outcomes if o.status in ("failed", "retired")]
    log.info("%d of %d feeds polled, %d failed", len(outcomes), len(batch["feeds"]), len(failed))
    return [asdict(o) for o in outcomes]


@task(
    multiple_outputs=False,
    pool=FETCH_POOL,
    trigger_rule=TriggerRule.ALL_DONE,
    execution_timeout=timedelta(minutes=30),
    **NETWORK_RETRIES,
)
def fetch_articles() -> dict[str, int]:
    """Fetch and extract the queued article pages, in batches, taking no new batch after
    extraction.max_pass_seconds (the next run takes the rest). Runs even when some feeds
    failed: it works on whatever the store has queued."""
    with _stage("fetch_articles") as pipeline:
        added, failed, deferred = pipeline.fetch_articles()
    return {"articles_added": added, "articles_failed": failed, "pages_deferred": deferred}


@task(multiple_outputs=False, execution_timeout=timedelta(minutes=30))
def cluster_articles() -> dict[str, int]:
    """Cluster the new articles against the matching window (MinHash + LSH)."""
    with _stage("cluster_articles") as pipeline:
        clustered, merges = pipeline.cluster()
    return {"clustered": clustered, "clusters_merged": merges}


@task(multiple_outputs=False, execution_timeout=timedelta(minutes=15))
def merge_stories() -> dict[str, int]:
    """Rebuild the merged story of every cluster that changed."""
    with _stage("merge_stories") as pipeline:
        built, removed = pipeline.build_stories()
    return {"stories_built": built, "stories_removed": removed}


@task(multiple_outputs=False, execution_timeout=timedelta(minutes=15), **NETWORK_RETRIES)
def index_stories() -> dict[str, int]:
    """Deliver the outbox (changed stories and articles) to the search index. A backend
    that cannot be reached is retried; undelivered documents wait in the outbox."""
    with _stage("index_stories") as pipeline:
        indexed, failed = pipeline.index_outbox()
        left = pipeline.store.outbox_size()
    return {"indexed": indexed, "index_failures": failed, "outbox_left": left}


@task(multiple_outputs=False, trigger_rule=TriggerRule.ALL_DONE, retries=0, execution_timeout=timedelta(minutes=5))
def report(
    batches: list[dict[str, Any]] | None,
    polled: Any,
    fetched: dict[str, int] | None,
    clustered: dict[str, int] | None,
    merged: dict[str, int] | None,
    indexed: dict[str, int] | None,
) -> dict[str, Any]:
    """Counts per stage and each feed's outcome (the failed ones with the error the store recorded),
    and the alert digest of the feeds' changes of health. Failed feeds alone do not fail the run; a
    feed list that could not be loaded or a stage that did not complete does. Both are read from the
    store, which has every try's; ``polled`` only makes this task wait for the polls."""
    from airflow.sdk.exceptions import AirflowFailException

    from pipeline.runner import RunReport

    run_id = get_current_context()["run_id"]
    with _pipeline() as pipeline:
        outbox_left = pipeline.store.outbox_size()
        # Counted in the store as each batch was committed: a try that failed midway counted what it
        # committed, its retry the rest (each task's own return value holds only its last try's).
        counted = pipeline.airflow_counts(run_id)
        # Likewise each feed's outcome: a batch try that failed returned none of the feeds it polled,
        # and a run cleared and run again polls only the feeds due again.
        feeds = pipeline.airflow_feeds(run_id)
        pipeline.send_alerts()
    run = RunReport(feeds=feeds, outbox_left=outbox_left)
    for name, value in counted.items():
        setattr(run, name, value)
    stages = {"fetch_articles": fetched, "cluster_articles": clustered, "merge_stories": merged,
              "index_stories": indexed}
    incomplete = [name for name, counts in stages.items() if counts is None]
    log.info(
        "feeds %d/%d ok · articles +%d (%d failed, %d deferred) · clustered %d (%d merges) · "
        "stories %d updated · indexed %d · outbox %d",
        len(run.feeds) - len(run.failed_feeds), len(run.feeds), run.articles_added, run.articles_failed,
        run.pages_deferred, run.clustered, run.clusters_merged, run.stories_built, run.indexed, run.outbox_left,
    )
    for feed in run.failed_feeds:
        log.warning("feed %s %s: %s", feed.feed_id, feed.status, feed.error)
    with _pipeline() as pipeline:
        pipeline.finish_airflow_run(run_id, run, "failed" if batches is None or incomplete else "ok")
    if batches is None:
        raise AirflowFailException("the feed list could not be loaded (see load_feeds)")
    if incomplete:
        raise AirflowFailException(f"stages did not complete: {', '.join(incomplete)}")
    return run.as_dict()


@dag(
    dag_id="news_pipeline",
    schedule=None if SCHEDULE.lower() in ("", "none") else SCHEDULE,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=2),
    default_args={"retries": 1, "retry_delay": timedelta(seconds=30), "retry_policy": TERMINAL},
    params={
        "feeds_file": Param(
            None, type=["null", "string"], description="Feed list (YAML or OPML) for this run; default: settings."
        ),
        "force": Param(False, type="boolean", description="Poll every feed now, ignoring its next poll time."),
    },
    on_failure_callback=_record_failure,
    doc_md=__doc__,
    tags=["newsagg"],
)
def news_pipeline() -> None:
    batches = load_feeds()
    polled = poll_feeds.expand(batch=batches)
    fetched, clustered, merged, indexed = fetch_articles(), cluster_articles(), merge_stories(), index_stories()
    chain(polled, fetched, clustered, merged, indexed)
    report(batches, polled, fetched, clustered, merged, indexed)


news_pipeline()
