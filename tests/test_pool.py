"""One pool of worker processes for a run: shared by its stages, recovered when a worker dies."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from demo_truth import clusters_in, expected_clusters

import pipeline.clustering.signatures as signatures
import pipeline.extraction as extraction
import pipeline.pool
from pipeline.demo.server import CorpusServer
from pipeline.pool import WorkerPool
from pipeline.runner import Pipeline
from pipeline.settings import Settings


def _recording(stage: str, real: Callable[..., Any], log: Path) -> Callable[..., Any]:
    """``real``, noting in ``log`` which process ran it for ``stage`` (a file: workers are other processes)."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with log.open("a", encoding="utf-8") as f:
            f.write(f"{stage} {os.getpid()}\n")
        return real(*args, **kwargs)

    return wrapper


def _pids(log: Path, stage: str) -> set[int]:
    lines = log.read_text(encoding="utf-8").split("\n") if log.exists() else []
    return {int(line.split()[1]) for line in lines if line.startswith(f"{stage} ")}


@pytest.fixture
def forked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers forked, so that they inherit this test's patches (the test's server thread would mean spawn)."""
    monkeypatch.setattr(pipeline.pool, "start_method", lambda: "fork")


@pytest.fixture
def first_pool_forked(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first pool forked, so that its workers inherit this test's patches; the pools after it as a run starts them.

    A pool that replaces a broken one starts while the run's download threads work (spawned
    then): forked there, a worker could inherit a lock another thread held, and hang.
    """
    real, first = pipeline.pool.start_method, iter(["fork"])
    monkeypatch.setattr(pipeline.pool, "start_method", lambda: next(first, None) or real())


@pytest.mark.usefixtures("forked")
def test_the_stages_of_a_run_share_one_pool(
    corpus_server: CorpusServer, demo_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "stages.log"
    monkeypatch.setattr(extraction, "extract_page", _recording("extract", extraction.extract_page, log))
    monkeypatch.setattr(signatures, "sketch_texts", _recording("sign", signatures.sketch_texts, log))
    started: list[int] = []
    real_executor = pipeline.pool.ProcessPoolExecutor

    def counted(*args: Any, **kwargs: Any) -> Any:
        started.append(1)
        return real_executor(*args, **kwargs)

    monkeypatch.setattr(pipeline.pool, "ProcessPoolExecutor", counted)
    clustering = demo_settings.clustering.model_copy(update={"pool_min_batch": 1})
    settings = demo_settings.model_copy(update={"workers": 2, "clustering": clustering})
    with Pipeline(settings) as pipe:
        report = pipe.run(force=True)
        assert report.articles_added > 0 and report.clustered == report.articles_added
        assert clusters_in(pipe.store) == expected_clusters(corpus_server.base_url)
    extracting, signing = _pids(log, "extract"), _pids(log, "sign")
    assert len(extracting) == 2 and os.getpid() not in extracting  # both workers extracted, this process did not
    assert signing == extracting  # the same two processes signed
    assert started == [1]  # one pool for the whole run


@pytest.mark.usefixtures("first_pool_forked")
def test_a_killed_worker_costs_its_batches_a_retry_not_the_run(
    corpus_server: CorpusServer, demo_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = os.getpid()
    killed = tmp_path / "killed"
    real = extraction.extract_page

    def killed_once(*args: Any, **kwargs: Any) -> Any:
        if os.getpid() != parent:
            try:
                os.close(os.open(killed, os.O_CREAT | os.O_EXCL))  # the first worker to get here, once
            except FileExistsError:
                return real(*args, **kwargs)
            os._exit(1)  # what an out-of-memory kill looks like to the pool
        return real(*args, **kwargs)

    monkeypatch.setattr(extraction, "extract_page", killed_once)
    extraction_settings = demo_settings.extraction.model_copy(update={"batch_size": 9})
    settings = demo_settings.model_copy(update={"workers": 2, "extraction": extraction_settings})
    with Pipeline(settings) as pipe:
        first = pipe.run(force=True)
        assert killed.exists()
        # The batches with the dead worker's pool wait for the next pass; the later ones had a fresh pool.
        assert first.pages_deferred > 0 and first.articles_added > 0 and first.articles_failed == 0
        assert pipe.store.entry_counts().get("pending") == first.pages_deferred
        second = pipe.run(force=True)
        assert second.articles_added == first.pages_deferred and second.pages_deferred == 0
        assert clusters_in(pipe.store) == expected_clusters(corpus_server.base_url)


def test_a_pool_is_sized_by_the_cpus_and_one_worker_means_none() -> None:
    cpus = pipeline.pool.available_cpus()
    assert WorkerPool().workers == cpus
    assert WorkerPool(cpus + 8).workers == cpus
    with WorkerPool(1) as alone:
        assert alone.executor() is None and not alone.running


def test_a_run_process_forks_its_workers() -> None:
    """Importing the pipeline (numpy among it) must start no thread that turns the run's pool to spawn.

    numpy's OpenBLAS starts a thread pool when it loads; a spawned worker imports the
    pipeline again, which cost each run about a second of CPU per worker.
    """
    script = "import pipeline.runner\nfrom pipeline.pool import start_method\nprint(start_method())\n"
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True, env=env)
    assert done.stdout.split() == ["fork"]


def test_the_demo_forks_its_workers_although_it_serves_the_corpus_from_a_thread(tmp_path: Path) -> None:
    """`newsagg demo` serves its corpus from a thread of its own process; its workers start before that thread.

    Started after it, they were spawned and each imported the pipeline again: about two
    seconds of CPU per worker for a demo of 49 articles.
    """
    if pipeline.pool.available_cpus() < 2:
        pytest.skip("one CPU: a run has no worker processes")
    script = (
        "import sys, pipeline.pool\n"
        "from pipeline.demo.run import run_demo\n"
        "real, chosen = pipeline.pool.start_method, []\n"
        "pipeline.pool.start_method = lambda: chosen.append(real()) or chosen[-1]\n"
        "result = run_demo(None)\n"
        "print(len(result.stories), *chosen)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSAGG_") and not k.endswith("_NUM_THREADS")}
    env["NEWSAGG_WORKERS"] = "2"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env,
                          cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    stories, *methods = done.stdout.split()
    assert int(stories) == len(expected_clusters("http://127.0.0.1")) and methods == ["fork"]


