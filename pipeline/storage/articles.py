"""Articles and the clustering state: signatures, memberships, cluster aliases and dirty marks."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pipeline.models import AgencyCredit, Article, Assignment, Membership, Signature, TextSource
from pipeline.errors import StoreError
from pipeline.storage.base import StoreBase, chunks
from pipeline.storage.schema import (
    UTCDateTime,
    articles,
    cluster_aliases,
    dirty_clusters,
    entries,
    memberships,
    signatures,
)


class ArticleStore(StoreBase):
    """Articles, and what clustering needs to resume and records."""

    def save_article(self, article: Article, entry_url: str | None = None) -> bool:
        """Store an article and close its feed entry, ``entry_url`` (default: the article's URL).

        Returns False when the article was already stored: another entry's page named the
        same canonical URL (extraction.build_article), or this entry was extracted before.
        """
        return self.save_articles([(article, entry_url or article.url)]) == 1

    def save_articles(self, saved: Sequence[tuple[Article, str]]) -> int:
        """What `save_article` does for each (article, entry URL), in one transaction; returns how many were new.

        One commit for a batch, not one per article. A value the database refuses fails
        the whole transaction: the articles are then saved one by one, so the error names
        the one refused and those before it are kept.
        """
        if len(saved) > 1:
            try:
                return self._save_articles(saved, f"{len(saved)} articles")
            except StoreError:
                return sum(self._save_articles([one], f"article {one[0].url}") for one in saved)
        return self._save_articles(saved, f"article {saved[0][0].url}") if saved else 0

    def _save_articles(self, saved: Sequence[tuple[Article, str]], what: str) -> int:
        # One multi-row INSERT and one UPDATE per chunk: building a statement per article
        # cost more than the database's work.
        with self._tx(what) as conn:
            added = 0
            for part in chunks(saved, 500):
                insert = self._insert(articles).on_conflict_do_nothing().returning(articles.c.id)
                added += len(conn.execute(insert, [_article_row(article) for article, _ in part]).all())
                urls = sorted({url for _, url in part})
                conn.execute(entries.update().where(entries.c.url.in_(urls)).values(state="done"))
        return added

    def oldest_unclustered_arrival(self) -> datetime | None:
        query = (
            sa.select(sa.func.min(articles.c.arrived_at))
            .outerjoin(memberships, memberships.c.article_id == articles.c.id)
            .where(memberships.c.article_id.is_(None))
        )
        with self.engine.connect() as conn:
            value = conn.execute(query).scalar()
        # Aggregates bypass the column type on SQLite, so the value may come back naive.
        return None if value is None else UTCDateTime().process_result_value(value, self.engine.dialect)

    def unclustered_articles(self, limit: int) -> list[Article]:
        """Articles not yet clustered, in arrival order."""
        query = (
            sa.select(articles)
            .outerjoin(memberships, memberships.c.article_id == articles.c.id)
            .where(memberships.c.article_id.is_(None))
            .order_by(articles.c.arrived_at, articles.c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [_article(row) for row in conn.execute(query).mappings()]

    def articles_by_id(self, ids: Iterable[str]) -> dict[str, Article]:
        return self._rows_by(articles, articles.c.id, ids, _article)

    def iter_articles(self, since: datetime | None = None, chunk: int = 500) -> Iterator[tuple[Article, datetime, str | None]]:
        """Every article (arrived since ``since``) in arrival order, with its arrival time and cluster id, ``chunk`` at a time."""
        query = sa.select(articles, memberships.c.cluster_id).outerjoin(
            memberships, memberships.c.article_id == articles.c.id
        )
        if since is not None:
            query = query.where(articles.c.arrived_at >= since)
        for row in self._keyset_rows(query, (articles.c.arrived_at, articles.c.id), chunk):
            yield _article(row), row["arrived_at"], row["cluster_id"]

    def article_count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(articles)).scalar_one())

    def clustering_state(
        self, since: datetime
    ) -> tuple[list[Signature], list[Membership], dict[str, str]]:
        """What the clustering engine needs to resume: the window's signatures and memberships, and aliases."""
        with self.engine.connect() as conn:
            sigs = [
                Signature(article_id=row.article_id, data=row.data, at=row.at)
                for row in conn.execute(
                    sa.select(signatures).where(signatures.c.at >= since).order_by(signatures.c.at)
                )
            ]
            ids = [s.article_id for s in sigs]
            members: list[Membership] = []
            for chunk in chunks(ids, 500):
                members.extend(
                    _membership(row)
                    for row in conn.execute(
                        sa.select(memberships).where(memberships.c.article_id.in_(chunk))
                    ).mappings()
                )
            aliases = {
                row.absorbed_id: row.survivor_id for row in conn.execute(sa.select(cluster_aliases))
            }
        return sigs, members, aliases

    def save_assignments(self, assignments: Sequence[Assignment]) -> None:
        """Persist clustering decisions: signatures, memberships, merges, and which stories to rebuild."""
        # Statements built once for the batch (building one per row cost more than running it).
        sign = self._insert(signatures).on_conflict_do_nothing()
        member_of = self._insert(memberships)
        member_of = member_of.on_conflict_do_update(
            index_elements=["article_id"],
            set_={name: member_of.excluded[name] for name in ("cluster_id", "matched_article_id", "jaccard", "containment")},
        )
        dirty = self._insert(dirty_clusters).on_conflict_do_nothing()
        if not assignments:
            return
        with self._tx() as conn:
            seq = self._next_seq(conn)
            for assignment in assignments:
                member = assignment.membership
                sig = assignment.signature
                conn.execute(sign, {"article_id": sig.article_id, "data": sig.data, "at": sig.at})
                conn.execute(
                    member_of,
                    {
                        "article_id": member.article_id,
                        "cluster_id": member.cluster_id,
                        "matched_article_id": member.matched_article_id,
                        "jaccard": member.jaccard,
                        "containment": member.containment,
                    },
                )
                for absorbed in assignment.absorbed:
                    self._absorb(conn, seq, absorbed, member.cluster_id)
                conn.execute(dirty, {"cluster_id": member.cluster_id})
                self._enqueue(conn, seq, "article", member.article_id, deleted=False)

    def _absorb(self, conn: Connection, seq: int, absorbed: str, survivor: str) -> None:
        moved = [
            row.article_id
            for row in conn.execute(
                sa.select(memberships.c.article_id).where(memberships.c.cluster_id == absorbed)
            )
        ]
        conn.execute(memberships.update().where(memberships.c.cluster_id == absorbed).values(cluster_id=survivor))
        # Earlier aliases pointing at the absorbed cluster now resolve to the survivor directly.
        conn.execute(
            cluster_aliases.update().where(cluster_aliases.c.survivor_id == absorbed).values(survivor_id=survivor)
        )
        conn.execute(
            self._insert(cluster_aliases)
            .values(absorbed_id=absorbed, survivor_id=survivor)
            .on_conflict_do_update(index_elements=["absorbed_id"], set_={"survivor_id": survivor})
        )
        conn.execute(self._insert(dirty_clusters).values(cluster_id=absorbed).on_conflict_do_nothing())
        for article_id in moved:
            self._enqueue(conn, seq, "article", article_id, deleted=False)

    def resolve_cluster(self, cluster_id: str) -> str:
        with self.engine.connect() as conn:
            survivor = conn.execute(
                sa.select(cluster_aliases.c.survivor_id).where(cluster_aliases.c.absorbed_id == cluster_id)
            ).scalar()
        return survivor or cluster_id

    def memberships_of(self, cluster_id: str) -> list[Membership]:
        return self.members_of_clusters([cluster_id]).get(cluster_id, [])

    def members_of_clusters(self, cluster_ids: Sequence[str]) -> dict[str, list[Membership]]:
        """The memberships of each of these clusters (those with members), in arrival order."""
        found: dict[str, list[Membership]] = {}
        with self.engine.connect() as conn:
            for chunk in chunks(cluster_ids, 500):
                query = (
                    sa.select(memberships)
                    .join(articles, articles.c.id == memberships.c.article_id)
                    .where(memberships.c.cluster_id.in_(chunk))
                    .order_by(articles.c.arrived_at, articles.c.id)
                )
                for row in conn.execute(query).mappings():
                    found.setdefault(row["cluster_id"], []).append(_membership(row))
        return found

    def membership(self, article_id: str) -> Membership | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(memberships).where(memberships.c.article_id == article_id)).mappings().first()
        return None if row is None else _membership(row)

    def memberships_by_article(self, ids: Iterable[str]) -> dict[str, Membership]:
        """The memberships of these articles (those that have one), by article id."""
        return self._rows_by(memberships, memberships.c.article_id, ids, _membership)

    def cluster_ids(self) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(memberships.c.cluster_id).distinct().order_by(memberships.c.cluster_id)).scalars())

    def drop_signatures_before(self, cutoff: datetime) -> int:
        """Articles older than the matching window leave the clustering state (they stay stored)."""
        with self._tx() as conn:
            return int(conn.execute(signatures.delete().where(signatures.c.at < cutoff)).rowcount)

