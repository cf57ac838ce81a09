"""The record of pipeline runs."""

from __future__ import annotations

import json
from typing import Any

from pipeline.storage.base import StoreBase, utc_now
from pipeline.storage.schema import runs


class RunStore(StoreBase):
    """One row per run: when, what triggered it, how it ended, its counts."""

    def start_run(self, trigger: str) -> int:
        with self._tx() as conn:
            result = conn.execute(runs.insert().values(trigger=trigger, started_at=utc_now(), status="running"))
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])

    def finish_run(self, run_id: int, status: str, stats: dict[str, Any]) -> None:
        with self._tx() as conn:
            conn.execute(
                runs.update()
                .where(runs.c.id == run_id)
                .values(finished_at=utc_now(), status=status, stats=json.loads(json.dumps(stats, default=str)))
            )