def _square_or_die_once(arg: tuple[int, str]) -> int:
    n, marker = arg
    if n == 3 and os.getpid() != int(Path(marker).read_text()):
        try:
            os.close(os.open(marker + ".died", os.O_CREAT | os.O_EXCL))  # the first worker to get here, once
        except FileExistsError:
            return n * n
        os._exit(1)  # what an out-of-memory kill looks like to the pool
    return n * n


@pytest.mark.usefixtures("forked")
def test_imap_keeps_order_and_redoes_a_dead_workers_call_here(tmp_path: Path) -> None:
    marker = tmp_path / "parent"
    marker.write_text(str(os.getpid()))
    with WorkerPool(2) as pool:
        results = list(pool.imap(_square_or_die_once, [(n, str(marker)) for n in range(8)], ahead=4))
    assert results == [n * n for n in range(8)]
    assert (tmp_path / "parent.died").exists()


def test_a_worker_dying_after_imap_was_left_midway_breaks_only_the_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    # On Python 3.11 a pool that breaks fails every future it still holds, and one that was
    # cancelled meanwhile made its manager thread die with InvalidStateError (a traceback on
    # stderr, the futures after it never settled).
    died: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: died.append(args.exc_value))
    with WorkerPool(2) as pool:
        calls = pool.imap(time.sleep, [0.1] + [30.0] * 7, ahead=8)
        next(calls)
        calls.close()  # left midway: the calls not started yet stay queued behind the two running
        executor = pool.executor()
        assert executor is not None
        for process in list(executor._processes.values()):  # type: ignore[attr-defined]
            process.kill()
        deadline = time.monotonic() + 30
        while not executor._broken and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.05)
        time.sleep(0.5)  # the manager thread fails the pool's futures
    assert died == []


def _page_faults_of_rounds(rounds: int) -> list[int]:
    """The minor page faults of each round of filling ten 3 MiB arrays and freeing them together, as a batch does."""
    import resource

    import numpy as np

    faults = []
    for _ in range(rounds):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        arrays = [np.ones(3 << 17) for _ in range(10)]
        del arrays
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return faults


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the tuning is glibc's mallopt")
def test_a_worker_keeps_the_memory_a_batch_freed_for_the_next_one() -> None:
    """glibc gave a freed batch's memory back to the system, and the next batch faulted every page in again."""
    with WorkerPool(2) as pool:
        executor = pool.executor()
        if executor is None:
            pytest.skip("one CPU: no worker processes")
        first, *later = executor.submit(_page_faults_of_rounds, 4).result(timeout=60)
    assert first > 5000  # 30 MiB of pages touched
    assert max(later) < first / 10, (first, later)
