"""Feeds with their polling state, and the queue of entries whose pages are still to be fetched."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa

from pipeline.models import FeedEntry, FeedSource, Validators
from pipeline.storage.base import StoreBase, chunks
from pipeline.storage.schema import UTCDateTime, entries, feeds


# The columns the feed list sets; the rest is the feed's polling state.
_CONFIGURED = ("name", "url", "language", "tags", "poll_interval")


@dataclass(frozen=True, slots=True)
class FeedState:
    """A feed with its polling state, as `newsagg feeds status` shows it."""

    source: FeedSource
    validators: Validators
    status: Literal["active", "failing", "retired"]
    consecutive_failures: int
    last_error: str | None
    last_attempt_at: datetime | None
    last_success_at: datetime | None
    next_attempt_at: datetime | None
    entries_seen: int
    failure_score: float = 0.0  # consecutive failures weighted by kind (polling.failure_weight)
    learned_interval: int | None = None  # seconds, from how often the feed publishes (polling.adapt_interval)
    last_new_entry_at: datetime | None = None  # the last poll that found entries never seen before
    alerted_status: str | None = None  # the status last reported by an alert (None: never alerted, active)
    attempt_key: str | None = None  # the scheduled poll (an Airflow run id) that last polled the feed
    failing_since: datetime | None = None  # the first failure of the current streak (None: not failing)


@dataclass(frozen=True, slots=True)
class PendingEntry:
    """A feed entry whose page still has to be fetched, with the outlet it came from."""

    entry: FeedEntry
    outlet: str
    attempts: int


class FeedStore(StoreBase):
    """Feeds, their HTTP validators and health, and the entry queue."""

    def sync_feeds(self, sources: Sequence[FeedSource]) -> None:
        """Add or update configured feeds, keeping each feed's polling state."""
        insert = self._insert(feeds)
        # One statement for many rows: thousands of feeds are registered at every run.
        stmt = insert.on_conflict_do_update(
            index_elements=["id"], set_={name: insert.excluded[name] for name in _CONFIGURED}
        )
        rows = [
            {
                "id": src.id,
                "name": src.name,
                "url": src.url,
                "language": src.language,
                "tags": list(src.tags),
                "poll_interval": src.poll_interval,
                "status": "active",
                "consecutive_failures": 0,
                "entries_seen": 0,
            }
            for src in sources
        ]
        if rows:
            with self._tx() as conn:
                conn.execute(stmt, rows)  # SQLAlchemy sends the rows in batches ("insertmanyvalues")

    def feed_states(self, ids: Iterable[str] | None = None) -> list[FeedState]:
        """The feeds (those of ``ids``, or all) by id."""
        if ids is not None:  # in chunks: a feed list may have more feeds than a statement takes parameters
            found = self._rows_by(feeds, feeds.c.id, ids, _feed_state)
            return [found[feed_id] for feed_id in sorted(found)]
        with self.engine.connect() as conn:
            return [_feed_state(row) for row in conn.execute(sa.select(feeds).order_by(feeds.c.id)).mappings()]

    def feed_state(self, feed_id: str) -> FeedState | None:
        states = self.feed_states([feed_id])
        return states[0] if states else None

    def record_feed_fetched(
        self,
        feed_id: str,
        new_entries: Sequence[FeedEntry],
        validators: Validators,
        *,
        now: datetime,
        next_attempt_at: datetime,
        error: str | None = None,
        learned_interval: int | None = None,
        attempt: str | None = None,
    ) -> int:
        """Queue a feed's entries (unseen ones only) and remember its validators; returns how many were new.

        The feed's failure count, score and streak are reset; ``learned_interval`` (when
        given) replaces the learned polling interval; a poll that found new entries is
        remembered as the last one that did; ``attempt`` is the scheduled poll's key.
        """
        with self._tx() as conn:
            added = 0
            # One statement for every entry: building a statement per row cost more than running it.
            insert = self._insert(entries).on_conflict_do_nothing(index_elements=["url"])
            for entry in new_entries:
                row = {
                    "url": entry.url,
                    "feed_id": entry.feed_id,
                    "title": entry.title,
                    "summary": entry.summary,
                    "content": entry.content,
                    "author": entry.author,
                    "published": entry.published,
                    "guid": entry.guid,
                    "discovered_at": now,
                    "state": "pending",
                    "attempts": 0,
                }
                added += conn.execute(insert, row).rowcount
            conn.execute(
                feeds.update()
                .where(feeds.c.id == feed_id)
                .values(
                    etag=validators.etag,
                    last_modified=validators.last_modified,
                    status="active",
                    consecutive_failures=0,
                    last_error=error,
                    last_attempt_at=now,
                    last_success_at=now,
                    next_attempt_at=next_attempt_at,
                    entries_seen=feeds.c.entries_seen + added,
                    failure_score=0.0,
                    last_new_entry_at=now if added else feeds.c.last_new_entry_at,
                    learned_interval=feeds.c.learned_interval if learned_interval is None else learned_interval,
                    attempt_key=attempt,
                    failing_since=None,
                )
            )
        return added

    def record_feed_failure(
        self,
        feed_id: str,
        error: str,
        *,
        now: datetime,
        next_attempt_at: datetime | None,
        retire: bool,
        weight: float = 1.0,
        attempt: str | None = None,
        counted: bool = True,
    ) -> FeedState:
        """Record a failed poll; returns the feed's new state.

        A counted failure adds one to the failures in a row and ``weight`` to the failure
        score; one that is not (a retry of the scheduled poll ``attempt`` that already
        failed) only updates the error and the times. The streak starts at the first failure.
        """
        with self._tx() as conn:
            conn.execute(
                feeds.update()
                .where(feeds.c.id == feed_id)
                .values(
                    status="retired" if retire else "failing",
                    consecutive_failures=feeds.c.consecutive_failures + (1 if counted else 0),
                    failure_score=feeds.c.failure_score + (weight if counted else 0.0),
                    last_error=error,
                    last_attempt_at=now,
                    next_attempt_at=None if retire else next_attempt_at,
                    attempt_key=attempt,
                    failing_since=sa.func.coalesce(feeds.c.failing_since, sa.literal(now, UTCDateTime())),
                )
            )
        state = self.feed_state(feed_id)
        assert state is not None
        return state

    def record_feed_alerted(self, feed_id: str, status: str) -> None:
        """Remember the feed status an alert reported, so each change is reported once."""
        with self._tx() as conn:
            conn.execute(feeds.update().where(feeds.c.id == feed_id).values(alerted_status=status))

    def unseen_entry_count(self, urls: Iterable[str]) -> int:
        """How many of these entry URLs were never queued before."""
        wanted = set(urls)
        seen = 0
        with self.engine.connect() as conn:
            for chunk in chunks(sorted(wanted), 500):
                seen += int(
                    conn.execute(
                        sa.select(sa.func.count()).select_from(entries).where(entries.c.url.in_(chunk))
                    ).scalar_one()
                )
        return len(wanted) - seen

    # -- entries -------------------------------------------------------------------

    def pending_entries(self, limit: int, max_attempts: int = 3) -> list[PendingEntry]:
        query = (
            sa.select(entries, feeds.c.name)
            .join(feeds, feeds.c.id == entries.c.feed_id)
            .where(entries.c.state == "pending", entries.c.attempts < max_attempts)
            .order_by(entries.c.discovered_at, entries.c.url)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [
                PendingEntry(
                    entry=FeedEntry(
                        feed_id=row["feed_id"],
                        url=row["url"],
                        title=row["title"],
                        summary=row["summary"],
                        content=row["content"],
                        author=row["author"],
                        published=row["published"],
                        guid=row["guid"],
                    ),
                    outlet=row["name"],
                    attempts=row["attempts"],
                )
                for row in conn.execute(query).mappings()
            ]
    def record_entry_failure(self, url: str, reason: str, *, final: bool) -> None:
        with self._tx() as conn:
            conn.execute(
                entries.update()
                .where(entries.c.url == url)
                .values(
                    attempts=entries.c.attempts + 1,
                    last_error=reason,
                    state="failed" if final else "pending",
                )
            )

    def entry_counts(self) -> dict[str, int]:
        query = sa.select(entries.c.state, sa.func.count()).group_by(entries.c.state)
        with self.engine.connect() as conn:
            rows: list[Any] = list(conn.execute(query))
        return {row[0]: row[1] for row in rows}

def _feed_state(row: Any) -> FeedState:
    return FeedState(
        source=FeedSource(
            id=row["id"],
            name=row["name"],
            url=row["url"],
            language=row["language"],
            tags=tuple(row["tags"] or ()),
            poll_interval=row["poll_interval"],
        ),
        validators=Validators(etag=row["etag"], last_modified=row["last_modified"]),
        status=row["status"],
        consecutive_failures=row["consecutive_failures"],
        last_error=row["last_error"],
        last_attempt_at=row["last_attempt_at"],
        last_success_at=row["last_success_at"],
        next_attempt_at=row["next_attempt_at"],
        entries_seen=row["entries_seen"],
        failure_score=row["failure_score"],
        learned_interval=row["learned_interval"],
        last_new_entry_at=row["last_new_entry_at"],
        alerted_status=row["alerted_status"],
        attempt_key=row["attempt_key"],
        failing_since=row["failing_since"],
    )


