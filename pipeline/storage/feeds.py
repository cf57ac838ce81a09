"""Feeds with their polling state, and the queue of entries whose pages are still to be fetched."""

from __future__ import annotations

import itertools
import math
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, OperationalError

from pipeline.fetching.politeness import registrable_domain
from pipeline.models import FeedEntry, FeedSource, Validators
from pipeline.storage.base import StoreBase, chunks, utc_now
from pipeline.storage.runs import HOST, process_gone
from pipeline.storage.schema import ADVISORY_LOCKS, UTCDateTime, alert_digests, entries, feeds
from pipeline.urls import feed_url_key, unused_id

#: How many times a claim's size of entries (each feed's oldest first) a claim picks from,
#: round-robin over their sites: a run's batches mix many sites' entries, not only the oldest feed's.
CLAIM_SPREAD = 10
# The columns the feed list sets; the rest is the feed's polling state.
_CONFIGURED = ("name", "url", "language", "tags", "poll_interval", "kind", "cross_host")
# A feed brought back by the user (reactivated, listed again, moved): its failures are forgotten, it
# is polled at once, and alerts report its next change from "active", not a recovery from the last one.
_REACTIVATED: dict[str, Any] = {
    "status": "active",
    "consecutive_failures": 0,
    "failure_score": 0.0,
    "last_error": None,
    "next_attempt_at": None,
    "alerted_status": None,
}
# A feed the user took out of the feed list; alerts have nothing to say about it.
_REMOVED: dict[str, Any] = {"status": "removed", "next_attempt_at": None, "alerted_status": "removed"}


@dataclass(frozen=True, slots=True)
class FeedState:
    """A feed with its polling state, as `newsagg feeds status` shows it."""

    source: FeedSource
    validators: Validators
    status: Literal["active", "failing", "retired", "removed"]  # removed: no longer in the feed list
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
    high_water: datetime | None = None  # a sitemap's newest URL date taken (pipeline.feeds.sitemaps)


@dataclass(frozen=True, slots=True)
class PendingEntry:
    """A feed entry whose page still has to be fetched, with the outlet it came from."""

    entry: FeedEntry
    outlet: str
    attempts: int
    language: str | None = None  # the feed's declared language and tags (feeds.yaml)
    tags: tuple[str, ...] = ()
    revisit: bool = False  # fetched before; queued again because its feed entry was updated
    validators: Validators = Validators()  # of the page's last fetch, for a revisit's conditional GET


