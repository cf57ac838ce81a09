"""What the store holds and how the last run went, in the Prometheus text exposition format.

`newsagg metrics` prints it (for node_exporter's textfile collector); a web app serves it
at ``/metrics`` with ``CONTENT_TYPE``. Every figure is read from the store when rendered
(a few COUNTs, two rows of the runs table), so any process on the store reports the same,
whoever ran the pipeline: `newsagg run`, the Airflow DAG or both.

The official client library writes the format: it escapes label values, spells floats
the way Prometheus reads them and writes the HELP and TYPE lines; the figures come from a
custom collector on a registry of its own, so nothing of the calling process (its own
CPU, memory, garbage collector) is mixed in.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from pipeline.models import TextSource
from pipeline.settings import Settings
from pipeline.storage import RunRecord, Store

#: The Content-Type of what ``render`` returns (text format 0.0.4).
CONTENT_TYPE = CONTENT_TYPE_LATEST

# Every known value of a label is reported, with 0 when none has it, so an alert on a
# series ("any feed retired") does not silently lack its series.
FEED_STATES = ("active", "failing", "retired", "removed")
ENTRY_STATES = ("pending", "done", "failed")
FEED_OUTCOMES = ("ok", "not_modified", "failed", "retired")
RUN_STATUSES = ("ok", "partial", "failed", "abandoned")


def render(store: Store, settings: Settings) -> str:
    """The metrics of ``store`` now, in the Prometheus text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_StoreCollector(store, settings))
    return generate_latest(registry).decode("utf-8")


class _StoreCollector(Collector):
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts = self.store.counts()
        yield _info(self.settings)
        yield _labelled("newsagg_articles", "Articles stored, by where their text came from (extraction text source).",
                        "text_source", counts.articles, [s.value for s in TextSource])
        yield GaugeMetricFamily("newsagg_stories", "Merged stories stored (clusters of copies of one story).",
                                value=counts.stories)
        yield _labelled("newsagg_feeds", "Feeds by state (removed: no longer in the feed list).",
                        "state", counts.feeds, FEED_STATES)
        yield _labelled("newsagg_entries", "Feed entries by state of their page fetch "
                        "(pending: to fetch or deferred, done: an article, failed: given up).",
                        "state", counts.entries, ENTRY_STATES)
        yield GaugeMetricFamily("newsagg_outbox_items", "Documents waiting to be delivered to the search index.",
                                value=counts.outbox)
        yield GaugeMetricFamily("newsagg_dead_letters", "Documents the search index refused too often, "
                                "set aside until `newsagg outbox retry`.", value=counts.dead_letters)
        newest = self.store.recent_runs(1)
        yield GaugeMetricFamily("newsagg_run_in_progress", "1 while a pipeline run is at work.",
                                value=int(bool(newest) and newest[0].status == "running"))
        last = self.store.last_finished_run()
        if last is not None:
            yield from _last_run(last)
        succeeded = last if last is not None and last.status == "ok" else self.store.last_finished_run("ok")
        if succeeded is not None and succeeded.finished_at is not None:
            yield GaugeMetricFamily("newsagg_last_success_timestamp_seconds",
                                    "When the last run that ended ok ended (Unix time).",
                                    value=succeeded.finished_at.timestamp())


def _info(settings: Settings) -> GaugeMetricFamily:
    store = settings.resolved_store_url.split(":", 1)[0].split("+", 1)[0]  # sqlite, postgresql
    info = GaugeMetricFamily("newsagg_info", "The store and the search backend in use (always 1).",
                             labels=["store", "search_backend"])
    info.add_metric([store, settings.search_backend], 1)
    return info


def _last_run(run: RunRecord) -> Iterator[GaugeMetricFamily]:
    """The figures of the last run that ended: when, how, what its stages did and how long each took."""
    yield GaugeMetricFamily("newsagg_last_run_start_timestamp_seconds", "When the last run that ended started (Unix time).",
                            value=run.started_at.timestamp())
    if run.finished_at is not None:
        yield GaugeMetricFamily("newsagg_last_run_end_timestamp_seconds", "When the last run that ended ended (Unix time).",
                                value=run.finished_at.timestamp())
    yield _labelled("newsagg_last_run_status", "How the last run that ended ended: 1 for its status, 0 for the others "
                    "(partial: the search index was unavailable; abandoned: killed or silent).",
                    "status", {run.status: 1}, RUN_STATUSES)
    stats = run.stats
    outcomes = Counter(str(feed["status"]) for feed in stats.get("feeds", []))
    yield _labelled("newsagg_last_run_feeds", "Feeds polled by the last run that ended, by outcome.",
                    "outcome", dict(outcomes), FEED_OUTCOMES)
    pages = {"added": stats.get("articles_added", 0), "failed": stats.get("articles_failed", 0),
             "deferred": stats.get("pages_deferred", 0)}
    yield _labelled("newsagg_last_run_articles", "Article pages handled by the last run that ended, by outcome "
                    "(deferred: the page failed for now and is tried again).", "outcome", pages, pages)
    stages = GaugeMetricFamily("newsagg_last_run_stage_duration_seconds",
                               "Time each stage of the last run that ended took (an Airflow stage's mapped "
                               "instances and retries added up).", labels=["stage"])
    for stage, seconds in stats.get("stage_seconds", {}).items():
        stages.add_metric([stage], float(seconds))
    yield stages


def _labelled(name: str, documentation: str, label: str, values: dict[str, int], known: Iterable[str]
              ) -> GaugeMetricFamily:
    """A gauge with one series per value of ``label``: every known value (0 if absent), then any other found."""
    family = GaugeMetricFamily(name, documentation, labels=[label])
    for key in dict.fromkeys([*known, *values]):
        family.add_metric([key], values.get(key, 0))
    return family
