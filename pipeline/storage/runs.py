"""The record of pipeline runs, and how a run killed on the way is told from one still at work."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field
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


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One pipeline run as ``newsagg runs list`` shows it."""

    id: int
    trigger: str  # "cli", "airflow", "demo"
    started_at: datetime
    finished_at: datetime | None
    status: str  # "ok", "partial" (the search index was unavailable), "failed", "running", "abandoned"
    host: str | None
    pid: int | None
    heartbeat_at: datetime | None
    stats: dict[str, Any] = field(default_factory=dict)  # its RunReport.as_dict(); empty until it ends


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

    def recent_runs(self, limit: int, *, now: datetime | None = None) -> list[RunRecord]:
        """The last ``limit`` runs, newest first; a run shown running whose process is gone reads ``abandoned``.

        Reading changes nothing: the next ``start_run`` records the abandonment.
        """
        now = now or utc_now()
        query = sa.select(runs).order_by(runs.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            rows = list(conn.execute(query).mappings())
        return [
            RunRecord(
                id=row["id"],
                trigger=row["trigger"],
                started_at=row["started_at"],
                finished_at=row["finished_at"],
                status="abandoned" if row["status"] == "running" and _dead(row, now) else row["status"],
                host=row["host"],
                pid=row["pid"],
                heartbeat_at=row["heartbeat_at"],
                stats=row["stats"] or {},
            )
            for row in rows
        ]

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
    running: list[Any] = list(conn.execute(query.where(runs.c.status == "running")).mappings())
    for row in running:
        if _dead(row, now):
            conn.execute(
                runs.update()
                .where(runs.c.id == row["id"], runs.c.status == "running")
                .values(status="abandoned", finished_at=row["heartbeat_at"] or row["started_at"])
            )


def _dead(row: Any, now: datetime) -> bool:
    """Whether a run shown running is dead: its process is gone, or it showed no progress for too long."""
    last_seen: datetime = row["heartbeat_at"] or row["started_at"]
    gone = row["pid"] is not None and process_gone(row["host"], row["pid"])
    return gone or last_seen < now - RUN_STALE_AFTER


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
