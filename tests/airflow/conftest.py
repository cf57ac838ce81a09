"""Real Airflow for the DAG tests: a temporary AIRFLOW_HOME with its own SQLite metadata database.

Airflow reads its configuration when it is first imported, so the environment is set
here, at import time; this conftest is imported only when tests/airflow is collected.
The NEWSAGG_* settings the tasks read are set per test (monkeypatch), never globally.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
POOLS = {"default_pool", "newsagg_fetch"}

_HOME = Path(tempfile.mkdtemp(prefix="newsagg-airflow-test-"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME / 'airflow.db'}",
    }
)


@pytest.fixture(scope="session")
def airflow_db() -> Iterator[Path]:
    """The metadata database, created once per session."""
    from airflow.utils import db

    db.initdb()
    yield _HOME


@pytest.fixture(scope="session")
def dagbag(airflow_db: Path) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS), known_pools=POOLS)


@pytest.fixture
def newsagg_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., Path]:
    """Point the tasks' settings (read from NEWSAGG_* in-process) at a fresh data directory."""

    def configure(base_url: str, feeds_file: Path) -> Path:
        data_dir = tmp_path / "data"
        netloc = base_url.split("://", 1)[1]
        for name, value in {
            "NEWSAGG_DATA_DIR": str(data_dir),
            "NEWSAGG_FEEDS_FILE": str(feeds_file),
            "NEWSAGG_SEARCH_BACKEND": "sqlite",
            "NEWSAGG_FETCH__ALLOWED_HOSTS": f'["{netloc}"]',
            "NEWSAGG_FETCH__POLITENESS_DELAY": "0",
        }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("NEWSAGG_CONFIG", raising=False)
        monkeypatch.delenv("NEWSAGG_STORE_URL", raising=False)
        return data_dir

    return configure


class DagRunResult:
    """What one ``dag.test()`` run left behind: task-instance states, labels and return values."""

    def __init__(
        self,
        dag_run: Any,
        states: dict[tuple[str, int], str],
        tries: dict[tuple[str, int], int],
        values: dict[tuple[str, int], Any],
        labels: dict[tuple[str, int], str | None],
    ) -> None:
        self.dag_run = dag_run
        self.states = states
        self.tries = tries
        self.values = values
        self.labels = labels

    def state(self, task_id: str) -> str:
        return self.states[(task_id, -1)]

    def mapped(self, task_id: str) -> dict[int, str]:
        return {index: state for (tid, index), state in self.states.items() if tid == task_id and index >= 0}

    def value(self, task_id: str) -> Any:
        return self.values.get((task_id, -1))


@pytest.fixture
def run_dag(dagbag: Any, monkeypatch: pytest.MonkeyPatch) -> Callable[..., DagRunResult]:
    """Run a DAG for real through ``dag.test()``, without retries (dag.test honours retry delays).

    The tasks' retries are the DAG's own again after the test: the DAG objects are the session's.
    """

    def run(
        dag_id: str, conf: dict[str, Any] | None = None, retries: dict[str, int] | None = None, again: Any = None
    ) -> DagRunResult:
        """``retries`` keeps that many retries, without delay, for the tasks named. ``again``, an earlier
        DAG run, is run again from the start under its run id, as after an operator's Clear."""
        from datetime import timedelta

        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        dag = dagbag.dags[dag_id]
        for t in dag.tasks:
            monkeypatch.setattr(t, "retries", (retries or {}).get(t.task_id, 0))
            monkeypatch.setattr(t, "retry_delay", timedelta(0))
        # Every param explicitly: in one process, a param given to an earlier run sticks to the
        # task objects dag.test() caches, and would leak into the next run.
        defaults = {name: dag.params.get_param(name).value for name in dag.params}
        same = {} if again is None else {"run_after": again.run_after, "logical_date": again.logical_date}
        dag_run = dag.test(run_conf={**defaults, **(conf or {})}, **same)
        with create_session() as session:
            instances = dag_run.get_task_instances(session=session)
            states = {(ti.task_id, ti.map_index): ti.state for ti in instances}
            tries = {(ti.task_id, ti.map_index): ti.try_number for ti in instances}
            labels = {(ti.task_id, ti.map_index): ti.rendered_map_index for ti in instances}
            query = XComModel.get_many(run_id=dag_run.run_id, dag_ids=dag.dag_id, key="return_value")
            rows = session.scalars(query).all()
            values = {(r.task_id, r.map_index): XComModel.deserialize_value(r) for r in rows}
        return DagRunResult(dag_run, states, tries, values, labels)

    return run
