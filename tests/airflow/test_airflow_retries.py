"""The news_pipeline DAG under Airflow's retries: tasks that fail midway, after committing part of their work."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from demo_truth import clusters_in, expected_clusters
from services import postgres_database

from pipeline.demo.run import write_demo_feeds
from pipeline.demo.server import CorpusServer
from pipeline.runner import Pipeline
from pipeline.settings import load_settings
from pipeline.storage import Store

# The store write that ends each batch of a stage, and the task that makes it.
BATCH_COMMITS = {
    "save_articles": "fetch_articles",
    "save_assignments": "cluster_articles",
    "save_stories": "merge_stories",
    "outbox_done": "index_stories",
}
SMALL_BATCH = 5  # pages, articles clustered and documents indexed at a time: several batches per stage


@pytest.fixture
def demo_in_small_batches(
    corpus_server: CorpusServer, newsagg_env: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, Path]:
    """The demo corpus as the DAG's feeds, its pages extracted SMALL_BATCH at a time: its base URL and data dir."""
    base = corpus_server.base_url
    data_dir = newsagg_env(base, write_demo_feeds(base, tmp_path / "feeds.yaml"))
    monkeypatch.setenv("NEWSAGG_EXTRACTION__BATCH_SIZE", str(SMALL_BATCH))
    return base, data_dir


