"""What every benchmark shares: timing, CPU and memory readings, versions, the Elasticsearch node, result rows.

Every benchmark returns a ``Result``: two sides measured side by side in one run, their
ratio, the target, and whether it was met. Absolute times on a shared two-core machine
are noisy; the ratios are what the targets are about.
"""

from __future__ import annotations

import gc
import importlib.metadata
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"  # git-ignored

RESULT_KEYS = ("stage", "measured", "ours", "baseline", "ratio", "target", "met", "versions", "details")


@dataclass(slots=True)
class Side:
    """One side of a comparison: what ran, and its rate or value."""

    label: str
    value: float
    unit: str

    def __str__(self) -> str:
        return f"{self.label}: {_number(self.value)} {self.unit}"


@dataclass(slots=True)
class Result:
    """One line of the results table."""

    stage: str
    measured: str
    ours: Side
    baseline: Side
    ratio: float | None
    target: str
    met: bool | None  # None: reported, no target
    versions: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        verdict = {True: "MET", False: "NOT MET", None: "reported"}[self.met]
        ratio = "-" if self.ratio is None else f"{self.ratio:.2f}"
        versions = ", ".join(f"{k} {v}" for k, v in self.versions.items())
        return (
            f"[{self.stage}] {self.measured}\n"
            f"    ours      {self.ours}\n"
            f"    baseline  {self.baseline}\n"
            f"    ratio {ratio}   target: {self.target}   {verdict}\n"
            f"    versions: {versions}"
        )


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def markdown_table(results: list[Result]) -> str:
    """The README table: one row per result."""
    rows = [
        "| stage | measured | ours | baseline | ratio | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}"
        met = {True: "yes", False: "**no**", None: "reported"}[r.met]
        rows.append(f"| {r.stage} | {r.measured} | {r.ours} | {r.baseline} | {ratio} | {r.target} | {met} |")
    return "\n".join(rows)


# -- time, CPU and memory -----------------------------------------------------------------------


@dataclass(slots=True)
class Span:
    """Wall and CPU seconds of a block; CPU counts this process and its reaped children."""

    wall: float = 0.0
    cpu: float = 0.0


def cpu_seconds() -> float:
    """CPU time of this process and of its children that have exited (pool workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def process_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a live process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_pids() -> set[int]:
    """The live child processes of this process, from /proc."""
    return {int(pid) for task in Path("/proc/self/task").iterdir()
            for pid in (task / "children").read_text().split()}


def new_children_cpu_seconds(before: set[int]) -> float:
    """CPU time of the live children not in ``before`` (a pool started since), from /proc."""
    return sum(process_cpu_seconds(pid) for pid in child_pids() - before)


@contextmanager
def measure() -> Iterator[Span]:
    span = Span()
    wall, cpu = time.perf_counter(), cpu_seconds()
    try:
        yield span
    finally:
        span.wall = time.perf_counter() - wall
        span.cpu = cpu_seconds() - cpu


def _status(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) * 1024
    return 0


def rss_bytes() -> int:
    """Current resident set size."""
    return _status("VmRSS")


def peak_rss_bytes() -> int:
    """Peak resident set size since start or since ``reset_peak_rss``."""
    return _status("VmHWM")


def reset_peak_rss() -> int:
    """Collect garbage and reset the peak RSS counter (Linux); returns the current RSS."""
    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return rss_bytes()


def load_average() -> float:
    return os.getloadavg()[0]


def best_of(repeats: int, run: Callable[[], float]) -> float:
    """The fastest of ``repeats`` runs (seconds): the least disturbed by other work on the machine."""
    return min(run() for _ in range(repeats))


# -- versions ---------------------------------------------------------------------------------


def git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return out + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> dict[str, Any]:
    return {
        "cpus": len(os.sched_getaffinity(0)),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "revision": git_revision(),
    }


# -- Elasticsearch ------------------------------------------------------------------------------


def es_url() -> str:
    """The benchmark node: NEWSAGG_ES_URL, the running scripts/es-node node, or one started now.

    Uses the test suite's helper, which stops at exit only a node it started itself.
    """
    spec = importlib.util.spec_from_file_location("newsagg_bench_es_node", ROOT / "tests" / "services.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.ensure_elasticsearch())


def es_server_version(url: str) -> str:
    import httpx

    try:
        nodes = httpx.get(f"{url}/_nodes/_local", params={"filter_path": "nodes.*.version"}, timeout=10).json()
        return str(next(iter(nodes["nodes"].values()))["version"])
    except (httpx.HTTPError, KeyError, StopIteration, ValueError):
        return "unknown"


# -- results on disk ----------------------------------------------------------------------------


def save(name: str, data: Any) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    return path
