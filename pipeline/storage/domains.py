"""The per-domain request clock every worker on the store shares, so politeness holds across processes."""

from __future__ import annotations

import time
from datetime import datetime

import sqlalchemy as sa

from pipeline.storage.base import StoreBase
from pipeline.storage.schema import domain_clock


class DomainClockStore(StoreBase):
    """When the next request to each registrable domain may start."""

    def reserve_domain_slot(self, domain: str, delay: float) -> float:
        """Reserve the next start of a request to ``domain``; returns it (seconds since the epoch).

        The slot is now, or ``delay`` seconds after the last slot reserved by any worker,
        whichever is later; one statement reads and moves the clock, so two workers never
        get the same slot. Wall-clock time: workers on several hosts need synchronised clocks.
        """
        now = time.time()
        later = sa.func.greatest if self.engine.dialect.name == "postgresql" else sa.func.max
        insert = self._insert(domain_clock).values(domain=domain, next_start=now + delay)
        stmt = insert.on_conflict_do_update(
            index_elements=["domain"], set_={"next_start": later(domain_clock.c.next_start, now) + delay}
        ).returning(domain_clock.c.next_start)
        with self._tx() as conn:
            return float(conn.execute(stmt).scalar_one()) - delay

    def prune_domain_clock(self, before: datetime) -> int:
        """Forget the domains whose last slot was before ``before``; returns how many.

        A slot in the past holds nobody back (the next one is "now" either way), so a
        forgotten domain's next request may start at once, as it could before.
        """
        with self._tx() as conn:
            return conn.execute(domain_clock.delete().where(domain_clock.c.next_start < before.timestamp())).rowcount