def _article_row(article: Article) -> dict[str, Any]:
    return {
        "id": article.id,
        "url": article.url,
        "feed_id": article.feed_id,
        "outlet": article.outlet,
        "title": article.title,
        "text": article.text,
        "author": article.author,
        "published": article.published,
        "fetched_at": article.fetched_at,
        "arrived_at": article.arrival_key[0],
        "language": article.language,
        "text_source": article.text_source.value,
        "text_source_reason": article.text_source_reason,
        "tags": list(article.tags),
        "agency": article.credit.agency if article.credit else None,
        "agency_credit": article.credit.kind if article.credit else None,
        "agency_rule": article.credit.rule if article.credit else None,
        "agency_evidence": article.credit.evidence if article.credit else None,
        "page_published": article.page_published,
        "page_modified": article.page_modified,
        "feed_published": article.feed_published,
        "paywalled": article.paywalled,
    }


def _article(row: Any) -> Article:
    return Article(
        id=row["id"],
        url=row["url"],
        outlet=row["outlet"],
        title=row["title"],
        text=row["text"],
        published=row["published"],
        fetched_at=row["fetched_at"],
        text_source=TextSource(row["text_source"]),
        feed_id=row["feed_id"],
        author=row["author"],
        language=row["language"],
        text_source_reason=row["text_source_reason"],
        tags=tuple(row["tags"] or ()),
        credit=_credit(row),
        page_published=row["page_published"],
        page_modified=row["page_modified"],
        feed_published=row["feed_published"],
        paywalled=bool(row["paywalled"]),
    )


def _credit(row: Any) -> AgencyCredit | None:
    if row["agency"] is None:
        return None
    kind: Literal["full", "contributor"] = "contributor" if row["agency_credit"] == "contributor" else "full"
    return AgencyCredit(agency=row["agency"], kind=kind, rule=row["agency_rule"] or "", evidence=row["agency_evidence"] or "")


def _membership(row: Any) -> Membership:
    return Membership(
        article_id=row["article_id"],
        cluster_id=row["cluster_id"],
        matched_article_id=row["matched_article_id"],
        jaccard=row["jaccard"],
        containment=row["containment"],
    )


