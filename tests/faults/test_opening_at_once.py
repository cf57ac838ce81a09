"""Workers that start together on a new data directory all open its SQLite files.

Switching a new SQLite file to WAL is the one step whose lock SQLite does not wait for
(its busy handler is skipped to avoid a deadlock): without a retry, one of two processes
opening a new store at the same instant fails about every other time with "database is
locked" (CI saw it as two `newsagg run` workers, one of which could not open the store).
Here processes meet at a barrier before each open, round after round, each round on new files.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.queues
import multiprocessing.synchronize
from pathlib import Path

import pytest

PROCESSES = 3
ROUNDS = 20


def _open_each_round(
    kind: str, root: str, barrier: multiprocessing.synchronize.Barrier, errors: multiprocessing.queues.Queue[str]
) -> None:
    from pipeline.search.sqlite import SqliteSearchIndex
    from pipeline.storage import Store

    for round_ in range(ROUNDS):
        path = Path(root) / str(round_) / f"{kind}.sqlite3"
        path.parent.mkdir(parents=True, exist_ok=True)
        barrier.wait(timeout=60)
        try:
            if kind == "store":
                Store(f"sqlite:///{path}").close()
            else:
                SqliteSearchIndex(path).setup()
        except Exception as exc:  # noqa: BLE001 - every failure is the finding, reported to the test
            errors.put(f"round {round_}: {exc}")


@pytest.mark.parametrize("kind", ["store", "search"])
def test_processes_opening_a_new_sqlite_file_at_the_same_instant_all_open_it(kind: str, tmp_path: Path) -> None:
    spawn = multiprocessing.get_context("spawn")  # a clean interpreter each, as separate workers are
    barrier = spawn.Barrier(PROCESSES)
    errors: multiprocessing.queues.Queue[str] = spawn.Queue()
    procs = [spawn.Process(target=_open_each_round, args=(kind, str(tmp_path), barrier, errors)) for _ in range(PROCESSES)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=180)
    assert [proc.exitcode for proc in procs] == [0] * PROCESSES
    failures = []
    while not errors.empty():
        failures.append(errors.get())
    assert failures == []
