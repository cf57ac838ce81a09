"""The worker processes of a run: one pool, sized once, shared by every stage.

Parsing feeds, extracting pages and signing articles are CPU work done in other
processes. A run starts one pool of ``workers`` processes and each stage hands it its
work, so the processes start once (not once per stage) and the stages agree on how many
there are and how they start.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from itertools import islice
from typing import TypeVar

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Freed memory a worker keeps for its next batch, and the size from which a block is mapped on its own.
_KEPT_FREE = 64 << 20

_A = TypeVar("_A")
_R = TypeVar("_R")

log = logging.getLogger(__name__)


def available_cpus() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))  # honours container CPU pinning
    except AttributeError:  # not on macOS or Windows
        return os.cpu_count() or 1


def start_method() -> str:
    """fork when provably single-threaded, else spawn.

    Forking a process in which another thread may hold a lock (logging, an HTTP client
    pool, Airflow's supervisor) can deadlock the child, so threads mean spawn. With one
    thread, fork is safe and saves each worker re-importing trafilatura.
    """
    if "fork" not in multiprocessing.get_all_start_methods():
        return "spawn"
    try:
        # OS threads, not just Python's: native libraries start threads too.
        single = len(os.listdir("/proc/self/task")) == 1
    except OSError:
        single = False
    return "fork" if single else "spawn"


def _start_worker(parent: int) -> None:
    """A worker's start: it ends with the process that started it, and keeps its freed memory."""
    _end_with_parent(parent)
    _keep_freed_memory()


def _keep_freed_memory() -> None:
    """Keep freed memory (up to ``_KEPT_FREE``) for the next batch instead of giving it back to the system.

    A batch's arrays (a signing batch's come to about 30 MB) are freed together at its
    end. glibc then returns the top of the heap to the system once more than twice the
    largest mapped block is free there, about 8 MB, and the next batch faulted every page
    in again: half the system time of ``newsagg dedup`` (bench/README.md). Only glibc has
    ``mallopt``; elsewhere nothing changes.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, TypeError, AttributeError):  # Windows has no process handle to load; macOS, no mallopt
        return
    mallopt(_M_MMAP_THRESHOLD, _KEPT_FREE)
    mallopt(_M_TRIM_THRESHOLD, _KEPT_FREE)


def _end_with_parent(parent: int) -> None:
    """It ends once the process that started it is gone, and quietly when stopped.

    A run killed with SIGKILL cannot tell its workers, and they do not notice: the pipe they
    wait on is held open by the other workers too. Left alone, each stayed idle for good.
    A stop sent to the whole process group (Ctrl-C, `systemctl stop`) reaches the workers
    too: forked, they had the command's handlers, which raised the stop in the middle of
    waiting for work, and each printed a traceback. The run's own process reports the stop.
    """
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, signal.SIG_DFL)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=watch, name="newsagg-parent-watch", daemon=True).start()


class WorkerPool:
    """Up to ``workers`` processes (never more than the CPUs available), started on first use.

    With one worker there is no pool: every stage works in this process. A pool whose
    worker died is discarded by whoever saw it die (:meth:`discard`), and the next use
    starts a fresh one, so a dead worker costs the work it held, not the run.
    """

    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, min(workers or available_cpus(), available_cpus()))
        self._executor: ProcessPoolExecutor | None = None
        self._owner = 0  # the pid that started it: a pool inherited through fork is the parent's
        self._lock = threading.Lock()

    def executor(self) -> ProcessPoolExecutor | None:
        """The running pool, started now if need be; None when the work stays in this process."""
        if self.workers <= 1:
            return None
        with self._lock:
            if self._executor is None or self._owner != os.getpid():
                method = start_method()
                try:
                    executor = ProcessPoolExecutor(
                        self.workers, mp_context=multiprocessing.get_context(method),
                        initializer=_start_worker, initargs=(os.getpid(),),
                    )
                    if method == "fork":
                        executor.submit(int)  # forks every worker now, while this process has one thread
                except (OSError, ImportError, NotImplementedError) as exc:
                    # No working semaphores (some sandboxes lack /dev/shm): the work stays here.
                    log.warning("cannot start worker processes (%s); working in this process", exc)
                    self.workers = 1
                    return None
                self._executor, self._owner = executor, os.getpid()
            return self._executor

    @property
    def running(self) -> bool:
        """Whether this process's workers are started, so that handing them work costs no start-up."""
        return self._executor is not None and self._owner == os.getpid()

    def start(self) -> None:
        """Start the workers now: a caller about to start threads gets forked workers, not spawned ones."""
        self.executor()

    def imap(self, fn: Callable[[_A], _R], args: Iterable[_A], ahead: int) -> Iterator[_R]:
        """``fn(arg)`` for each of ``args``, in order, on the workers; in this process when there are none.

        Up to ``ahead`` calls are with the workers at once, so the caller can use
        one result while the next ones are computed; ``args`` is read as the
        workers take them, so a stream is never held whole. ``fn`` must be a pure
        function: a call whose worker died is made again here.

        Calls left when the caller stops reading are not cancelled (at most ``ahead``;
        :meth:`close` cancels what no worker has started): on Python 3.11 a pool that
        breaks with a cancelled future in it crashes its manager thread.
        """
        items = iter(args)
        executor = self.executor()
        if executor is None:
            yield from map(fn, items)
            return

        def submit(arg: _A) -> tuple[_A, Future[_R] | None]:
            try:
                return arg, executor.submit(fn, arg)
            except RuntimeError:  # BrokenProcessPool: computed here when its turn comes
                return arg, None

        pending = deque(submit(arg) for arg in islice(items, max(1, ahead)))
        while pending:
            arg, future = pending.popleft()
            try:
                if future is None:
                    raise RuntimeError("the pool is broken")
                done = future.result()
            except RuntimeError:  # BrokenProcessPool: a worker died
                log.warning("a worker died; its work is done in this process")
                self.discard(executor)
                done = fn(arg)
            pending.extend(submit(following) for following in islice(items, 1))
            yield done

    def discard(self, executor: ProcessPoolExecutor) -> None:
        """Forget ``executor``, whose worker died; the next use starts a fresh pool."""
        with self._lock:
            if self._executor is executor:
                self._executor = None
        executor.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop the workers (a pool inherited through fork is left to its owner)."""
        with self._lock:
            executor, owner, self._executor = self._executor, self._owner, None
        if executor is not None and owner == os.getpid():
            executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
