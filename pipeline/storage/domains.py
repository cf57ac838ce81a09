"""The per-domain request clock every worker on the store shares, so politeness holds across processes."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from pipeline.storage.base import StoreBase
from pipeline.storage.schema import domain_clock


class DomainClockStore(StoreBase):
    """When the next request to each registrable domain may start."""

    def reserve_domain_slot(self, domain: str, delay: float) -> float:
        """Reserve the next start of a request to ``domain``; returns the seconds to wait for it.

        The slot is now, or ``delay`` seconds after the last slot reserved by any worker,
        whichever is later; one statement reads and moves the clock, so two workers never
        get the same slot. "Now" is the store's clock when the statement holds the clock's
        row: a worker that waited for another's transaction must not count from when it
        asked, or its slot is already past and its request starts with the next worker's.
        Only the store's clock is read, so slots need no synchronised clocks between hosts.
        """
        now: sa.ColumnElement[float]
        if self.engine.dialect.name == "postgresql":
            now = sa.func.date_part("epoch", sa.func.clock_timestamp())  # not now(): the transaction's start
        else:
            now = (sa.func.julianday("now") - 2440587.5) * 86400.0  # the statement's time, after BEGIN IMMEDIATE
        later = sa.func.greatest if self.engine.dialect.name == "postgresql" else sa.func.max
        insert = self._insert(domain_clock).values(domain=domain, next_start=now + delay)
        stmt = insert.on_conflict_do_update(
            index_elements=["domain"], set_={"next_start": later(domain_clock.c.next_start, now) + delay}
        ).returning(domain_clock.c.next_start - delay - now)
        with self._tx() as conn:
            return max(0.0, float(conn.execute(stmt).scalar_one()))

    def prune_domain_clock(self, before: datetime) -> int:
        """Forget the domains whose last slot was before ``before``; returns how many.

        A slot in the past holds nobody back (the next one is "now" either way), so a
        forgotten domain's next request may start at once, as it could before.
        """
        with self._tx() as conn:
            return conn.execute(domain_clock.delete().where(domain_clock.c.next_start < before.timestamp())).rowcount
