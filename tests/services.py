"""The real servers the tests run against: Elasticsearch, PostgreSQL; and the processes they start.

`ensure_elasticsearch()` / `ensure_postgres()` return NEWSAGG_ES_URL /
NEWSAGG_PG_URL when set (an existing server), else the URL of the server started
by `scripts/es-node` / `scripts/pg-node` (`make test` starts both; one already
running is reused), otherwise they start one themselves on a free port (with a
throwaway data directory) and stop it at exit. Nothing is skipped: a server that
cannot be had is an error.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"

_started: dict[str, dict[str, str]] = {}  # per script: "url" and, for PostgreSQL, "data_dir"


def _node(script: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPTS / script), *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def _ensure(script: str, env_name: str, data_dir: bool = False) -> str:
    url = os.environ.get(env_name)
    if url:
        return url.rstrip("/")
    if script in _started:
        return _started[script]["url"]
    running = _node(script, "status", timeout=60)
    if running.returncode == 0:
        return running.stdout.strip()
    args = ["start", "--port", "0"]
    info: dict[str, str] = {}
    if data_dir:
        info["data_dir"] = tempfile.mkdtemp(prefix=f"newsagg-{script}-")
        os.chmod(info["data_dir"], 0o755)  # the server may run as an unprivileged user
        args += ["--data-dir", str(Path(info["data_dir"]) / "data")]
    started = _node(script, *args)
    if started.returncode != 0:
        if "data_dir" in info:
            shutil.rmtree(info["data_dir"], ignore_errors=True)
        raise RuntimeError(f"scripts/{script} start failed:\n{started.stderr.strip()}")
    _started[script] = {**info, "url": started.stdout.strip()}
    atexit.register(_stop, script)
    return _started[script]["url"]


def _stop(script: str) -> None:
    info = _started.pop(script, None)
    if info is None:
        return
    _node(script, "stop", timeout=120)
    if "data_dir" in info:
        shutil.rmtree(info["data_dir"], ignore_errors=True)


def ensure_elasticsearch() -> str:
    """The URL of an Elasticsearch 9 node where tests may create indices under their own prefix."""
    return _ensure("es-node", "NEWSAGG_ES_URL", data_dir=True)


def ensure_postgres() -> str:
    """A SQLAlchemy URL (postgresql+psycopg://...) of a server where we may create databases."""
    return _ensure("pg-node", "NEWSAGG_PG_URL", data_dir=True)


def stop_started() -> None:
    """Stop the servers this process started (none when `make test` started them)."""
    for script in list(_started):
        _stop(script)


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh, empty database on the test server, dropped afterwards; yields its URL."""
    server = sa.make_url(ensure_postgres())
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE template0 ENCODING \'UTF8\' LOCALE \'C\'')
        yield server.set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


def group_members(group: int) -> list[int]:
    """The live processes of process group ``group`` (a run and its workers)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(pgrp) == group and state != "Z":
            members.append(int(stat.parent.name))
    return members