@pytest.fixture(params=["sqlite", "postgresql"])
def store_of_tasks(
    request: pytest.FixtureRequest, demo_in_small_batches: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The store the DAG's tasks share: the embedded SQLite one in the data dir, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield request.param
        return
    with postgres_database() as url:
        monkeypatch.setenv("NEWSAGG_STORE_URL", url)  # after newsagg_env, which unsets it
        yield request.param


def fail_once_after_first_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each stage's first try dies right after it committed its first batch, as a killed worker would."""
    failed: set[str] = set()
    for name in BATCH_COMMITS:
        def commit_then_fail(self: Store, *args: Any, _real: Any = getattr(Store, name), _name: str = name) -> Any:
            result = _real(self, *args)
            if _name not in failed:
                failed.add(_name)
                raise OSError(f"the worker died after {_name} committed its first batch")
            return result

        monkeypatch.setattr(Store, name, commit_then_fail)


def test_tasks_that_fail_after_committing_part_of_their_work_are_retried_and_count_each_thing_once_and_a_clear_too(
    demo_in_small_batches: tuple[str, Path], store_of_tasks: str, run_dag: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base, data_dir = demo_in_small_batches
    assert load_settings().resolved_store_url.startswith(store_of_tasks)
    monkeypatch.setattr(Pipeline.cluster, "__defaults__", (SMALL_BATCH,))
    monkeypatch.setattr(Pipeline.index_outbox, "__defaults__", (SMALL_BATCH,))
    fail_once_after_first_commit(monkeypatch)

    run = run_dag("news_pipeline", retries=dict.fromkeys(BATCH_COMMITS.values(), 1))

    # Each stage failed once and its retry finished the work.
    assert {task: (run.state(task), run.tries[(task, -1)]) for task in BATCH_COMMITS.values()} == dict.fromkeys(
        BATCH_COMMITS.values(), ("success", 2))
    assert run.state("report") == "success" and run.dag_run.state == "success"
    with Pipeline(load_settings()) as pipeline:
        store = pipeline.store
        counts = store.counts()
        articles = store.article_count()
        clusters = clusters_in(store)
        members = [m.article_id for cluster_id in store.cluster_ids() for m in store.memberships_of(cluster_id)]
        stories = store.stories_by_id(store.cluster_ids())
        [record] = store.recent_runs(5)
    # Each article once, in exactly one cluster, the clusters the corpus's truth has, one story each.
    assert clusters == expected_clusters(base)
    assert len(members) == len(set(members)) == articles == counts.entries["done"]
    assert len(stories) == counts.stories == len(clusters)
    assert counts.outbox == 0 and counts.dead_letters == 0
    with sqlite3.connect(data_dir / "search.sqlite3") as index:
        indexed_stories = index.execute("SELECT count(*), count(DISTINCT id) FROM stories").fetchone()
        indexed_articles = index.execute("SELECT count(*), count(DISTINCT id) FROM articles").fetchone()
    assert indexed_stories == (len(stories), len(stories)) and indexed_articles == (articles, articles)

    # The report counts what the failed tries committed and what their retries did, each once.
    want = (articles, articles, len(stories), articles + len(stories))
    report = run.value("report")
    assert (report["articles_added"], report["clustered"], report["stories_built"], report["indexed"]) == want
    assert report["articles_failed"] == report["index_failures"] == report["outbox_left"] == 0
    assert (record.airflow_run, record.status, record.stats["articles_added"]) == (run.dag_run.run_id, "ok", articles)

    # An operator clears the finished run and it runs again, every task, under the same run id: nothing
    # is added or counted twice, and the run's row is the same one, finished again.
    again = run_dag("news_pipeline", again=run.dag_run)
    assert again.dag_run.run_id == run.dag_run.run_id and again.state("report") == "success"
    with Pipeline(load_settings()) as pipeline:
        store = pipeline.store
        assert (store.counts(), clusters_in(store), store.article_count()) == (counts, clusters, articles)
        [cleared] = store.recent_runs(5)
    report = again.value("report")
    assert (report["articles_added"], report["clustered"], report["stories_built"], report["indexed"]) == want
    assert (cleared.id, cleared.status, cleared.stats["articles_added"]) == (record.id, "ok", articles)
    # The re-run polled no feed (none was due again), and its report lists what the run's polls did.
    assert again.mapped("poll_feeds") == {} and report["feeds"] == run.value("report")["feeds"] != []
    assert sum(feed["new_entries"] for feed in report["feeds"]) == sum(counts.entries.values())


# The first try of a DAG run's fetch_articles task, in a process of its own, SIGKILLed by the fault
# injected here right after its second batch of articles was committed; each batch takes a second
# more to store, and the run notes its progress (and the stage's time so far) at every batch.
KILLED_FETCH = """
import os, signal, sys, time
from pipeline import Pipeline, load_settings
from pipeline.runner import base
from pipeline.storage import Store

base.HEARTBEAT_SECONDS = 0.0
save, commits = Store._save_articles, []
def save_then_die(self, *args):
    time.sleep(1.0)
    added = save(self, *args)
    commits.append(added)
    if len(commits) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return added
Store._save_articles = save_then_die
with Pipeline(load_settings()) as pipeline, pipeline.airflow_stage("fetch_articles", sys.argv[1]):
    pipeline.fetch_articles()
"""


def test_a_task_killed_midway_leaves_its_work_to_the_retry_and_the_run_counts_it_once(
    demo_in_small_batches: tuple[str, Path], run_dag: Callable[..., Any]
) -> None:
    base, _ = demo_in_small_batches
    when = datetime.now(UTC).replace(microsecond=0)
    run_id = f"manual__{when.isoformat()}"  # the id Airflow gives the DAG run of that time
    # The run's poll task did its work; its fetch task's first try is killed after two batches.
    with Pipeline(load_settings()) as pipeline, pipeline.airflow_stage("poll_feeds", run_id):
        pipeline.poll_feeds(pipeline.due_feeds(pipeline.load_feeds(), attempt=run_id), attempt=run_id)
    killed = subprocess.run([sys.executable, "-c", KILLED_FETCH, run_id], env=os.environ, timeout=120)
    assert killed.returncode == -signal.SIGKILL
    with Pipeline(load_settings()) as pipeline:
        assert pipeline.store.article_count() == 2 * SMALL_BATCH == pipeline.airflow_counts(run_id)["articles_added"]
        [record] = pipeline.store.recent_runs(5)
        assert (record.airflow_run, record.status) == (run_id, "running")
    # The killed try's time up to its last note of progress, after its first batch was stored, counts.
    killed_seconds = record.stats["stage_seconds"].get("fetch_articles", 0.0)
    assert killed_seconds >= 1.0

    # Airflow finds the task dead and runs it again, and the tasks after it (here: the run, under its id).
    run = run_dag("news_pipeline", again=SimpleNamespace(run_after=when, logical_date=when))

    assert run.dag_run.run_id == run_id and run.state("report") == "success"
    with Pipeline(load_settings()) as pipeline:
        store = pipeline.store
        counts, articles, clusters = store.counts(), store.article_count(), clusters_in(store)
        [record] = store.recent_runs(5)
    assert clusters == expected_clusters(base) and counts.entries == {"done": articles}
    assert counts.stories == len(clusters) and counts.outbox == 0
    report = run.value("report")
    # The killed try's two batches and the retry's rest, each once.
    assert report["articles_added"] == articles and report["clustered"] == articles
    assert report["indexed"] == articles + counts.stories
    assert (record.airflow_run, record.status, record.stats["articles_added"]) == (run_id, "ok", articles)
    assert record.stats["stage_seconds"]["fetch_articles"] > killed_seconds  # and the retry's is added
