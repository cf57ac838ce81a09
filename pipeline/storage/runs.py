"""The record of pipeline runs, and how a run killed on the way is told from one still at work."""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pipeline.storage.base import StoreBase, utc_now
from pipeline.storage.schema import runs

#: A running run that has not shown progress for this long is taken for dead (its host is
#: another machine, so its process cannot be looked up). Generous: a stage may go this long
#: between two heartbeats (waiting for the clusters lock, clustering a large window).
RUN_STALE_AFTER = timedelta(minutes=30)


class RunStore(StoreBase):
    """One row per run: when, what triggered it, who runs it, how it ended, its counts."""

    def start_run(self, trigger: str, *, now: datetime | None = None) -> int:
        """Record a new run of this process; runs found dead on the way are marked ``abandoned``."""
        now = now or utc_now()
        with self._tx() as conn:
            _abandon_dead_runs(conn, now)
            result = conn.execute(
                runs.insert().values(
                    trigger=trigger,
                    started_at=now,
                    status="running",
                    host=HOST,
                    pid=os.getpid(),
                    heartbeat_at=now,
                )
            )
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])

    def run_heartbeat(self, run_id: int) -> None:
        """Note that the run is still at work."""
        with self._tx() as conn:
            conn.execute(runs.update().where(runs.c.id == run_id).values(heartbeat_at=utc_now()))

    def finish_run(self, run_id: int, status: str, stats: dict[str, Any]) -> None:
        with self._tx() as conn:
            conn.execute(
                runs.update()
                .where(runs.c.id == run_id)
                .values(finished_at=utc_now(), status=status, stats=json.loads(json.dumps(stats, default=str)))
            )


#: This machine, as runs and entry claims name it.
HOST = socket.gethostname()[:255]


def _abandon_dead_runs(conn: Connection, now: datetime) -> None:
    """Mark ``abandoned`` the runs still shown running whose process is gone (killed, its host lost)."""
    query = sa.select(runs.c.id, runs.c.host, runs.c.pid, runs.c.started_at, runs.c.heartbeat_at)
    running: list[Any] = list(conn.execute(query.where(runs.c.status == "running")))
    for run_id, host, pid, started_at, heartbeat_at in running:
        last_seen = heartbeat_at or started_at
        gone = pid is not None and process_gone(host, pid)
        if gone or last_seen < now - RUN_STALE_AFTER:
            conn.execute(
                runs.update()
                .where(runs.c.id == run_id, runs.c.status == "running")
                .values(status="abandoned", finished_at=last_seen)
            )


def process_gone(host: str | None, pid: int) -> bool:
    """Whether process ``pid`` of ``host`` is known to have ended (only this host's processes can be looked up)."""
    if host != HOST:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's process
        return False
    return False
