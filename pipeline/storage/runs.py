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

from pipeline.storage.base import StoreBase, add_counted, utc_now
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
    # Its RunReport.as_dict() once it ended; until then only "stage_seconds", the time of each
    # stage so far (its mapped instances and retries added up), and for a DAG run "counted",
    # the counts of the work its tasks committed so far (every try of a task added up).
    stats: dict[str, Any] = field(default_factory=dict)
    airflow_run: str | None = None  # the Airflow run id of a DAG run


class RunStore(StoreBase):
    """One row per run: when, what triggered it, who runs it, how it ended, its counts."""

    def start_run(self, trigger: str, *, airflow_run: str | None = None, now: datetime | None = None) -> int:
        """Record a new run of this process; runs found dead on the way are marked ``abandoned``.

        With ``airflow_run`` (an Airflow run id), the run of that DAG run: the first of its
        tasks records it, every later task or retry finds the same row and shows it running
        again. Its tasks run in processes of their own, so it names no process: it is taken
        for dead only when no task showed progress for ``RUN_STALE_AFTER``.
        """
        now = now or utc_now()
        with self._tx() as conn:
            _abandon_dead_runs(conn, now)
            if airflow_run is not None:
                values = {"status": "running", "finished_at": None, "heartbeat_at": now}
                insert = self._insert(runs).values(trigger=trigger, started_at=now, host=HOST, airflow_run=airflow_run,
                                                   **values)
                result = conn.execute(
                    insert.on_conflict_do_update(index_elements=["airflow_run"], set_=values).returning(runs.c.id)
                )
                return int(result.scalar_one())
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
        with self._read() as conn:
            rows = list(conn.execute(query).mappings())
        return [_record(row, "abandoned" if row["status"] == "running" and _dead(row, now) else row["status"])
                for row in rows]

    def last_finished_run(self, status: str | None = None) -> RunRecord | None:
        """The newest run that ended (with ``status``, if given); None if there is none."""
        query = sa.select(runs).where(runs.c.status != "running").order_by(runs.c.id.desc()).limit(1)
        if status is not None:
            query = query.where(runs.c.status == status)
        with self._read() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else _record(row, row["status"])

    def record_stage(self, run_id: int, stage: str, seconds: float) -> None:
        """Add ``seconds`` to the time of ``stage`` in the run (a stage's mapped instances and retries add up)."""
        with self._tx() as conn:
            # Locked: the mapped instances of a stage may end at the same moment.
            query = sa.select(runs.c.stats).where(runs.c.id == run_id).with_for_update()
            stats: dict[str, Any] = dict(conn.execute(query).scalar_one() or {})
            times = dict(stats.get("stage_seconds") or {})
            times[stage] = round(times.get(stage, 0.0) + seconds, 3)
            conn.execute(
                runs.update().where(runs.c.id == run_id).values(stats={**stats, "stage_seconds": times},
                                                                heartbeat_at=utc_now())
            )

    def add_counts(self, run_id: int, counts: dict[str, int]) -> None:
        """Add ``counts`` (work a task just committed) to the run's ``counted``.

        A task that fails after committing part of its work, and its retry that does the rest,
        each add what they committed: the DAG run counts each thing once.
        """
        with self._tx() as conn:
            add_counted(conn, run_id, counts, heartbeat_at=utc_now())

    def counted(self, airflow_run: str) -> dict[str, int]:
        """What the tasks of the DAG run ``airflow_run`` counted so far (``add_counts``); empty if it is not recorded."""
        return dict(self._airflow_stats(airflow_run).get("counted") or {})

    def reported_feeds(self, airflow_run: str) -> list[dict[str, Any]]:
        """The feeds' outcomes the DAG run ``airflow_run`` recorded when it ended (``finish_run``); empty until it did."""
        return list(self._airflow_stats(airflow_run).get("feeds") or [])

    def _airflow_stats(self, airflow_run: str) -> dict[str, Any]:
        with self._read() as conn:
            stats = conn.execute(sa.select(runs.c.stats).where(runs.c.airflow_run == airflow_run)).scalar()
        return stats or {}

    def finish_run(self, run_id: int, status: str, stats: dict[str, Any]) -> None:
        """Record how the run ended and its counts, keeping the stage times and counts recorded on the way."""
        with self._tx() as conn:
            recorded: dict[str, Any] = conn.execute(sa.select(runs.c.stats).where(runs.c.id == run_id)).scalar_one() or {}
            kept = {"stage_seconds": recorded.get("stage_seconds", {})}
            if "counted" in recorded:  # a DAG run cleared and run again adds to what it counted before
                kept["counted"] = recorded["counted"]
            stats = json.loads(json.dumps(stats, default=str)) | kept
            conn.execute(runs.update().where(runs.c.id == run_id).values(finished_at=utc_now(), status=status, stats=stats))

    def fail_unfinished_run(self, airflow_run: str) -> bool:
        """Record the DAG run ``airflow_run`` failed unless it ended already; returns whether it was unfinished.

        For a DAG run that stopped before its last task could record how it ended (timed out, marked failed).
        """
        with self._tx() as conn:
            result = conn.execute(
                runs.update()
                .where(runs.c.airflow_run == airflow_run, runs.c.status.in_(("running", "abandoned")))
                .values(status="failed", finished_at=utc_now())
            )
            return bool(result.rowcount)


#: This machine, as runs and entry claims name it.
HOST = socket.gethostname()[:255]


def _record(row: Any, status: str) -> RunRecord:
    return RunRecord(
        id=row["id"],
        trigger=row["trigger"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        status=status,
        host=row["host"],
        pid=row["pid"],
        heartbeat_at=row["heartbeat_at"],
        stats=row["stats"] or {},
        airflow_run=row["airflow_run"],
    )


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
