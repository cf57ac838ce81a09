"""Merged stories, and the outbox of documents the search index has still to receive."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa

from pipeline.models import Source, Story
from pipeline.storage.base import StoreBase, chunks
from pipeline.storage.schema import (
    articles,
    cluster_aliases,
    dirty_clusters,
    memberships,
    outbox,
    signatures,
    stories,
)


@dataclass(frozen=True, slots=True)
class OutboxItem:
    kind: Literal["story", "article"]
    doc_id: str
    seq: int
    deleted: bool


@dataclass(frozen=True, slots=True)
class ClusterSummary:
    id: str
    title: str
    article_count: int
    outlet_count: int
    first_seen: datetime
    last_seen: datetime
    agency: str | None


class StoryStore(StoreBase):
    """Stories and the search-index outbox."""

    def dirty_cluster_ids(self, limit: int) -> list[str]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(sa.select(dirty_clusters.c.cluster_id).order_by(dirty_clusters.c.cluster_id).limit(limit)).scalars()
            )

    def save_stories(self, built: Sequence[Story], removed: Sequence[str]) -> None:
        """Upsert rebuilt stories, drop stories of clusters that no longer exist, queue both for indexing."""
        with self._tx() as conn:
            for story in built:
                values = _story_row(story)
                conn.execute(
                    self._insert(stories)
                    .values(id=story.id, **values)
                    .on_conflict_do_update(index_elements=["id"], set_=values)
                )
                self._enqueue(conn, "story", story.id, deleted=False)
            for story_id in removed:
                conn.execute(stories.delete().where(stories.c.id == story_id))
                self._enqueue(conn, "story", story_id, deleted=True)
            done = [s.id for s in built] + list(removed)
            for chunk in chunks(done, 500):
                conn.execute(dirty_clusters.delete().where(dirty_clusters.c.cluster_id.in_(chunk)))

    def story(self, story_id: str) -> Story | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(stories).where(stories.c.id == story_id)).mappings().first()
        return None if row is None else _story(row)

    def stories_by_id(self, ids: Iterable[str]) -> dict[str, Story]:
        return self._rows_by(stories, stories.c.id, ids, _story)
    def cluster_summaries(self, limit: int, min_articles: int = 1) -> list[ClusterSummary]:
        """Stories, largest and newest first."""
        query = (
            sa.select(stories)
            .where(stories.c.article_count >= min_articles)
            .order_by(stories.c.article_count.desc(), stories.c.last_seen.desc(), stories.c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
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

    # -- outbox ----------------------------------------------------------------------
    def outbox_batch(self, limit: int, after: tuple[str, str] | None = None) -> list[OutboxItem]:
        """The next items to index, in (kind, id) order after ``after``: articles before stories."""
        query = sa.select(outbox).order_by(outbox.c.kind, outbox.c.doc_id).limit(limit)
        if after is not None:
            query = query.where(sa.tuple_(outbox.c.kind, outbox.c.doc_id) > sa.tuple_(*after))
        with self.engine.connect() as conn:
            return [
                OutboxItem(kind=row["kind"], doc_id=row["doc_id"], seq=row["seq"], deleted=row["deleted"])
                for row in conn.execute(query).mappings()
            ]

    def outbox_size(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(outbox)).scalar_one())

    def outbox_done(self, items: Sequence[OutboxItem]) -> None:
        """Forget delivered items, unless they changed again while in flight."""
        if not items:
            return
        delete = outbox.delete().where(
            outbox.c.kind == sa.bindparam("item_kind"),
            outbox.c.doc_id == sa.bindparam("item_id"),
            outbox.c.seq == sa.bindparam("item_seq"),
        )
        with self._tx() as conn:
            conn.execute(delete, [{"item_kind": i.kind, "item_id": i.doc_id, "item_seq": i.seq} for i in items])

    def outbox_failed(self, failed: Sequence[tuple[OutboxItem, str]]) -> None:
        with self._tx() as conn:
            for item, reason in failed:
                conn.execute(
                    outbox.update()
                    .where(outbox.c.kind == item.kind, outbox.c.doc_id == item.doc_id)
                    .values(attempts=outbox.c.attempts + 1, last_error=reason)
                )
    def prune_stories_before(self, cutoff: datetime, limit: int = 500) -> tuple[int, int]:
        """Delete up to ``limit`` stories last seen before ``cutoff``, with their articles; returns (stories, articles).

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
                    sa.select(stories.c.id).where(stories.c.last_seen < cutoff).order_by(stories.c.id).limit(limit)
                ).scalars()
            )
            article_ids: list[str] = list(
                conn.execute(
                    sa.select(memberships.c.article_id).where(memberships.c.cluster_id.in_(story_ids))
                ).scalars()
            ) if story_ids else []
            for chunk in chunks(article_ids, 500):
                conn.execute(signatures.delete().where(signatures.c.article_id.in_(chunk)))
                conn.execute(memberships.delete().where(memberships.c.article_id.in_(chunk)))
                conn.execute(articles.delete().where(articles.c.id.in_(chunk)))
            for article_id in article_ids:
                self._enqueue(conn, "article", article_id, deleted=True)
            if story_ids:
                conn.execute(cluster_aliases.delete().where(cluster_aliases.c.survivor_id.in_(story_ids)))
                conn.execute(dirty_clusters.delete().where(dirty_clusters.c.cluster_id.in_(story_ids)))
                conn.execute(stories.delete().where(stories.c.id.in_(story_ids)))
            for story_id in story_ids:
                self._enqueue(conn, "story", story_id, deleted=True)
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


