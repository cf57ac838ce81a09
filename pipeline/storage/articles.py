"""Articles and the clustering state: signatures, memberships, cluster aliases and dirty marks."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pipeline.errors import StoreError
from pipeline.models import (
    AgencyCredit,
    ArchiveRecord,
    Article,
    Assignment,
    Membership,
    Signature,
    TextSource,
    Validators,
)
from pipeline.settings import ExtractionSettings
from pipeline.storage.base import chunks
from pipeline.storage.schema import (
    UTCDateTime,
    article_revisions,
    articles,
    cluster_aliases,
    dirty_clusters,
    entries,
    memberships,
    signatures,
    unclustered,
)
from pipeline.storage.templates import TemplateStore
from pipeline.templates import (
    Fingerprinted,
    KnownBlock,
    Site,
    StrippedBlock,
    blocks,
    fingerprint,
    fingerprinted,
    learned,
    same_content,
    site_of,
    strip,
    template_fingerprints,
)


@dataclass(frozen=True, slots=True)
class NewArticle:
    """An article to store, the feed entry it closes, and what is kept of its page: validators, archive record.

    ``updated`` is the entry's feed update time when its page was fetched (see ``_closed``).
    """

    article: Article
    entry_url: str
    validators: Validators | None = None
    archived: ArchiveRecord | None = None
    updated: datetime | None = None


@dataclass(frozen=True, slots=True)
class Revision:
    """One text of a corrected article, as `newsagg articles show` lists it."""

    revision: int
    title: str
    text: str
    fetched_at: datetime
    reason: str


class ArticleStore(TemplateStore):
    """Articles, their revisions, and what clustering needs to resume and records."""

    def save_article(
        self,
        article: Article,
        entry_url: str | None = None,
        *,
        templates: ExtractionSettings | None = None,
        validators: Validators | None = None,
        archived: ArchiveRecord | None = None,
    ) -> bool:
        """Store an article and close its feed entry, ``entry_url`` (default: the article's URL).

        With ``templates`` (the extraction settings), the blocks of its outlet's template
        are stripped from its text first and, when it is a new article, its blocks are
        counted for its outlet (``pipeline.templates``), in the same
        transaction. ``validators`` are the page's, kept on the entry for the
        conditional GET of a later revisit. ``archived`` is where its page is in the WARC archive.

        Returns False when the article was already stored: another entry's page named the
        same canonical URL (extraction.build_article), or this entry was extracted before.
        """
        return self.save_articles([NewArticle(article, entry_url or article.url, validators, archived)], templates) == 1

    def save_articles(self, saved: Sequence[NewArticle], templates: ExtractionSettings | None = None) -> int:
        """What `save_article` does for each article, in one transaction; returns how many were new.

        One commit for a batch, not one per article. A value the database refuses fails
        the whole transaction: the articles are then saved one by one, so the error names
        the one refused and those before it are kept.
        """
        if len(saved) > 1:
            try:
                return self._save_articles(saved, templates, f"{len(saved)} articles")
            except StoreError:
                return sum(self._save_articles([one], templates, f"article {one.article.url}") for one in saved)
        return self._save_articles(saved, templates, f"article {saved[0].article.url}") if saved else 0

    def _save_articles(self, saved: Sequence[NewArticle], templates: ExtractionSettings | None, what: str) -> int:
        with self._tx(what) as conn:
            added = self._insert_articles(conn, saved, templates)
            self._close_entries(conn, saved)
            self._count(conn, articles_added=added)
        return added

    def _insert_articles(
        self, conn: Connection, saved: Sequence[NewArticle], templates: ExtractionSettings | None
    ) -> int:
        """Insert the articles not stored yet, each without its outlet's template blocks, to be clustered; returns how many.

        One multi-row INSERT per 500 (a statement per article cost more than the
        database's work). The template counts of each outlet in the batch are read
        and written once, under its lock, as if the articles were stored one by one.
        """
        rows = self._article_rows(conn, saved, templates)
        added: list[str] = []
        for part in chunks(rows, 500):
            insert = self._insert(articles).on_conflict_do_nothing().returning(articles.c.id)
            added.extend(conn.execute(insert, part).scalars())
        arrived: dict[str, datetime] = {}
        for row in rows:  # as the articles: the first of a batch's copies of one is the one stored
            arrived.setdefault(row["id"], row["arrived_at"])
        self._queue_unclustered(conn, [{"article_id": i, "arrived_at": arrived[i]} for i in added])
        return len(added)

    def _queue_unclustered(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Queue articles for clustering: ``rows`` of their id (``article_id``) and ``arrived_at``."""
        if rows:
            conn.execute(self._insert(unclustered).on_conflict_do_nothing(), rows)

    def _article_rows(
        self, conn: Connection, saved: Sequence[NewArticle], templates: ExtractionSettings | None
    ) -> list[dict[str, Any]]:
        enabled = templates is not None and templates.template_min_articles > 0
        sites = [site_of(one.article.url, one.article.outlet) if enabled else None for one in saved]
        # Each article's blocks fingerprinted once, for what to read, what to strip and what to count.
        parts = [fingerprinted(one.article.text) if site is not None else [] for one, site in zip(saved, sites)]
        known: dict[Site, dict[int, KnownBlock]] = {}
        for outlet in sorted({site for site in sites if site is not None}, key=lambda s: (s.domain, s.outlet)):
            self._lock_site(conn, outlet)  # in one order, so that two workers' batches never wait on each other
            wanted = {fp for at, blocks_of in zip(sites, parts) if at == outlet for _, fp in blocks_of}
            known[outlet] = self._known_blocks(conn, outlet, wanted)
        stored: set[str] = set()
        for chunk in chunks([one.article.id for one in saved], 500):
            stored.update(conn.execute(sa.select(articles.c.id).where(articles.c.id.in_(chunk))).scalars())
        rows: list[dict[str, Any]] = []
        counted: dict[Site, dict[int, KnownBlock]] = {}
        for one, site, blocks_of in zip(saved, sites, parts):
            article, archived = one.article, one.archived
            text, stripped = _stripped(article, site, known[site] if site is not None else {}, templates, blocks_of)
            rows.append({
                "id": article.id,
                "url": article.url,
                "feed_id": article.feed_id,
                "outlet": article.outlet,
                "arrived_at": article.arrival_key[0],
                "published": article.published,
                **_archived_at(archived),
                **_content(article, text, stripped),
            })
            if site is not None and templates is not None and article.id not in stored:
                # Counted once per distinct article: a page fetched again (or another link to it) adds nothing.
                stored.add(article.id)
                update = learned(article.text, known[site], article.fetched_at, templates, blocks_of)
                known[site].update(update)
                counted.setdefault(site, {}).update(update)
        for site, updated in counted.items():
            self._save_blocks(conn, site, updated)
        return rows

    def revise_article(
        self,
        article: Article,
        entry_url: str,
        *,
        reason: str,
        templates: ExtractionSettings | None = None,
        validators: Validators | None = None,
        updated: datetime | None = None,
        archived: ArchiveRecord | None = None,
    ) -> bool:
        """Store a fetched-again article's text as its new revision, if it changed; returns whether it did.

        The article row takes the new text, title and page metadata, and where the new page
        is archived (``archived``: `newsagg reextract` reads the page its text came from); its
        arrival and publication time stay. Every revision is kept in ``article_revisions`` (the
        first correction also records the text it replaces as revision 1). Its
        signature and membership go, and its cluster is marked for rebuilding, so the
        next clustering signs the new text and the story shows it. A text that differs
        only in its outlet's template blocks is no revision. An article no longer
        stored is stored anew (``save_article``). ``updated``: as for ``NewArticle``.
        """
        with self._tx(f"article {article.url}") as conn:
            stored = conn.execute(
                sa.select(articles.c.title, articles.c.text, articles.c.fetched_at, articles.c.arrived_at)
                .where(articles.c.id == article.id)
                .with_for_update()
            ).first()
            if stored is None:
                anew = NewArticle(article, entry_url, archived=archived)
                revised = self._insert_articles(conn, [anew], templates) > 0
            else:
                revised = self._revise(conn, article, stored, reason, templates, archived)
            self._close_entry(conn, entry_url, validators, updated)
        return revised

    def _revise(
        self, conn: Connection, article: Article, stored: Any, reason: str, templates: ExtractionSettings | None,
        archived: ArchiveRecord | None,
    ) -> bool:
        site, known = self._template_of(conn, article, templates, blocks(stored.text))
        template = template_fingerprints(known, article.fetched_at, templates) if templates and site else set()
        if same_content(stored.text, article.text, template):
            return False
        text, stripped = _stripped(article, site, known, templates)
        latest = conn.execute(
            sa.select(sa.func.max(article_revisions.c.revision)).where(article_revisions.c.article_id == article.id)
        ).scalar() or 0
        rows = [] if latest else [{"revision": 1, "title": stored.title, "text": stored.text,
                                   "fetched_at": stored.fetched_at, "reason": "first version"}]
        rows.append({"revision": max(latest, 1) + 1, "title": article.title, "text": text,
                     "fetched_at": article.fetched_at, "reason": reason})
        conn.execute(article_revisions.insert(), [{"article_id": article.id, **row} for row in rows])
        conn.execute(articles.update().where(articles.c.id == article.id)
                     .values(**_content(article, text, stripped), **_archived_at(archived)))
        # Clustered again from the new text: the story it joins (or leaves) is rebuilt.
        cluster_id = conn.execute(
            sa.select(memberships.c.cluster_id).where(memberships.c.article_id == article.id)
        ).scalar()
        conn.execute(signatures.delete().where(signatures.c.article_id == article.id))
        conn.execute(memberships.delete().where(memberships.c.article_id == article.id))
        self._queue_unclustered(conn, [{"article_id": article.id, "arrived_at": stored.arrived_at}])
        if cluster_id is not None:
            conn.execute(self._insert(dirty_clusters).values(cluster_id=cluster_id).on_conflict_do_nothing())
        return True

    def close_entry(self, entry_url: str, updated: datetime | None = None) -> None:
        """Mark an entry done with nothing to store (its page was not modified since the last fetch).

        ``updated``: as for ``NewArticle``.
        """
        with self._tx(f"entry {entry_url}") as conn:
            self._close_entry(conn, entry_url, None, updated)

    @staticmethod
    def _close_entry(
        conn: Connection, entry_url: str, validators: Validators | None, updated: datetime | None = None
    ) -> None:
        done = _closed(updated)
        if validators is not None:
            done |= {"etag": validators.etag, "last_modified": validators.last_modified}
        conn.execute(entries.update().where(entries.c.url == entry_url).values(**done))

    @staticmethod
    def _close_entries(conn: Connection, saved: Sequence[NewArticle]) -> None:
        """``_close_entry`` for each: one statement for the entries with neither validators nor an update time
        (a backfill's), one executed many times for each of the other two kinds."""
        bare = sorted({one.entry_url for one in saved if one.validators is None and one.updated is None})
        for chunk in chunks(bare, 500):
            conn.execute(entries.update().where(entries.c.url.in_(chunk)).values(**_closed(None)))
        seen = sa.bindparam("seen", type_=UTCDateTime())
        dated = [{"entry": one.entry_url, "seen": one.updated}
                 for one in saved if one.validators is None and one.updated is not None]
        if dated:
            conn.execute(entries.update().where(entries.c.url == sa.bindparam("entry")).values(**_closed(seen)), dated)
        kept = [{"entry": one.entry_url, "seen": one.updated, "etag": one.validators.etag,
                 "modified": one.validators.last_modified} for one in saved if one.validators is not None]
        if kept:
            conn.execute(
                entries.update().where(entries.c.url == sa.bindparam("entry"))
                .values(**_closed(seen), etag=sa.bindparam("etag"), last_modified=sa.bindparam("modified")),
                kept,
            )

    def _template_of(
        self, conn: Connection, article: Article, templates: ExtractionSettings | None, others: Sequence[str]
    ) -> tuple[Site | None, dict[int, KnownBlock]]:
        """The article's site (locked for its template counts) and what is known of its blocks and ``others``."""
        enabled = templates is not None and templates.template_min_articles > 0
        site = site_of(article.url, article.outlet) if enabled else None
        if site is None:
            return None, {}
        self._lock_site(conn, site)
        wanted = {fingerprint(b) for b in [*blocks(article.text), *others]}
        return site, self._known_blocks(conn, site, wanted)

    def stripped_blocks(self, article_id: str) -> list[StrippedBlock]:
        """The template blocks taken out of an article's text, with on how many articles each recurred."""
        with self._read() as conn:
            value = conn.execute(sa.select(articles.c.template_stripped).where(articles.c.id == article_id)).scalar()
        return [StrippedBlock(text=b["text"], articles=b["articles"]) for b in value or ()]

    def article_revisions(self, article_id: str) -> list[Revision]:
        """The revisions of a corrected article, oldest first (none for an article never corrected)."""
        query = (
            sa.select(article_revisions)
            .where(article_revisions.c.article_id == article_id)
            .order_by(article_revisions.c.revision)
        )
        with self._read() as conn:
            return [
                Revision(row.revision, row.title, row.text, row.fetched_at, row.reason) for row in conn.execute(query)
            ]

    def archived_articles(
        self, since: datetime | None = None, outlet: str | None = None, chunk: int = 200
    ) -> Iterator[list[tuple[Article, ArchiveRecord]]]:
        """The articles whose page is archived (arrived since ``since``, of ``outlet``), ``chunk`` at a time, by id."""
        query = sa.select(articles).where(articles.c.warc_file.is_not(None))
        if since is not None:
            query = query.where(articles.c.arrived_at >= since)
        if outlet is not None:
            query = query.where(articles.c.outlet == outlet)
        batch: list[tuple[Article, ArchiveRecord]] = []
        for row in self._keyset_rows(query, (articles.c.id,), chunk):
            batch.append((_article(row), ArchiveRecord(row["warc_file"], row["warc_offset"], row["warc_length"])))
            if len(batch) == chunk:
                yield batch
                batch = []
        if batch:
            yield batch

    def without_template(self, article: Article, templates: ExtractionSettings) -> Article:
        """The article as it would be stored now: its outlet's template blocks stripped (nothing learned)."""
        site = site_of(article.url, article.outlet) if templates.template_min_articles > 0 else None
        if site is None:
            return article
        with self._read() as conn:
            known = self._known_blocks(conn, site, {fingerprint(b) for b in blocks(article.text)})
        return replace(article, text=_stripped(article, site, known, templates)[0])

    def replace_articles(
        self, changed: Sequence[tuple[Article, ArchiveRecord]], templates: ExtractionSettings | None = None
    ) -> int:
        """Store new content for these articles, re-extracted from the archived pages named; returns how many were.

        Their outlet's template blocks are stripped as when they were first stored. An article
        that no longer points at that page is left as it is: a run stored a newer version of
        the page (a correction) since it was read, and its text must not go back to the older one.

        Every member of a replaced article's cluster loses its membership and signature and
        the cluster is marked for rebuilding, so the next clustering pass assigns them
        again, in arrival order, from their new text (a changed article may no longer
        match, or match another story).
        """
        if not changed:
            return 0
        replaced: list[str] = []
        with self._tx("re-extracted articles") as conn:
            for article, page in changed:
                site, known = self._template_of(conn, article, templates, [])
                text, stripped = _stripped(article, site, known, templates)
                read_from = (articles.c.warc_file == page.file, articles.c.warc_offset == page.offset)
                updated = conn.execute(articles.update().where(articles.c.id == article.id, *read_from).values(
                    published=article.published, **_content(article, text, stripped)
                ))
                if updated.rowcount:
                    replaced.append(article.id)
            clusters: set[str] = set()
            for chunk in chunks(replaced, 500):
                clusters.update(conn.execute(
                    sa.select(memberships.c.cluster_id).where(memberships.c.article_id.in_(chunk)).distinct()
                ).scalars())
            for chunk in chunks(sorted(clusters), 500):
                members = sa.select(memberships.c.article_id).where(memberships.c.cluster_id.in_(chunk))
                queued = sa.select(articles.c.id, articles.c.arrived_at).where(articles.c.id.in_(members.scalar_subquery()))
                self._queue_unclustered(conn, [{"article_id": row.id, "arrived_at": row.arrived_at}
                                               for row in conn.execute(queued)])
                conn.execute(signatures.delete().where(signatures.c.article_id.in_(members.scalar_subquery())))
                conn.execute(memberships.delete().where(memberships.c.cluster_id.in_(chunk)))
            dirty = self._insert(dirty_clusters).on_conflict_do_nothing()
            for cluster_id in clusters:
                conn.execute(dirty, {"cluster_id": cluster_id})
        return len(replaced)

    def clear_archive_pointers(self, files: Iterable[str]) -> int:
        """Forget the archived pages of these WARC files (deleted); returns the articles that pointed there."""
        cleared = 0
        with self._tx() as conn:
            for chunk in chunks(list(files), 500):
                cleared += int(conn.execute(
                    articles.update().where(articles.c.warc_file.in_(chunk))
                    .values(warc_file=None, warc_offset=None, warc_length=None)
                ).rowcount)
        return cleared

    def archive_record(self, article_id: str) -> ArchiveRecord | None:
        """Where the article's page is in the WARC archive, if it is."""
        with self._read() as conn:
            row = conn.execute(
                sa.select(articles.c.warc_file, articles.c.warc_offset, articles.c.warc_length)
                .where(articles.c.id == article_id, articles.c.warc_file.is_not(None))
            ).first()
        return None if row is None else ArchiveRecord(row.warc_file, row.warc_offset, row.warc_length)

    def oldest_unclustered_arrival(self) -> datetime | None:
        query = sa.select(sa.func.min(unclustered.c.arrived_at)).where(_not_clustered)
        with self._read() as conn:
            value = conn.execute(query).scalar()
        # Aggregates bypass the column type on SQLite, so the value may come back naive.
        return None if value is None else UTCDateTime().process_result_value(value, self.engine.dialect)

    def unclustered_articles(self, limit: int) -> list[Article]:
        """Articles not yet clustered, in arrival order."""
        query = (
            sa.select(articles)
            .join(unclustered, unclustered.c.article_id == articles.c.id)
            .where(_not_clustered)
            .order_by(unclustered.c.arrived_at, unclustered.c.article_id)
            .limit(limit)
        )
        with self._read() as conn:
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
        with self._read() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(articles)).scalar_one())

    def clustering_state(
        self, since: datetime
    ) -> tuple[list[Signature], list[Membership], dict[str, str]]:
        """What the clustering engine needs to resume: the window's signatures and memberships, and aliases."""
        with self._read() as conn:
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
        if not assignments:
            return
        # Statements built once for the batch and each executed for many rows (building and
        # running one per row cost more than the database's work).
        sign = self._insert(signatures).on_conflict_do_nothing()
        member_of = self._insert(memberships)
        member_of = member_of.on_conflict_do_update(
            index_elements=["article_id"],
            set_={name: member_of.excluded[name] for name in ("cluster_id", "matched_article_id", "jaccard", "containment")},
        )
        dirty = self._insert(dirty_clusters).on_conflict_do_nothing()
        with self._tx() as conn:
            seq = self._next_seq(conn)
            pending: list[Assignment] = []

            def flush() -> None:
                if not pending:
                    return
                conn.execute(sign, [
                    {"article_id": a.signature.article_id, "data": a.signature.data, "at": a.signature.at} for a in pending
                ])
                conn.execute(member_of, [
                    {"article_id": m.article_id, "cluster_id": m.cluster_id, "matched_article_id": m.matched_article_id,
                     "jaccard": m.jaccard, "containment": m.containment}
                    for m in (a.membership for a in pending)
                ])
                pending.clear()

            for assignment in assignments:
                pending.append(assignment)
                if assignment.absorbed:
                    flush()  # a merge moves every member of the absorbed cluster, those of this batch too
                    for absorbed in assignment.absorbed:
                        self._absorb(conn, seq, absorbed, assignment.membership.cluster_id)
            flush()
            clusters = sorted({a.membership.cluster_id for a in assignments})
            conn.execute(dirty, [{"cluster_id": cluster_id} for cluster_id in clusters])
            conn.execute(unclustered.delete().where(unclustered.c.article_id == sa.bindparam("clustered")),
                         [{"clustered": a.membership.article_id} for a in assignments])
            self._enqueue_many(conn, seq, "article", [a.membership.article_id for a in assignments], deleted=False)
            self._count(conn, clustered=len(assignments), clusters_merged=sum(len(a.absorbed) for a in assignments))

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
        self._enqueue_many(conn, seq, "article", moved, deleted=False)

    def resolve_cluster(self, cluster_id: str) -> str:
        with self._read() as conn:
            survivor = conn.execute(
                sa.select(cluster_aliases.c.survivor_id).where(cluster_aliases.c.absorbed_id == cluster_id)
            ).scalar()
        return survivor or cluster_id

    def memberships_of(self, cluster_id: str) -> list[Membership]:
        return self.members_of_clusters([cluster_id]).get(cluster_id, [])

    def members_of_clusters(self, cluster_ids: Sequence[str]) -> dict[str, list[Membership]]:
        """The memberships of each of these clusters (those with members), in arrival order."""
        found: dict[str, list[Membership]] = {}
        with self._read() as conn:
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
        with self._read() as conn:
            row = conn.execute(sa.select(memberships).where(memberships.c.article_id == article_id)).mappings().first()
        return None if row is None else _membership(row)

    def memberships_by_article(self, ids: Iterable[str]) -> dict[str, Membership]:
        """The memberships of these articles (those that have one), by article id."""
        return self._rows_by(memberships, memberships.c.article_id, ids, _membership)

    def cluster_ids(self) -> list[str]:
        with self._read() as conn:
            return list(conn.execute(sa.select(memberships.c.cluster_id).distinct().order_by(memberships.c.cluster_id)).scalars())

    def drop_signatures_before(self, cutoff: datetime) -> int:
        """Articles older than the matching window leave the clustering state (they stay stored)."""
        with self._tx() as conn:
            return int(conn.execute(signatures.delete().where(signatures.c.at < cutoff)).rowcount)


