"""scripts/pg-node: a test server's data directory is disposable, whatever wrote it."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import sqlalchemy as sa

PG_NODE = Path(__file__).resolve().parents[1] / "scripts" / "pg-node"


def pg_node(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NEWSAGG_PG_CACHE": str(cache)}
    return subprocess.run([sys.executable, str(PG_NODE), *args], env=env, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def test_a_data_directory_of_another_major_version_is_initialised_anew() -> None:
    # Not pytest's tmp_path: as root the server runs as an unprivileged user, who must reach it.
    with tempfile.TemporaryDirectory(prefix="newsagg-pg-node-") as where:
        tmp_path = Path(where)
        tmp_path.chmod(0o755)
        reinitialised(tmp_path)


def reinitialised(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "PG_VERSION").write_text("15\n")  # what Debian's PostgreSQL 15 leaves behind
    (data / "base").mkdir()

    started = pg_node("start", "--port", "0", "--data-dir", str(data), cache=tmp_path / "cache")
    try:
        assert started.returncode == 0, started.stderr
        assert "initialised by PostgreSQL 15" in started.stderr
        engine = sa.create_engine(started.stdout.strip())
        with engine.connect() as conn:
            assert conn.execute(sa.text("select 1")).scalar() == 1
        engine.dispose()
        assert (data / "PG_VERSION").read_text().strip() != "15"
    finally:
        pg_node("stop", cache=tmp_path / "cache")
