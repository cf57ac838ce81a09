"""Merged stories, and the outbox of documents the search index has still to receive."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pipeline.models import IndexFailure, Source, Story
from pipeline.storage.base import StoreBase, chunks, queued_again, utc_now
from pipeline.storage.schema import (
    article_revisions,
    articles,
    cluster_aliases,
    dead_letters,
    dirty_clusters,
    memberships,
    outbox,
    signatures,
    stories,
    unclustered,
)


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A document the search index has to receive; ``seq`` is its version there."""

    kind: Literal["story", "article"]
    doc_id: str
    seq: int
    deleted: bool


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An outbox item the search index refused too often, kept aside until it is retried."""

    kind: Literal["story", "article"]
    doc_id: str
    seq: int
    deleted: bool
    attempts: int
    last_error: str | None
    failed_at: datetime


@dataclass(frozen=True, slots=True)
class OutboxStatus:
    waiting: int  # items in the outbox
    retrying: int  # of which the index refused at least once
    dead_letters: list[DeadLetter]


@dataclass(frozen=True, slots=True)
class ClusterSummary:
    id: str
    title: str
    article_count: int
    outlet_count: int
    first_seen: datetime
    last_seen: datetime
    agency: str | None

    @property
    def cursor(self) -> str:
        """Where a listing after this cluster resumes: its place in the order, not an offset."""
        return f"{self.article_count}.{(self.last_seen - _EPOCH) // _MICROSECOND}.{self.id}"


@dataclass(frozen=True, slots=True)
class ClusterPage:
    clusters: list[ClusterSummary]
    next: str | None  # the cursor of the page after this one; None on the last page


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class StoryFilter:
    """Which stories a listing shows; None: any."""

    outlet: str | None = None  # stories this outlet ran
    agency: str | None = None
    language: str | None = None
    since: datetime | None = None  # last seen on or after
    until: datetime | None = None  # first seen on or before


@dataclass(frozen=True, slots=True)
class StoryPage:
    stories: list[Story]
    next: str | None  # the cursor of the page after this one; None on the last page


def river_cursor(story: Story) -> str:
    """Where a listing of the newest stories resumes after ``story``: its place in the order."""
    return f"{(story.last_seen - _EPOCH) // _MICROSECOND}.{story.id}"


def parse_river_cursor(text: str) -> tuple[datetime, str]:
    """A ``river_cursor`` back into its (last seen, id).

    Raises:
        ValueError: not such a cursor.
    """
    micros, story_id = text.split(".", 1)
    if not story_id:
        raise ValueError(text)
    return _EPOCH + int(micros) * _MICROSECOND, story_id


def parse_cluster_cursor(text: str) -> tuple[int, datetime, str]:
    """A ``ClusterSummary.cursor`` back into its (article count, last seen, id).

    Raises:
        ValueError: not such a cursor.
    """
    count, micros, cluster_id = text.split(".", 2)
    if not cluster_id:
        raise ValueError(text)
    return int(count), _EPOCH + int(micros) * _MICROSECOND, cluster_id


class StoryStore(StoreBase):
    """Stories and the search-index outbox."""

    def dirty_cluster_ids(self, limit: int) -> list[str]:
        with self._read() as conn:
            return list(
                conn.execute(sa.select(dirty_clusters.c.cluster_id).order_by(dirty_clusters.c.cluster_id).limit(limit)).scalars()
            )

    def save_stories(self, built: Sequence[Story], removed: Sequence[str]) -> None:
        """Upsert rebuilt stories, drop stories of clusters that no longer exist, queue both for indexing."""
        if not built and not removed:
            return
        rows = [_story_row(story) for story in built]
        with self._tx() as conn:
            seq = self._next_seq(conn)
            if rows:
                # One statement executed for every story (building one per story cost more than running it).
                upsert = self._insert(stories)
                upsert = upsert.on_conflict_do_update(
                    index_elements=["id"], set_={name: upsert.excluded[name] for name in rows[0]}
                )
                conn.execute(upsert, [{"id": story.id, **row} for story, row in zip(built, rows)])
            self._enqueue_many(conn, seq, "story", [s.id for s in built], deleted=False)
            for chunk in chunks(list(removed), 500):
                conn.execute(stories.delete().where(stories.c.id.in_(chunk)))
            self._enqueue_many(conn, seq, "story", removed, deleted=True)
            done = [s.id for s in built] + list(removed)
            for chunk in chunks(done, 500):
                conn.execute(dirty_clusters.delete().where(dirty_clusters.c.cluster_id.in_(chunk)))
            self._count(conn, stories_built=len(built), stories_removed=len(removed))

    def story(self, story_id: str) -> Story | None:
        with self._read() as conn:
            row = conn.execute(sa.select(stories).where(stories.c.id == story_id)).mappings().first()
        return None if row is None else _story(row)

    def stories_by_id(self, ids: Iterable[str]) -> dict[str, Story]:
        return self._rows_by(stories, stories.c.id, ids, _story)

    def iter_stories(self, since: datetime | None = None, chunk: int = 500) -> Iterator[Story]:
        """Every story (last seen since ``since``), least recently seen first, ``chunk`` at a time."""
        query = sa.select(stories)
        if since is not None:
            query = query.where(stories.c.last_seen >= since)
        for row in self._keyset_rows(query, (stories.c.last_seen, stories.c.id), chunk):
            yield _story(row)

    def story_page(self, limit: int, where: StoryFilter = StoryFilter(), after: str | None = None) -> StoryPage:
        """The most recently seen stories first (then by id, descending), from the one after the cursor ``after``.

        Raises:
            ValueError: ``after`` is not a ``river_cursor``.
        """
        query = sa.select(stories).order_by(stories.c.last_seen.desc(), stories.c.id.desc()).limit(limit + 1)
        if where.agency is not None:
            query = query.where(stories.c.agency == where.agency)
        if where.language is not None:
            query = query.where(stories.c.language == where.language)
        if where.since is not None:
            query = query.where(stories.c.last_seen >= where.since)
        if where.until is not None:
            query = query.where(stories.c.first_seen <= where.until)
        if where.outlet is not None:
            # The outlet's stories found from its articles (an index): asked of each story in turn
            # instead, the river walked every story to find those of an outlet that ran few.
            ran_it = (
                sa.select(memberships.c.cluster_id)
                .join(articles, articles.c.id == memberships.c.article_id)
                .where(articles.c.outlet == where.outlet)
            )
            query = query.where(stories.c.id.in_(ran_it))
        if after is not None:
            seen, key = parse_river_cursor(after)
            query = query.where(
                sa.or_(stories.c.last_seen < seen, sa.and_(stories.c.last_seen == seen, stories.c.id < key))
            )
        with self._read() as conn:
            found = [_story(row) for row in conn.execute(query).mappings()]
        page = found[:limit]
        return StoryPage(page, river_cursor(page[-1]) if len(found) > limit else None)

    def cluster_summaries(self, limit: int, min_articles: int = 1, after: str | None = None) -> list[ClusterSummary]:
        """Stories, largest and newest first (then by id), from the one after the cursor ``after``.

        Keyset paging: a page starts after the cursor's place in the order, so clusters
        added or removed meanwhile do not shift the next page (one that grew may move
        ahead of the cursor, and is then listed on a page already read).

        Raises:
            ValueError: ``after`` is not a cluster cursor.
        """
        query = (
            sa.select(stories)
            .where(stories.c.article_count >= min_articles)
            .order_by(stories.c.article_count.desc(), stories.c.last_seen.desc(), stories.c.id)
            .limit(limit)
        )
        if after is not None:
            count, seen, key = parse_cluster_cursor(after)
            same_count = stories.c.article_count == count
            query = query.where(
                stories.c.article_count <= count,  # where the page starts in the listing's index
                sa.or_(
                    stories.c.article_count < count,
                    sa.and_(same_count, stories.c.last_seen < seen),
                    sa.and_(same_count, stories.c.last_seen == seen, stories.c.id > key),
                )
            )
        with self._read() as conn:
            return [
                ClusterSummary(
                    id=row["id"],
                    title=row["title"],
                    article_count=row["article_count"],
                    outlet_count=row["outlet_count"],
                    first_seen=row["first_seen"],
                    last_seen=row["last_seen"],
                    agency=row["agency"],
                )
                for row in conn.execute(query).mappings()
            ]

    def cluster_page(self, limit: int, min_articles: int = 1, after: str | None = None) -> ClusterPage:
        """One page of ``cluster_summaries``, with the cursor of the next."""
        found = self.cluster_summaries(limit + 1, min_articles, after)
        page = found[:limit]
        return ClusterPage(page, page[-1].cursor if len(found) > limit else None)

    def all_cluster_summaries(
        self, min_articles: int = 1, after: str | None = None, page: int = 500
    ) -> Iterator[ClusterSummary]:
        """Every cluster in ``cluster_summaries`` order, read a page at a time."""
        while True:
            found = self.cluster_summaries(page, min_articles, after)
            yield from found
            if len(found) < page:
                return
            after = found[-1].cursor

    # -- outbox ----------------------------------------------------------------------
    def outbox_batch(self, limit: int, after: tuple[str, str] | None = None) -> list[OutboxItem]:
        """The next items to index, in (kind, id) order after ``after``: articles before stories."""
        query = sa.select(outbox).order_by(outbox.c.kind, outbox.c.doc_id).limit(limit)
        if after is not None:
            query = query.where(sa.tuple_(outbox.c.kind, outbox.c.doc_id) > sa.tuple_(*after))
        with self._read() as conn:
            return [
                OutboxItem(kind=row["kind"], doc_id=row["doc_id"], seq=row["seq"], deleted=row["deleted"])
                for row in conn.execute(query).mappings()
            ]

    def outbox_size(self) -> int:
        with self._read() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(outbox)).scalar_one())

    def outbox_done(self, items: Sequence[OutboxItem]) -> None:
        """Forget delivered items, unless they changed again while in flight, and their older dead letters."""
        if not items:
            return
        delete = outbox.delete().where(
            outbox.c.kind == sa.bindparam("item_kind"),
            outbox.c.doc_id == sa.bindparam("item_id"),
            outbox.c.seq == sa.bindparam("item_seq"),
        )
        keys = [{"item_kind": i.kind, "item_id": i.doc_id, "item_seq": i.seq} for i in items]
        with self._tx() as conn:
            conn.execute(delete, keys)
            self._count(conn, indexed=len(items))
            if conn.execute(sa.select(dead_letters.c.kind).limit(1)).first() is not None:
                conn.execute(
                    dead_letters.delete().where(
                        dead_letters.c.kind == sa.bindparam("item_kind"),
                        dead_letters.c.doc_id == sa.bindparam("item_id"),
                        dead_letters.c.seq <= sa.bindparam("item_seq"),
                    ),
                    keys,
                )

    def outbox_failed(self, failed: Sequence[tuple[OutboxItem, IndexFailure]], max_attempts: int) -> list[OutboxItem]:
        """Record why items were not delivered; move those refused ``max_attempts`` times to the dead letters.

        A transient failure (the backend busy or blocked) is recorded but not counted as an
        attempt. An item that changed again while in flight is left alone: its new version
        has attempts of its own. Returns the items moved to the dead letters.
        """
        dead: list[OutboxItem] = []
        with self._tx() as conn:
            for item, failure in failed:
                this = (outbox.c.kind == item.kind, outbox.c.doc_id == item.doc_id, outbox.c.seq == item.seq)
                attempts = conn.execute(
                    outbox.update()
                    .where(*this)
                    .values(attempts=outbox.c.attempts + (0 if failure.transient else 1), last_error=failure.reason)
                    .returning(outbox.c.attempts)
                ).scalar()
                if attempts is None or attempts < max_attempts:
                    continue
                values = {"seq": item.seq, "deleted": item.deleted, "attempts": attempts,
                          "last_error": failure.reason, "failed_at": utc_now()}
                conn.execute(
                    self._insert(dead_letters)
                    .values(kind=item.kind, doc_id=item.doc_id, **values)
                    .on_conflict_do_update(index_elements=["kind", "doc_id"], set_=values)
                )
                conn.execute(outbox.delete().where(*this))
                dead.append(item)
        return dead

    def outbox_status(self) -> OutboxStatus:
        """How many items wait for the search index, how many of them were refused before, and the dead letters."""
        with self._read() as conn:
            waiting, retrying = conn.execute(
                sa.select(sa.func.count(), sa.func.count().filter(outbox.c.attempts > 0)).select_from(outbox)
            ).one()
            rows = conn.execute(sa.select(dead_letters).order_by(dead_letters.c.kind, dead_letters.c.doc_id))
            dead = [DeadLetter(**row) for row in rows.mappings()]
        return OutboxStatus(waiting=int(waiting), retrying=int(retrying), dead_letters=dead)

    def retry_dead_letters(self, keys: Iterable[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
        """Queue dead letters for the search index again (every one when ``keys`` is None); returns those queued.

        A retried document is read afresh when it is delivered, and has ``max_attempts`` again.
        """
        query = sa.select(dead_letters.c.kind, dead_letters.c.doc_id).order_by(dead_letters.c.kind, dead_letters.c.doc_id)
        with self._tx() as conn:
            found = [(row.kind, row.doc_id) for row in conn.execute(query)]
            if keys is not None:
                wanted = set(keys)
                found = [key for key in found if key in wanted]
            if not found:
                return []
            self._requeue(conn, found)
            for kind, doc_id in found:
                conn.execute(dead_letters.delete().where(dead_letters.c.kind == kind, dead_letters.c.doc_id == doc_id))
        return found

    def queue_everything(self) -> tuple[int, int]:
        """Queue every story and article for the search index; returns (stories, articles).

        What fills an index that has none of the store (a new backend, a lost index): runs
        queue only what changes. One statement per table, so a million articles take seconds.
        """
        queued = []
        with self._tx("the outbox") as conn:
            seq = self._next_seq(conn)
            for kind, table in (("story", stories), ("article", articles)):
                rows = sa.select(sa.literal(kind), table.c.id, sa.literal(seq), sa.false(), sa.literal(0))
                # WHERE: SQLite reads the ON of ON CONFLICT after a bare SELECT ... FROM as a join's.
                insert = self._insert(outbox).from_select(
                    ["kind", "doc_id", "seq", "deleted", "attempts"], rows.where(sa.true())
                )
                queued.append(conn.execute(queued_again(insert)).rowcount)  # a row inserted or updated per document
        return queued[0], queued[1]

    def requeue_missing(self, keys: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        """Queue again those of these documents the store no longer holds; returns them."""
        story_ids = [doc_id for kind, doc_id in keys if kind == "story"]
        article_ids = [doc_id for kind, doc_id in keys if kind == "article"]
        held: set[tuple[str, str]] = set()
        with self._read() as conn:
            for chunk in chunks(story_ids, 500):
                found: list[str] = list(conn.execute(sa.select(stories.c.id).where(stories.c.id.in_(chunk))).scalars())
                held.update(("story", doc_id) for doc_id in found)
            for chunk in chunks(article_ids, 500):
                # An article is indexed with its membership: without one, delivery deletes it too.
                query = (
                    sa.select(articles.c.id)
                    .join(memberships, memberships.c.article_id == articles.c.id)
                    .where(articles.c.id.in_(chunk))
                )
                found = list(conn.execute(query).scalars())
                held.update(("article", doc_id) for doc_id in found)
        missing = [key for key in keys if key not in held]
        if missing:
            with self._tx() as conn:
                self._requeue(conn, missing)
        return missing

    def _requeue(self, conn: Connection, keys: Sequence[tuple[str, str]]) -> None:
        seq = self._next_seq(conn)
        for kind in ("story", "article"):
            # Not as deleted: delivery reads the document afresh, and finding none deletes it from the index.
            self._enqueue_many(conn, seq, kind, [doc_id for k, doc_id in keys if k == kind], deleted=False)

    def prune_stories_before(self, cutoff: datetime, limit: int = 500) -> tuple[int, int]:
        """Delete up to ``limit`` stories last seen before ``cutoff`` (the least recently seen first), with their articles;
        returns (stories, articles).

        Their memberships, signatures and aliases go too, and the search index is told to
        drop both (outbox). Feed entries stay, so a feed still listing an old URL does not
        bring the article back. Call repeatedly until it returns (0, 0).
        """
        with self._tx("the deletion of old stories") as conn:
            if conn.dialect.name == "postgresql":
                # No membership may join a story between reading its articles and deleting them:
                # writers of memberships wait, readers do not (on SQLite, BEGIN IMMEDIATE does this).
                conn.exec_driver_sql("LOCK TABLE memberships IN SHARE ROW EXCLUSIVE MODE")
            story_ids: list[str] = list(
                conn.execute(
                    # Least recently seen first: sought by the last_seen index, where the order of ids
                    # walked every story (to find none, most days) with the write lock held.
                    sa.select(stories.c.id).where(stories.c.last_seen < cutoff)
                    .order_by(stories.c.last_seen, stories.c.id).limit(limit)
                ).scalars()
            )
            article_ids: list[str] = list(
                conn.execute(
                    sa.select(memberships.c.article_id).where(memberships.c.cluster_id.in_(story_ids))
                ).scalars()
            ) if story_ids else []
            if not story_ids:
                return 0, 0
            seq = self._next_seq(conn)
            for chunk in chunks(article_ids, 500):
                conn.execute(signatures.delete().where(signatures.c.article_id.in_(chunk)))
                conn.execute(memberships.delete().where(memberships.c.article_id.in_(chunk)))
                conn.execute(article_revisions.delete().where(article_revisions.c.article_id.in_(chunk)))
                conn.execute(unclustered.delete().where(unclustered.c.article_id.in_(chunk)))
                conn.execute(articles.delete().where(articles.c.id.in_(chunk)))
            # One statement executed for every document: one each cost most of a batch, with the write lock held.
            self._enqueue_many(conn, seq, "article", article_ids, deleted=True)
            conn.execute(cluster_aliases.delete().where(cluster_aliases.c.survivor_id.in_(story_ids)))
            conn.execute(dirty_clusters.delete().where(dirty_clusters.c.cluster_id.in_(story_ids)))
            conn.execute(stories.delete().where(stories.c.id.in_(story_ids)))
            self._enqueue_many(conn, seq, "story", story_ids, deleted=True)
        return len(story_ids), len(article_ids)


def _story_row(story: Story) -> dict[str, Any]:
    return {
        "title": story.title,
        "text": story.text,
        "summary": story.summary,
        "sources": [
            {
                "article_id": s.article_id,
                "outlet": s.outlet,
                "url": s.url,
                "title": s.title,
                "published": s.published.isoformat() if s.published else None,
            }
            for s in story.sources
        ],
        "article_count": story.article_count,
        "outlet_count": story.outlet_count,
        "first_seen": story.first_seen,
        "last_seen": story.last_seen,
        "language": story.language,
        "agency": story.agency,
        "tags": list(story.tags),
    }


def _story(row: Any) -> Story:
    return Story(
        id=row["id"],
        title=row["title"],
        text=row["text"],
        summary=row["summary"],
        sources=tuple(
            Source(
                article_id=s["article_id"],
                outlet=s["outlet"],
                url=s["url"],
                title=s["title"],
                published=datetime.fromisoformat(s["published"]) if s["published"] else None,
            )
            for s in row["sources"]
        ),
        first_seen=row["first_seen"],
        last_seen=row["last_seen"],
        language=row["language"],
        agency=row["agency"],
        tags=tuple(row["tags"] or ()),
    )


