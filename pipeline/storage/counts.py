"""What the store holds, counted: the figures `newsagg metrics` reports.

Each figure is one COUNT, grouped by an indexed column where it is grouped, so a scrape
stays cheap however many articles the store holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pipeline.storage.base import StoreBase
from pipeline.storage.schema import articles, dead_letters, entries, feeds, outbox, stories


@dataclass(frozen=True, slots=True)
class StoreCounts:
    """How many of each thing the store holds."""

    articles: dict[str, int]  # by text source (page, feed_content, feed_summary, input)
    stories: int
    feeds: dict[str, int]  # by status (active, failing, retired, removed)
    entries: dict[str, int]  # feed entries by state (pending: page not fetched yet, done, failed)
    outbox: int  # documents waiting for the search index
    dead_letters: int  # documents the search index refused too often (`newsagg outbox list`)


class CountStore(StoreBase):
    """The counts of what the store holds."""

    def counts(self) -> StoreCounts:
        """Every count, read on one connection."""
        with self._read() as conn:
            return StoreCounts(
                articles=_grouped(conn, articles.c.text_source),
                stories=_count(conn, stories),
                feeds=_grouped(conn, feeds.c.status),
                entries=_grouped(conn, entries.c.state),
                outbox=_count(conn, outbox),
                dead_letters=_count(conn, dead_letters),
            )


def _count(conn: Connection, table: sa.Table) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def _grouped(conn: Connection, column: sa.Column[Any]) -> dict[str, int]:
    rows: list[Any] = list(conn.execute(sa.select(column, sa.func.count()).group_by(column)))
    return {str(row[0]): int(row[1]) for row in rows}
