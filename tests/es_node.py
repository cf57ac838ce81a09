"""The Elasticsearch node the integration tests run against.

`ensure_node()` returns NEWSAGG_ES_URL when set (an existing node or cluster),
else the URL of the node started by `scripts/es-node` (one already running is
reused; otherwise one is started on NEWSAGG_ES_PORT, or a free port, with a
throwaway data directory). `stop_node()` (also run at exit) stops only a node
that `ensure_node()` started itself.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "es-node"

_started: dict[str, str] = {}  # "url" and "data_dir" of the node this process started


def _es_node(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def ensure_node() -> str:
    url = os.environ.get("NEWSAGG_ES_URL")
    if url:
        return url.rstrip("/")
    if _started:
        return _started["url"]
    running = _es_node("status", timeout=60)
    if running.returncode == 0:
        return running.stdout.strip()
    data_dir = tempfile.mkdtemp(prefix="newsagg-es-data-")
    started = _es_node("start", "--port", os.environ.get("NEWSAGG_ES_PORT", "0"), "--data-dir", data_dir)
    if started.returncode != 0:
        shutil.rmtree(data_dir, ignore_errors=True)
        raise RuntimeError(f"scripts/es-node start failed:\n{started.stderr.strip()}")
    _started.update(url=started.stdout.strip(), data_dir=data_dir)
    atexit.register(stop_node)  # even when no fixture calls stop_node()
    return _started["url"]


def stop_node() -> None:
    if not _started:
        return
    _es_node("stop", timeout=120)
    shutil.rmtree(_started["data_dir"], ignore_errors=True)
    _started.clear()