class FeedStore(StoreBase):
    """Feeds, their HTTP validators and health, and the entry queue."""

    def sync_feeds(self, sources: Sequence[FeedSource], *, whole_list: bool = False) -> list[FeedSource]:
        """Register the feeds of a feed list, matched to the stored ones by URL; returns them with the store's ids.

        A feed is known by its URL (``urls.feed_url_key``): a stored feed keeps its id,
        polling state, validators and history whatever its name or place in the list, and
        takes the list's name, language, tags and poll interval. A new feed is stored under
        the id it comes with (``load_feed_list``: the slug of its name), suffixed ``-2``,
        ``-3``... when a stored feed has that id. A removed feed listed again is active
        again, with its history and without its failures.

        Args:
            sources: the feeds, e.g. from ``load_feed_list``.
            whole_list: ``sources`` is the whole subscription list: stored feeds not in it
                are marked removed (kept with their history, never polled).

        Returns:
            ``sources`` in their order, each with the id the store knows it by.
        """
        registered: list[FeedSource] = []
        new: list[dict[str, Any]] = []
        changed: dict[bool, list[dict[str, Any]]] = {False: [], True: []}  # by whether the feed comes back
        with self._tx("the feed list") as conn:
            if self.engine.dialect.name == "postgresql":
                # Two processes registering the same new feed at once would both insert it.
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(ADVISORY_LOCKS["feed_list"])))
            rows = list(conn.execute(sa.select(feeds.c.id, feeds.c.url_key, feeds.c.status)))
            stored = {row.url_key: (row.id, row.status) for row in rows if row.url_key is not None}
            taken = {row.id for row in rows}
            listed: set[str] = set()
            for src in sources:
                key = feed_url_key(src.url) or src.url
                listed.add(key)
                values = {name: getattr(src, name) for name in _CONFIGURED} | {"tags": list(src.tags)}
                feed_id, status = stored.get(key) or (unused_id(src.id, taken), None)
                if status is None:
                    new.append({**values, "id": feed_id, "url_key": key, "status": "active",
                                "consecutive_failures": 0, "entries_seen": 0})
                else:
                    changed[status == "removed"].append({**values, "feed_id": feed_id})
                stored[key] = (feed_id, "active" if status in (None, "removed") else status)
                registered.append(replace(src, id=feed_id))
            # Thousands of feeds are registered at every run: one statement for each kind of row.
            self._write_feed_rows(conn, new, changed)
            if whole_list:
                # Rows of an old store that lost their URL to another row have no key (revision 0002).
                gone = [row.id for row in rows if (row.url_key is None or row.url_key not in listed)
                        and row.status != "removed"]
                for chunk in chunks(gone, 500):
                    conn.execute(feeds.update().where(feeds.c.id.in_(chunk)).values(**_REMOVED))
        return registered

    def _write_feed_rows(
        self,
        conn: Connection,
        new: list[dict[str, Any]],
        changed: dict[bool, list[dict[str, Any]]],
    ) -> None:
        """Insert the new feeds and update the known ones (``changed[True]``: coming back), naming a refused one."""
        statements: list[tuple[Any, list[dict[str, Any]]]] = [(feeds.insert(), new)]
        for back, rows in changed.items():
            update = feeds.update().where(feeds.c.id == sa.bindparam("feed_id"))
            statements.append((update.values(**(_REACTIVATED if back else {})), rows))
        try:
            with conn.begin_nested():
                for statement, rows in statements:
                    if rows:
                        conn.execute(statement, rows)
        except OperationalError:
            raise  # the store failed (its connection ended, a lock wait timed out), no feed: _tx says so
        except DBAPIError:
            # Find the feed the database refuses, to name it; the transaction writes nothing.
            for statement, rows in statements:
                for row in rows:
                    feed_id = row.get("id") or row["feed_id"]
                    with self._refused(f"feed {feed_id} ({row['url']})"), conn.begin_nested():
                        conn.execute(statement, row)
            raise

    def find_feed(self, url_or_id: str) -> FeedState | None:
        """The stored feed with this URL (as ``feed_url_key`` spells it), else with this id."""
        key = feed_url_key(url_or_id)
        query = sa.select(feeds).where(feeds.c.url_key == key if key is not None else feeds.c.id == url_or_id)
        with self._read() as conn:
            row = conn.execute(query).mappings().first()
        return _feed_state(row) if row is not None else None

    def remove_feed(self, feed_id: str) -> None:
        """Mark a feed removed from the feed list: never polled, its history kept for when it comes back."""
        with self._tx(f"feed {feed_id}") as conn:
            conn.execute(feeds.update().where(feeds.c.id == feed_id).values(**_REMOVED))

    def reactivate_feed(self, feed_id: str) -> None:
        """Make a feed active again (a retired one too), without its failures, to be polled at once."""
        with self._tx(f"feed {feed_id}") as conn:
            conn.execute(feeds.update().where(feeds.c.id == feed_id).values(**_REACTIVATED))

    def move_feed(self, feed_id: str, url: str) -> None:
        """Give a feed a new URL, keeping its id and history.

        Its validators and failures belonged to the old URL: they go, and the feed is
        active, to be polled at once.
        """
        with self._tx(f"feed {feed_id} ({url})") as conn:
            conn.execute(
                feeds.update()
                .where(feeds.c.id == feed_id)
                .values(url=url, url_key=feed_url_key(url) or url, etag=None, last_modified=None, **_REACTIVATED)
            )

    def feed_states(self, ids: Iterable[str] | None = None) -> list[FeedState]:
        """The feeds (those of ``ids``, or all) by id."""
        if ids is not None:  # in chunks: a feed list may have more feeds than a statement takes parameters
            found = self._rows_by(feeds, feeds.c.id, ids, _feed_state)
            return [found[feed_id] for feed_id in sorted(found)]
        with self._read() as conn:
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
        high_water: datetime | None = None,
        not_modified: bool = False,
    ) -> int:
        """Queue a feed's entries (unseen ones only) and remember its validators; returns how many were new.

        An entry already fetched whose feed update time (``FeedEntry.updated``) is later
        than the one stored is queued again as a revisit: its page is fetched again
        (conditionally) and a changed text becomes a new revision of its article
        (``ArticleStore.revise_article``). The feed's failure count, score and streak are
        reset; ``learned_interval`` (when given) replaces the learned polling interval; a
        poll that found new entries is remembered as the last one that did; ``attempt`` is
        the scheduled poll's key, remembered with what it did (``attempt_outcomes``): "ok", or
        "not_modified" when the feed answered so; ``high_water`` (when given) becomes a sitemap's
        high-water mark.
        """
        with self._tx(f"the entries of feed {feed_id}") as conn:
            # One statement for every entry: building a statement per row cost more than running it.
            insert = self._insert(entries).on_conflict_do_nothing(index_elements=["url"])
            # A known entry updated since: the time recorded, and one already fetched queued again.
            # An entry stored before update times were kept (NULL) only records it.
            fetched_before = sa.and_(entries.c.updated.is_not(None), entries.c.state == "done")
            revisit = (
                entries.update()
                .where(
                    entries.c.url == sa.bindparam("entry_url"),
                    sa.or_(entries.c.updated.is_(None), entries.c.updated < sa.bindparam("new_updated", type_=UTCDateTime())),
                )
                .values(
                    updated=sa.bindparam("new_updated", type_=UTCDateTime()),
                    revisit=sa.or_(entries.c.revisit, fetched_before),
                    state=sa.case((fetched_before, "pending"), else_=entries.c.state),
                    attempts=sa.case((fetched_before, 0), else_=entries.c.attempts),
                    title=sa.bindparam("new_title"),
                    summary=sa.bindparam("new_summary"),
                    content=sa.bindparam("new_content"),
                )
            )
            rows = [
                {
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
                    "updated": entry.updated,
                    "revisit": False,
                }
                for entry in new_entries
            ]
            inserted: set[str] = set()
            for part in chunks(rows, 500):
                inserted.update(conn.execute(insert.returning(entries.c.url), part).scalars())
            added = len(inserted)
            # As if one row at a time: an entry not inserted (known, or twice in this feed) may be a revisit.
            revisits = []
            for entry in new_entries:
                if entry.url in inserted:
                    inserted.discard(entry.url)  # a second copy of it in this feed is not new
                elif entry.updated is not None:
                    revisits.append({"entry_url": entry.url, "new_updated": entry.updated, "new_title": entry.title,
                                     "new_summary": entry.summary, "new_content": entry.content})
            if revisits:
                conn.execute(revisit, revisits)
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
                    attempt_outcome=sa.null() if attempt is None else {
                        "status": "not_modified" if not_modified else "ok", "new_entries": added},
                    failing_since=None,
                    high_water=feeds.c.high_water if high_water is None else high_water,
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
        transient: bool = False,
    ) -> FeedState:
        """Record a failed poll; returns the feed's new state.

        A counted failure adds one to the failures in a row and ``weight`` to the failure
        score; one that is not (a retry of the scheduled poll ``attempt`` that already
        failed) only updates the error and the times. The streak starts at the first failure.
        ``attempt`` is remembered with the failure (``attempt_outcomes``; ``transient``: one that
        polling again later may cure).
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
                    attempt_outcome=sa.null() if attempt is None else {
                        "status": "retired" if retire else "failed", "error": error, "transient": transient},
                    failing_since=sa.func.coalesce(feeds.c.failing_since, sa.literal(now, UTCDateTime())),
                )
            )
        state = self.feed_state(feed_id)
        assert state is not None
        return state

    def attempt_outcomes(self, attempt: str) -> dict[str, dict[str, Any]]:
        """What the scheduled poll ``attempt`` (an Airflow run id) did to each feed it polled last, by feed id.

        A feed polled again since by another attempt (or by `newsagg run`) is that one's.
        """
        query = sa.select(feeds.c.id, feeds.c.attempt_outcome).where(
            feeds.c.attempt_key == attempt, feeds.c.attempt_outcome.is_not(None)
        )
        with self._read() as conn:
            return {row.id: dict(row.attempt_outcome) for row in conn.execute(query.order_by(feeds.c.id))}

    def unalerted_feed_states(self) -> list[FeedState]:
        """The feeds whose status is not the one the last alert reported (never alerted: active)."""
        reported = sa.func.coalesce(feeds.c.alerted_status, "active")
        with self._read() as conn:
            rows = conn.execute(sa.select(feeds).where(feeds.c.status != reported).order_by(feeds.c.id))
            return [_feed_state(row) for row in rows.mappings()]

    def record_feeds_alerted(
        self, statuses: Mapping[str, str], *, destination: str | None = None, at: datetime | None = None
    ) -> None:
        """Remember the status each feed's alert reported, so each change is reported once; with
        ``destination``, also that a digest went there ``at`` then (in the same transaction)."""
        with self._tx() as conn:
            for feed_id, status in statuses.items():
                conn.execute(feeds.update().where(feeds.c.id == feed_id).values(alerted_status=status))
            if destination is not None and at is not None:
                stmt = self._insert(alert_digests).values(destination=destination, sent_at=at)
                conn.execute(stmt.on_conflict_do_update(index_elements=["destination"], set_={"sent_at": at}))

    def alert_digest_sent_at(self, destination: str) -> datetime | None:
        """When the last alert digest went to ``destination``, if ever."""
        with self._read() as conn:
            query = sa.select(alert_digests.c.sent_at).where(alert_digests.c.destination == destination)
            sent_at: datetime | None = conn.execute(query).scalar()
            return sent_at

    def unseen_entry_count(self, urls: Iterable[str]) -> int:
        """How many of these entry URLs were never queued before."""
        wanted = set(urls)
        seen = 0
        with self._read() as conn:
            for chunk in chunks(sorted(wanted), 500):
                seen += int(
                    conn.execute(
                        sa.select(sa.func.count()).select_from(entries).where(entries.c.url.in_(chunk))
                    ).scalar_one()
                )
        return len(wanted) - seen

    # -- entries -------------------------------------------------------------------

    @staticmethod
    def new_worker() -> str:
        """A name for one pass over the queue by this process, unique among workers ("host/pid/random")."""
        return f"{HOST[:50]}/{os.getpid()}/{uuid.uuid4().hex[:12]}"

    def pending_entries(self, limit: int, max_attempts: int = 3) -> list[PendingEntry]:
        """Entries whose page is still to be fetched, oldest first, whether or not a worker holds them."""
        query = (
            sa.select(entries, feeds.c.name, feeds.c.language.label("feed_language"), feeds.c.tags)
            .join(feeds, feeds.c.id == entries.c.feed_id)
            .where(entries.c.state == "pending", entries.c.attempts < max_attempts)
            .order_by(entries.c.discovered_at, entries.c.url)
            .limit(limit)
        )
        with self._read() as conn:
            return [_pending_entry(row) for row in conn.execute(query).mappings()]

    def entries_by_url(self, urls: Iterable[str]) -> dict[str, PendingEntry]:
        """The feed entries with these URLs, whatever their state, with their feeds' outlet, language and tags."""
        found: dict[str, PendingEntry] = {}
        with self._read() as conn:
            for chunk in chunks(list(urls), 500):
                query = (
                    sa.select(entries, feeds.c.name, feeds.c.language.label("feed_language"), feeds.c.tags)
                    .join(feeds, feeds.c.id == entries.c.feed_id)
                    .where(entries.c.url.in_(chunk))
                )
                found.update((row["url"], _pending_entry(row)) for row in conn.execute(query).mappings())
        return found

    def claim_entries(
        self, limit: int, worker: str, *, lease_seconds: float, max_attempts: int = 3, now: datetime | None = None
    ) -> list[PendingEntry]:
        """Take up to ``limit`` pending entries for ``worker`` until the lease ends; renews its other claims.

        An entry is free when no lease holds it or its lease has ended (its worker died);
        a worker does not take back an entry it released (a page deferred by
        ``record_entry_failure``): ``worker`` names one pass, and the next pass retries it.
        The entries are taken round-robin over their sites (registrable domains) from the
        ``limit * CLAIM_SPREAD`` first free entries of every feed: each feed's oldest, then
        each one's second oldest, and so on. A feed's entries are discovered together, and a
        batch of one site's pages was fetched at its polite pace while every other site waited
        for the next batch; a first run discovers whole backlogs feed after feed. Only each
        feed's first few free entries are read (by an index), so a claim costs the same
        beside a backlog of a million.

        Claims are made one at a time, each seeing the ones before it committed: on SQLite the
        transaction's first statement is a write, so it holds the database's write lock
        before it reads; on PostgreSQL a claim holds an advisory lock. Locking the candidates
        instead (FOR UPDATE SKIP LOCKED) left nothing to a worker claiming beside another,
        which held every candidate while it chose among them. A claim takes tens of
        milliseconds (bench/README.md); a batch's downloads, seconds.
        """
        now = now or utc_now()
        until = now + timedelta(seconds=lease_seconds)

        def free(queued: sa.FromClause, state: sa.ColumnElement[str]) -> tuple[sa.ColumnElement[bool], ...]:
            return (
                state == "pending",
                queued.c.attempts < max_attempts,
                sa.or_(queued.c.lease_until.is_(None), queued.c.lease_until <= now),
                sa.or_(queued.c.claimed_by.is_(None), queued.c.claimed_by != worker),
            )

        queued = entries.alias("queued")
        oldest = (entries.c.discovered_at, entries.c.url)
        turn = sa.func.row_number().over(partition_by=entries.c.feed_id, order_by=oldest).label("turn")
        spread = limit * CLAIM_SPREAD

        def candidates(conn: Connection, per_feed: int) -> list[str]:
            """The first ``spread`` of each feed's first ``per_feed`` free entries (a known outlet's,
            as pending_entries), read feed by feed by ix_entries_feed_queue."""
            feeds_first = (
                sa.select(queued.c.url)
                .where(queued.c.feed_id == feeds.c.id, *free(queued, queued.c.state))
                .order_by(queued.c.discovered_at, queued.c.url)
                .limit(per_feed)
            )
            turns = (
                sa.select(entries.c.url, entries.c.discovered_at, turn)
                .select_from(feeds.join(entries, entries.c.url.in_(feeds_first)))
                .subquery()
            )
            query = sa.select(turns.c.url).order_by(turns.c.turn, turns.c.discovered_at, turns.c.url).limit(spread)
            return list(conn.execute(query).scalars())

        with self._tx() as conn:
            if self.engine.dialect.name == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(ADVISORY_LOCKS["claims"])))
            self._renew(conn, worker, until)
            # Ranking the whole backlog cost seconds a claim at a million entries. A claim takes at
            # most ``limit`` entries, so it picks from each feed's first ``limit`` free ones: where
            # every feed's pages are on one site, as round-robin over sites assumes, the choice is
            # the same. First each feed's first few, as many as the spread takes from every feed
            # alike: when they fill it, the candidates are those too, from far fewer rows.
            known_feeds = conn.execute(sa.select(sa.func.count()).select_from(feeds)).scalar_one()
            few = min(limit, math.ceil(spread / max(1, known_feeds)))
            chosen_from = candidates(conn, few)
            if len(chosen_from) < spread and few < limit:
                chosen_from = candidates(conn, limit)
            if not chosen_from:
                return []
            # Free still when updated: a late worker may have finished one whose lease had ended.
            take = (
                entries.update()
                .where(entries.c.url.in_(_round_robin(chosen_from, limit)), *free(entries, _unindexed(entries.c.state)))
                .values(claimed_by=worker, lease_until=until)
                .returning(entries.c.url)
            )
            claimed: list[str] = list(conn.execute(take).scalars())
            query = (
                sa.select(entries, feeds.c.name, feeds.c.language.label("feed_language"), feeds.c.tags)
                .join(feeds, feeds.c.id == entries.c.feed_id)
                .where(entries.c.url.in_(claimed))
                .order_by(entries.c.discovered_at, entries.c.url)
            )
            return [_pending_entry(row) for row in conn.execute(query).mappings()]

    def release_dead_claims(self) -> None:
        """Free at once the entries held by workers of this host whose process ended (killed, failed)."""
        holders = sa.select(entries.c.claimed_by).distinct()
        with self._read() as conn:
            query = holders.where(_unindexed(entries.c.state) == "pending", entries.c.lease_until.is_not(None))
            workers: list[str | None] = list(conn.execute(query).scalars())
        for worker in filter(None, workers):
            host, _, rest = worker.partition("/")
            pid = rest.partition("/")[0]
            if pid.isdigit() and process_gone(host, int(pid)):
                self.release_claims(worker)

    def renew_claims(self, worker: str, *, lease_seconds: float) -> None:
        """Extend the lease of every entry ``worker`` still holds."""
        with self._tx() as conn:
            self._renew(conn, worker, utc_now() + timedelta(seconds=lease_seconds))

    def release_claims(self, worker: str) -> None:
        """Free the entries ``worker`` holds and did not finish, for the next worker to take at once."""
        with self._tx() as conn:
            conn.execute(
                entries.update()
                .where(entries.c.claimed_by == worker, entries.c.lease_until.is_not(None), entries.c.state == "pending")
                .values(lease_until=None)
            )

    @staticmethod
    def _renew(conn: Connection, worker: str, until: datetime) -> None:
        conn.execute(
            entries.update()
            .where(entries.c.claimed_by == worker, entries.c.lease_until.is_not(None), entries.c.state == "pending")
            .values(lease_until=until)
        )

    def record_entry_failure(self, url: str, reason: str, *, final: bool) -> None:
        """Count a failed attempt at an entry's page and release the entry (``final``: give it up)."""
        with self._tx() as conn:
            conn.execute(
                entries.update()
                .where(entries.c.url == url)
                .values(
                    attempts=entries.c.attempts + 1,
                    last_error=reason,
                    # A revisit that fails leaves the article as it was: the entry is done.
                    state=sa.case((entries.c.revisit, "done"), else_="failed") if final else "pending",
                    revisit=sa.false() if final else entries.c.revisit,
                    lease_until=None,
                )
            )

    def feed_entry(self, url: str) -> FeedEntry | None:
        """The feed entry stored under ``url`` (an article's page or entry key), if any."""
        with self._read() as conn:
            row = conn.execute(sa.select(entries).where(entries.c.url == url)).mappings().first()
        return None if row is None else _feed_entry(row)

    def waiting_entries(self) -> dict[str, int]:
        """How many entries of each feed wait for their page to be fetched, by feed id (none: absent)."""
        query = sa.select(entries.c.feed_id, sa.func.count()).where(entries.c.state == "pending").group_by(entries.c.feed_id)
        with self._read() as conn:
            rows: list[Any] = list(conn.execute(query))
        return {row[0]: row[1] for row in rows}

    def entry_counts(self) -> dict[str, int]:
        query = sa.select(entries.c.state, sa.func.count()).group_by(entries.c.state)
        with self._read() as conn:
            rows: list[Any] = list(conn.execute(query))
        return {row[0]: row[1] for row in rows}


