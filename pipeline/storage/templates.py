"""The outlets' template blocks (pipeline.templates): fingerprints counted per outlet and registrable domain."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

import sqlalchemy as sa
import xxhash
from sqlalchemy.engine import Connection

from pipeline.storage.base import StoreBase
from pipeline.storage.schema import TEMPLATE_LOCK_CLASS, template_blocks
from pipeline.templates import KnownBlock, Site


class TemplateStore(StoreBase):
    """Per outlet (``Site``), on how many distinct articles each block appeared, shared by every worker."""

    def _lock_site(self, conn: Connection, site: Site) -> None:
        """Serialise the template counts of one outlet until the transaction ends.

        Two workers storing articles of one site at once would each read a count and
        write it plus one, losing one. SQLite's write transactions are serial already.
        """
        if self.engine.dialect.name == "postgresql":
            key = xxhash.xxh32_intdigest(f"{site.domain}\n{site.outlet}".encode()) - (1 << 31)
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(TEMPLATE_LOCK_CLASS, key)))

    # Statements built once per store: building them cost more than running them.
    @cached_property
    def _known_query(self) -> sa.Select[Any]:
        return sa.select(template_blocks).where(
            template_blocks.c.domain == sa.bindparam("domain"),
            template_blocks.c.outlet == sa.bindparam("outlet"),
            template_blocks.c.fingerprint.in_(sa.bindparam("fingerprints", expanding=True)),
        )

    @cached_property
    def _upsert_blocks(self) -> Any:
        stmt = self._insert(template_blocks)
        return stmt.on_conflict_do_update(
            index_elements=["domain", "outlet", "fingerprint"],
            set_={name: stmt.excluded[name] for name in ("weight", "articles", "last_seen")},
        )

    def _known_blocks(self, conn: Connection, site: Site, fingerprints: Collection[int]) -> dict[int, KnownBlock]:
        if not fingerprints:
            return {}
        rows = conn.execute(
            self._known_query, {"domain": site.domain, "outlet": site.outlet, "fingerprints": list(fingerprints)}
        )
        return {
            row.fingerprint: KnownBlock(weight=row.weight, articles=row.articles, last_seen=row.last_seen)
            for row in rows
        }

    def _save_blocks(self, conn: Connection, site: Site, blocks: Mapping[int, KnownBlock]) -> None:
        if blocks:
            conn.execute(self._upsert_blocks, [
                {"domain": site.domain, "outlet": site.outlet, "fingerprint": fp, "weight": b.weight,
                 "articles": b.articles, "last_seen": b.last_seen}
                for fp, b in blocks.items()
            ])

    def forget_template_blocks(self, now: datetime, half_life_days: float) -> int:
        """Delete the blocks whose decayed count fell below half an article; returns how many.

        A count in [2^(k-1), 2^k) falls below it after at most k+1 half-lives: one
        statement per such band, each deleting what is surely forgotten.
        """
        deleted = 0
        half_life = timedelta(days=half_life_days)
        with self._tx("template blocks") as conn:
            heaviest = conn.execute(sa.select(sa.func.max(template_blocks.c.weight))).scalar() or 0.0
            k = 1
            while 2.0 ** (k - 1) <= heaviest:
                band = (template_blocks.c.weight >= (2.0 ** (k - 1) if k > 1 else 0.0), template_blocks.c.weight < 2.0 ** k)
                cutoff = now - (k + 1) * half_life
                deleted += int(conn.execute(template_blocks.delete().where(*band, template_blocks.c.last_seen < cutoff)).rowcount)
                k += 1
        return deleted
