"""The DAG files parse cleanly, fast, without heavy imports, and are wired as designed."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import TriggerRule

DAGS = Path(__file__).resolve().parents[2] / "dags"
POOLS = ("default_pool", "newsagg_fetch")

PIPELINE_TASKS = {
    "load_feeds": set(),
    "poll_feeds": {"load_feeds"},
    "fetch_articles": {"poll_feeds"},
    "cluster_articles": {"fetch_articles"},
    "merge_stories": {"cluster_articles"},
    "index_stories": {"merge_stories"},
    "report": {"load_feeds", "poll_feeds", "fetch_articles", "cluster_articles", "merge_stories", "index_stories"},
}
MAINTENANCE_TASKS = {
    "apply_retention": set(),
    "compact_store": {"apply_retention"},
    "feed_health": set(),
    "check_search_index": set(),
}


def test_dags_import_without_errors_or_warnings(dagbag: Any) -> None:
    assert dagbag.import_errors == {}
    assert [w.message for w in dagbag.dag_warnings] == []
    assert set(dagbag.dags) == {"news_pipeline", "news_maintenance"}


def test_pipeline_dag_shape(dagbag: Any) -> None:
    dag = dagbag.dags["news_pipeline"]
    assert {t.task_id: set(t.upstream_task_ids) for t in dag.tasks} == PIPELINE_TASKS
    assert dag.catchup is False and dag.max_active_runs == 1
    assert dag.timetable.expression == "*/15 * * * *"
    assert set(dag.params) == {"feeds_file", "force"}
    assert dag.doc_md and all(t.doc_md for t in dag.tasks)

    poll = dag.get_task("poll_feeds")
    assert poll.is_mapped
    assert poll.pool == "newsagg_fetch"
    assert "batch" in poll.map_index_template and "label" in poll.map_index_template
    assert poll.retries >= 1 and poll.retry_exponential_backoff and poll.execution_timeout
    assert [t.task_id for t in dag.tasks if t.is_mapped] == ["poll_feeds"]

    rules = {t.task_id: TriggerRule(t.trigger_rule).value for t in dag.tasks}
    assert rules["fetch_articles"] == "all_done"  # failed feeds do not stop the run
    assert rules["report"] == "all_done"
    assert rules["cluster_articles"] == rules["merge_stories"] == rules["index_stories"] == "all_success"
    for task_id in ("fetch_articles", "index_stories"):  # network-bound
        task = dag.get_task(task_id)
        assert task.retries >= 1 and task.retry_exponential_backoff
    assert all(t.execution_timeout is not None and t.execution_timeout <= timedelta(hours=1) for t in dag.tasks)
    assert all(t.retry_policy is not None for t in dag.tasks)
    assert not any(t.multiple_outputs for t in dag.tasks)  # one XCom per task, not one per key


def test_maintenance_dag_shape(dagbag: Any) -> None:
    dag = dagbag.dags["news_maintenance"]
    assert {t.task_id: set(t.upstream_task_ids) for t in dag.tasks} == MAINTENANCE_TASKS
    assert dag.catchup is False and dag.max_active_runs == 1
    assert dag.timetable.expression == "30 3 * * *"
    assert set(dag.params) == {"min_failures"}
    assert dag.doc_md and all(t.doc_md for t in dag.tasks)
    assert all(t.execution_timeout is not None for t in dag.tasks)


PARSE = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
before = set(sys.modules)
bag = DagBag(dag_folder=sys.argv[1], known_pools=set(sys.argv[2:]))
loaded = sorted({m.split(".")[0] for m in set(sys.modules) - before} | {m for m in sys.modules if m.startswith("pipeline.")})
print(json.dumps({"dags": sorted(bag.dags), "errors": list(bag.import_errors), "loaded": loaded}))
"""
# What the DAG files may pull in at parse time: the error classes named in the retry policies
# (which bring the package's eager records and settings along), nothing that does the work.
PARSE_TIME_MODULES = {"pipeline", "pipeline.errors", "pipeline.models", "pipeline.settings"}
HEAVY = {"trafilatura", "datasketch", "feedparser", "numpy", "lxml", "tldextract", "elasticsearch"}


def test_dag_files_parse_without_heavy_imports(airflow_db: Any) -> None:
    """In a fresh interpreter: this one has the whole library imported already."""
    proc = subprocess.run(
        [sys.executable, "-c", PARSE, str(DAGS), *POOLS], capture_output=True, text=True, timeout=120, check=True
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["errors"] == [] and result["dags"] == ["news_maintenance", "news_pipeline"]
    loaded = set(result["loaded"])
    assert not loaded & HEAVY, "DAG files must import the library inside tasks"
    assert {m for m in loaded if m.startswith("pipeline")} <= PARSE_TIME_MODULES