def _feed_entry(row: Any) -> FeedEntry:
    return FeedEntry(
        feed_id=row["feed_id"],
        url=row["url"],
        title=row["title"],
        summary=row["summary"],
        content=row["content"],
        author=row["author"],
        published=row["published"],
        guid=row["guid"],
        updated=row["updated"],
    )


def _round_robin(urls: Sequence[str], limit: int) -> list[str]:
    """Up to ``limit`` of ``urls``: each site's first, then each one's second, and so on.

    A site is the registrable domain of the page's host, which the fetcher's politeness
    delay is kept per: a publisher's section feeds (world, business, sport) are one site.
    """
    by_site: dict[str, list[str]] = {}
    for url in urls:
        by_site.setdefault(registrable_domain(urlsplit(url).hostname or ""), []).append(url)
    taken: list[str] = []
    for turn in itertools.zip_longest(*by_site.values()):
        taken.extend(url for url in turn if url is not None)
        if len(taken) >= limit:
            break
    return taken[:limit]


def _unindexed(state: sa.ColumnElement[str]) -> sa.ColumnElement[str]:
    """An entry's state as an expression that no index serves.

    SQLite without statistics (a store never runs ANALYZE) takes any index for selective, and
    read every pending entry by the index on the state instead of the URLs' or the leases'.
    """
    return state.concat("")


def _pending_entry(row: Any) -> PendingEntry:
    return PendingEntry(
        entry=_feed_entry(row),
        outlet=row["name"],
        attempts=row["attempts"],
        language=row["feed_language"],
        tags=tuple(row["tags"] or ()),
        revisit=bool(row["revisit"]),
        validators=Validators(etag=row["etag"], last_modified=row["last_modified"]),
    )


def _feed_state(row: Any) -> FeedState:
    return FeedState(
        source=FeedSource(
            id=row["id"],
            name=row["name"],
            url=row["url"],
            language=row["language"],
            tags=tuple(row["tags"] or ()),
            poll_interval=row["poll_interval"],
            kind=row["kind"],
            cross_host=row["cross_host"],
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
        high_water=row["high_water"],
    )