# A queued article that has a membership after all is not clustered again.
_not_clustered = ~sa.exists().where(memberships.c.article_id == unclustered.c.article_id)


def _stripped(
    article: Article,
    site: Site | None,
    known: dict[int, KnownBlock],
    templates: ExtractionSettings | None,
    parts: Fingerprinted | None = None,
) -> tuple[str, list[StrippedBlock]]:
    """The article's text without its outlet's template blocks, and what was taken out (``parts``: its fingerprinted blocks)."""
    if templates is None or site is None:
        return article.text, []
    return strip(article.text, known, article.fetched_at, templates, parts)


def _archived_at(archived: ArchiveRecord | None) -> dict[str, Any]:
    """The article's columns that say where its page is in the archive (None: not archived)."""
    return {
        "warc_file": archived.file if archived else None,
        "warc_offset": archived.offset if archived else None,
        "warc_length": archived.length if archived else None,
    }


def _content(article: Article, text: str, stripped: Sequence[StrippedBlock]) -> dict[str, Any]:
    """The article's columns that a revision replaces, with ``text`` as its text."""
    return {
        "title": article.title,
        "text": text,
        "author": article.author,
        "fetched_at": article.fetched_at,
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
        "template_stripped": [{"text": b.text, "articles": b.articles} for b in stripped] or None,
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


def _closed(seen: datetime | sa.BindParameter[datetime] | None) -> dict[str, Any]:
    """The values that close an entry whose page was fetched when its feed update time was ``seen``.

    A poll by another worker may have noted a later update time (a correction) while the
    page was being fetched and stored: that entry stays queued, as a revisit, so the
    corrected page is fetched too; the poll did not queue it, since it was not done yet.
    """
    if seen is None:
        return {"state": "done", "revisit": False, "lease_until": None}
    newer = sa.and_(entries.c.updated.is_not(None), entries.c.updated > seen)
    return {"state": sa.case((newer, "pending"), else_="done"), "revisit": sa.case((newer, True), else_=False),
            "lease_until": None}
