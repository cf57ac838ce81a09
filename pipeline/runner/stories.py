"""Settling what was fetched: articles clustered, the clusters that changed merged into stories, and the
outbox delivered to the search index."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from pipeline.clustering import ClusterEngine
from pipeline.errors import SearchUnavailable
from pipeline.models import Article, IndexChange, IndexedArticle
from pipeline.runner.base import PipelineBase
from pipeline.stories import build_story
from pipeline.storage import OutboxItem

# One logger name for all the runner's modules: operators know its lines by it, and filter them
# so ("WARNING pipeline.runner: feed ... failed"), whichever module a line now comes from.
log = logging.getLogger("pipeline.runner")

# Outbox items per index write: the first piece of a write is built, and its last awaited,
# with nothing else in flight, so bigger writes keep the search node busier (2000: 0.8 of
# a raw _bulk stream, 500: 0.67; bench/indexing.py).
OUTBOX_BATCH = 2000
CLUSTER_BATCH = 2000  # articles clustered and committed at a time


class StoryStages(PipelineBase):
    """The stages of the stories: ``cluster``, ``build_stories`` and ``index_outbox``."""

    def cluster(self, batch_size: int = CLUSTER_BATCH) -> tuple[int, int]:
        """Cluster every unclustered article against the matching window; returns (clustered, merges).

        One worker at a time (the store's "clusters" lock): the engine's state is restored
        under the lock, so it holds every assignment another worker committed before.

        Raises:
            LockLost: the lock was lost (PostgreSQL); the batches committed before are kept.
        """
        with self.store.exclusive("clusters"):
            oldest = self.store.oldest_unclustered_arrival()
            if oldest is None:
                return 0, 0
            window = timedelta(days=self.settings.clustering.window_days)
            engine = ClusterEngine(self.settings.clustering, self.pool)
            engine.restore(*self.store.clustering_state(since=oldest - window))
            clustered = merges = 0
            with self._bar(None, "clustering") as bar:
                while batch := self.store.unclustered_articles(limit=batch_size):
                    assignments = engine.add_many(batch)
                    self.store.save_assignments(assignments)
                    clustered += len(assignments)
                    merges += sum(len(a.absorbed) for a in assignments)
                    bar.update(len(batch))
                    self._beat()
            return clustered, merges

    def build_stories(self) -> tuple[int, int]:
        """Rebuild the stories of clusters that changed; returns (built, removed).

        Under the "clusters" lock too: memberships must not change between reading a
        cluster's members and clearing its dirty mark.

        Raises:
            LockLost: the lock was lost (PostgreSQL); the stories saved before are kept.
        """
        built_total = removed_total = 0
        with self.store.exclusive("clusters"):
            while cluster_ids := self.store.dirty_cluster_ids(500):
                built, removed = [], []
                # Two reads for the whole batch of clusters, not two for each.
                members_of = self.store.members_of_clusters(cluster_ids)
                articles = self.store.articles_by_id(m.article_id for ms in members_of.values() for m in ms)
                for cluster_id in cluster_ids:
                    members = members_of.get(cluster_id)
                    if not members:
                        removed.append(cluster_id)
                        continue
                    built.append(build_story(cluster_id, [articles[m.article_id] for m in members]))
                self.store.save_stories(built, removed)
                built_total, removed_total = built_total + len(built), removed_total + len(removed)
                self._beat()
        return built_total, removed_total

    def index_outbox(self, batch_size: int = OUTBOX_BATCH) -> tuple[int, int]:
        """Deliver the outbox to the search index; returns (indexed, failed).

        Each document is written with its outbox sequence number as its version, and the
        index keeps the higher version whatever order writes arrive in, so two runs at once
        cannot leave an older story behind. A document refused ``outbox.max_attempts`` times
        moves to the dead letters (`newsagg outbox list|retry`).

        Raises:
            SearchUnavailable: the backend cannot be reached, or refuses writes for now (a document
                refused for no fault of its own: a blocked index, 429); undelivered items stay queued.
        """
        indexed = failed = 0
        after: tuple[str, str] | None = None
        with self._bar(self.store.outbox_size(), "indexing") as bar:
            while items := self.store.outbox_batch(batch_size, after=after):
                after = (items[-1].kind, items[-1].doc_id)
                changes = self._changes(items)
                failures = self.index.write(changes)
                refused = {(f.kind, f.id): f for f in failures}
                # Elasticsearch remembers a deletion's version for index.gc_deletes (60 s) only:
                # a write read before a deletion and applied later than that would bring the
                # document back. What this batch wrote and the store no longer holds is queued
                # again, so the next delivery reads it afresh and deletes it.
                written = [(c.kind, c.id) for c in changes if c.document is not None and (c.kind, c.id) not in refused]
                for kind, doc_id in self.store.requeue_missing(written):
                    log.info("%s %s was deleted while it was being indexed: queued again", kind, doc_id)
                self.store.outbox_done([i for i in items if (i.kind, i.doc_id) not in refused])
                dead = self.store.outbox_failed(
                    [(i, refused[(i.kind, i.doc_id)]) for i in items if (i.kind, i.doc_id) in refused],
                    self.settings.outbox.max_attempts,
                )
                for failure in failures:
                    if not failure.transient:
                        log.warning("index refused %s %s: %s", failure.kind, failure.id, failure.reason)
                for item in dead:
                    log.error("index refused %s %s %d times: moved to the dead letters (see `newsagg outbox list`)",
                              item.kind, item.doc_id, self.settings.outbox.max_attempts)
                indexed, failed = indexed + len(items) - len(refused), failed + len(refused)
                self._count(index_failures=len(refused))  # the store counted the delivered ones
                bar.update(len(items))
                self._beat()
                if busy := [f for f in failures if f.transient]:
                    # No fault of the documents: the index refuses writes for now (write-blocked by an
                    # interrupted reindex or a full disk, its alias gone, 429s after the retries), and
                    # would refuse the rest of the outbox alike. Said once, as an unreachable index is.
                    raise SearchUnavailable(f"the index refused {len(busy)} documents for now: {busy[0].reason}")
        return indexed, failed

    def _changes(self, items: Sequence[OutboxItem]) -> list[IndexChange]:
        # The documents are read after their outbox items, so each is at least as new as the
        # version it is written with: a version never claims a newer document than it carries.
        story_ids = [i.doc_id for i in items if i.kind == "story" and not i.deleted]
        article_ids = [i.doc_id for i in items if i.kind == "article" and not i.deleted]
        found_stories = self.store.stories_by_id(story_ids)
        found_articles = self.store.articles_by_id(article_ids)
        found_members = self.store.memberships_by_article(found_articles)
        changes: list[IndexChange] = []
        for item in items:
            if item.kind == "story":
                changes.append(IndexChange("story", item.doc_id, found_stories.get(item.doc_id), item.seq))
                continue
            article: Article | None = found_articles.get(item.doc_id)
            member = found_members.get(item.doc_id) if article else None
            document = IndexedArticle(article, member) if article and member else None
            changes.append(IndexChange("article", item.doc_id, document, item.seq))
        return changes
