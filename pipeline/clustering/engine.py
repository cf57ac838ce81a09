"""The clustering engine: candidates from LSH, verification, incremental clusters.

Contract that makes the result independent of how articles are split into runs
and of the order in which the runs see them:

1. A batch is processed in arrival order (``Article.arrival_key``: published
   time, else fetched time, then article id); a later run may bring articles
   that arrive before ones already clustered.
2. An article's candidates are the articles already in the window state within
   ``window_days`` of it, either side, whose band keys collide with its own (the
   most recent ``max_bucket`` per bucket): every pair within the window is
   considered once, whichever of the two came first. A one-shot batch
   (``cluster_documents``) has no window.
3. A candidate pair is accepted or rejected from the two signatures alone
   (pure function), so the accepted edges are the same whatever the batching.
   Two long texts match on estimated Jaccard similarity, or on containment of
   the smaller in the larger (abridged copies) if one text's opening is also
   found in the other's lead: an abridged copy keeps the opening, even under an
   outlet's own intro, while a different story that carries over a background
   paragraph, a quote or an outlet's stock block opens with its own. Two short
   texts match on their exact title and lead shingles if each one's opening is
   found in the other: briefs on one topic share stock sentences and vocabulary,
   not their first sentence, and are reproduced whole.
4. Clusters are the connected components of accepted edges, and a cluster's id
   is its earliest member's ``founded_cluster_id``: the member's arrival time in
   fixed-width digits, then its article id, so the smallest id is the earliest
   member's. An article that links clusters merges them into the one with the
   smallest id; an article that arrives before every member of the clusters it
   joins (published earlier, clustered in a later run) renames the cluster
   after itself. Either way the ids given up become aliases of the survivor.

So the same articles, split into runs in any way and fed in any order, give
the same clusters under the same ids (which earlier member explains an
article's match may differ), provided each article is clustered while the
articles it matches are still in the window state (the store drops signatures
older than ``window_days``) and no LSH bucket overflows ``max_bucket``.

Everything an engine needs to resume is in the persisted ``Signature`` (the
MinHash, shingle count, lead sketch, short-text flag and exact short-text
shingles), ``Membership`` and alias records.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

import numpy as np
import numpy.typing as npt

from pipeline.clustering.lsh import CompactLSH, band_keys, band_params
from pipeline.clustering.signatures import (
    HASH_BITS,
    OPENING_BIT,
    TAG_OPENING,
    TAG_TITLE,
    Sketch,
    SketchBatch,
    SketchParams,
    distinct,
    sketch_chunks,
    sketch_texts,
)
from pipeline.models import Article, Assignment, Membership, Signature
from pipeline.pool import WorkerPool
from pipeline.settings import ClusteringSettings

logger = logging.getLogger(__name__)

I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
F64 = npt.NDArray[np.float64]
_A = TypeVar("_A", bound=npt.NDArray[Any])

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PIPELINE_CHUNK = 1000  # articles per sub-batch: signed (by the pool, if any), then clustered
_GROW = 1.125  # growth factor of the per-article arrays: small, because slack is memory per article
_B_COLLIDE = 1.0 / 256.0  # chance that two different MinHash values agree in their low 8 bits
_B7_COLLIDE = 1.0 / 128.0  # ... in their low 7 bits (lead values)
_HASH_BITS = np.uint64(HASH_BITS)
_NO_WINDOW = np.iinfo(np.int64).max  # the window of a one-shot batch, in microseconds: none
_INT_BYTES = 32  # an int object above 256 as allocated (28 bytes, in 16-byte blocks)
_ARRAY_BYTES = sys.getsizeof(np.empty(0, dtype=np.uint32))  # a numpy array's own object


def epoch_micros(at: datetime) -> int:
    """A time as the engine keeps it: microseconds since the epoch."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)  # naive times are taken as UTC, as the store does
    return (at - _EPOCH) // timedelta(microseconds=1)


def founded_cluster_id(article_id: str, at: int) -> str:
    """The id of a cluster whose earliest member is this article: its arrival time (``epoch_micros``), then its id."""
    return f"{at:020d}-{article_id}"


def arrival_time(article: Article) -> datetime:
    """The time part of the arrival key, which the window is measured on."""
    return article.arrival_key[0]


class ClusterEngine:
    """Incremental near-duplicate clustering over a time window of articles.

    Args:
        settings: the clustering settings (thresholds, window, LSH).
        pool: the worker processes that sign large batches; None signs in this process.
    """

    def __init__(self, settings: ClusteringSettings, pool: WorkerPool | None = None) -> None:
        self.settings = settings
        self.pool = pool
        self.params = SketchParams(
            num_perm=settings.num_perm,
            seed=settings.seed,
            shingle_size=settings.shingle_size,
            short_shingle_size=settings.short_shingle_size,
            short_words=settings.short_words,
            lead_words=settings.lead_words,
            opening_words=settings.opening_words,
            lead_perm=settings.lead_perm,
            short_opening_words=settings.short_opening_words,
        )
        if settings.lsh_bands is not None and settings.lsh_rows is not None:
            self.bands, self.rows = settings.lsh_bands, settings.lsh_rows
        else:
            self.bands, self.rows = band_params(settings.lsh_threshold, settings.num_perm, settings.lsh_recall_weight)
        self._window = settings.window_days * 86_400_000_000
        self._lsh = CompactLSH(self.bands, self.rows, settings.max_bucket)
        # Per-article state, one row per article in arrival order. Verification
        # keeps 8 bits of each MinHash value (b-bit MinHash): a chance collision
        # of two different values (1 in 256) is corrected for in the estimate,
        # and it halves the biggest per-article array twice over.
        self._n = 0
        self._sig = np.empty((0, settings.num_perm), dtype=np.uint8)
        self._size = np.empty(0, dtype=np.uint32)
        self._at = np.empty(0, dtype=np.int64)
        self._short = np.empty(0, dtype=bool)
        self._outlet = np.empty(0, dtype=np.uint32)
        self._alive = np.empty(0, dtype=bool)
        self._cluster = np.empty(0, dtype=np.int32)
        self._jac = np.empty(0, dtype=np.float32)
        self._con = np.empty(0, dtype=np.float32)
        # The lead's MinHash with its opening bits (see signatures), and the
        # shingle counts of lead and opening.
        self._lead = np.empty((0, settings.lead_perm), dtype=np.uint8)
        self._lead_size = np.empty(0, dtype=np.uint16)  # 0: not recorded
        self._opening_size = np.empty(0, dtype=np.uint16)
        self._ids: list[str] = []
        self._matched: list[str | None] = []
        self._row_of: dict[str, int] = {}
        self._short_sets: dict[int, npt.NDArray[np.uint32]] = {}
        self._dead = 0
        # Clusters: id and union-find parent, by cluster index.
        self._cid: list[str] = []
        self._parent: list[int] = []

    # ------------------------------------------------------------------ state

    def __len__(self) -> int:
        """Articles currently in the window."""
        return len(self._row_of)

    def _grow(self, extra: int) -> None:
        need = self._n + extra
        cap = len(self._size)
        if need <= cap:
            return
        new_cap = max(need, int(cap * _GROW) + 16)

        def grown(arr: _A) -> _A:
            out = np.zeros((new_cap, *arr.shape[1:]), dtype=arr.dtype)
            out[:cap] = arr
            return cast(_A, out)

        self._sig = grown(self._sig)
        self._size = grown(self._size)
        self._at = grown(self._at)
        self._short = grown(self._short)
        self._outlet = grown(self._outlet)
        self._alive = grown(self._alive)
        self._cluster = grown(self._cluster)
        self._jac = grown(self._jac)
        self._con = grown(self._con)
        self._lead = grown(self._lead)
        self._lead_size = grown(self._lead_size)
        self._opening_size = grown(self._opening_size)

    def _append(self, ids: Sequence[str], at: I64, batch: SketchBatch) -> I64:
        """Add these articles' rows (``_grow`` first); returns the rows."""
        base, m = self._n, len(ids)
        rows = slice(base, base + m)
        self._n += m
        self._sig[rows] = batch.hashvalues.astype(np.uint8)  # the low 8 bits
        self._size[rows] = batch.size
        self._at[rows] = at
        self._short[rows] = batch.short
        self._outlet[rows] = batch.outlet
        self._alive[rows] = True
        self._cluster[rows] = -1
        if batch.lead.shape[1] == self.params.lead_perm:
            self._lead[rows] = batch.lead
            self._lead_size[rows] = np.minimum(batch.lead_size, 0xFFFF)
            self._opening_size[rows] = np.minimum(batch.opening_size, 0xFFFF)
        else:
            self._lead_size[rows] = self._opening_size[rows] = 0
        self._ids.extend(ids)
        self._matched.extend([None] * m)
        self._row_of.update(zip(ids, range(base, base + m)))
        for i, short_set in enumerate(batch.short_sets):
            if short_set is not None and batch.short[i]:
                self._short_sets[base + i] = short_set
        return np.arange(base, base + m, dtype=np.int64)

    def _new_cluster(self, cluster_id: str) -> int:
        self._cid.append(cluster_id)
        self._parent.append(len(self._parent))
        return len(self._cid) - 1

    def _find(self, k: int) -> int:
        parent = self._parent
        root = k
        while parent[root] != root:
            root = parent[root]
        while parent[k] != root:
            parent[k], k = root, parent[k]
        return root

    def cluster_of(self, article_id: str) -> str | None:
        """The current cluster id of an article in the window."""
        row = self._row_of.get(article_id)
        if row is None:
            return None
        return self._cid[self._find(int(self._cluster[row]))]

    def nbytes(self) -> int:
        """Bytes of index state: per-article arrays (as allocated), LSH buckets, ids, cluster table, short sets.

        Python objects are counted as ``sys.getsizeof`` counts them; what the
        allocator holds around them (free lists, fragmentation) is not.
        """
        arrays = sum(
            a.nbytes
            for a in (
                self._sig,
                self._size,
                self._at,
                self._short,
                self._outlet,
                self._alive,
                self._cluster,
                self._jac,
                self._con,
                self._lead,
                self._lead_size,
                self._opening_size,
            )
        )
        strings = sum(map(sys.getsizeof, self._ids)) + sum(map(sys.getsizeof, self._cid))
        containers = sum(
            map(sys.getsizeof, (self._ids, self._matched, self._row_of, self._cid, self._parent, self._short_sets))
        )
        # The row and parent numbers they hold are int objects of their own (only small ints are shared).
        ints = _INT_BYTES * (len(self._row_of) + len(self._parent) + len(self._short_sets))
        short = sum(_ARRAY_BYTES + s.nbytes for s in self._short_sets.values())
        return arrays + self._lsh.nbytes() + strings + containers + ints + short

    # ---------------------------------------------------------------- restore

    def restore(
        self, signatures: Iterable[Signature], memberships: Iterable[Membership], aliases: Mapping[str, str]
    ) -> None:
        """Rebuild in-memory state (LSH, cluster map) from what the store persisted.

        Args:
            signatures: the persisted signatures of the articles in the window.
            memberships: their memberships, already repointed to surviving clusters.
            aliases: absorbed cluster id -> surviving cluster id (followed transitively).

        Raises:
            ValueError: a signature was made with other MinHash parameters.
        """
        by_article = {m.article_id: m for m in memberships}
        existing = {self._cid[k]: k for k in range(len(self._cid)) if self._parent[k] == k}
        todo = sorted(
            (s for s in signatures if s.article_id not in self._row_of), key=lambda s: (s.at, s.article_id)
        )
        self._grow(len(todo))
        batch = SketchBatch.of([Sketch.from_bytes(signature.data, self.params) for signature in todo], self.params)
        rows = self._append(
            [signature.article_id for signature in todo],
            np.fromiter((epoch_micros(signature.at) for signature in todo), np.int64, len(todo)),
            batch,
        )
        for row, signature in zip(rows.tolist(), todo):
            membership = by_article.get(signature.article_id)
            if membership is None:
                logger.warning("article %s has a signature but no membership; it founds its own cluster", signature.article_id)
                cluster_id = founded_cluster_id(signature.article_id, epoch_micros(signature.at))
            else:
                cluster_id = _resolve(membership.cluster_id, aliases)
                self._matched[row] = membership.matched_article_id
                self._jac[row] = membership.jaccard if membership.jaccard is not None else np.nan
                self._con[row] = membership.containment if membership.containment is not None else np.nan
            k = existing.get(cluster_id)
            if k is None:
                k = existing[cluster_id] = self._new_cluster(cluster_id)
            self._cluster[row] = k
        matchable = batch.size > 0
        if matchable.any():
            keys = band_keys(batch.hashvalues[matchable], self.bands, self.rows)
            self._lsh.insert(keys, rows[matchable].astype(np.uint32))
        logger.info("restored %d articles in %d clusters", len(todo), len(existing))

    # ------------------------------------------------------------------- add

    def add_many(self, articles: Sequence[Article]) -> list[Assignment]:
        """Cluster new articles in arrival order.

        Signatures are computed by the pool's workers when the batch has at
        least ``settings.pool_min_batch`` articles. An article id
        already in the window gets its existing membership back and changes
        nothing.

        Args:
            articles: the new articles, in any order.

        Returns:
            One assignment per input article, in input order. Membership cluster
            ids are the ones current at the end of the batch; ``absorbed`` on
            the article that bridged clusters names the ids it merged away.
        """
        ordered = sorted(range(len(articles)), key=lambda i: articles[i].arrival_key)
        fresh: list[int] = []
        seen: set[str] = set()
        for i in ordered:
            article_id = articles[i].id
            if article_id not in self._row_of and article_id not in seen:
                fresh.append(i)
                seen.add(article_id)
        fresh_set = set(fresh)
        others = [i for i in range(len(articles)) if i not in fresh_set]
        # Signatures are kept as the bytes returned, not as sketches (a third of the memory).
        signed: dict[int, bytes] = {}
        absorbed_by_row: dict[int, tuple[str, ...]] = {}
        pool = self.pool if len(fresh) >= self.settings.pool_min_batch else None
        workers = pool.workers if pool is not None else 1
        # With workers, chunks small enough that each has one while this process clusters another.
        chunk = _PIPELINE_CHUNK if pool is None else max(1, min(_PIPELINE_CHUNK, -(-len(fresh) // (2 * workers))))
        self._grow(len(fresh))  # once for the batch, not once per sub-batch
        # Sub-batches are clustered in arrival order as their sketches arrive;
        # by the order-independence contract this equals one big batch.
        position = 0
        items = [(articles[i].title, articles[i].text) for i in fresh]
        chunks = (items[i : i + chunk] for i in range(0, len(items), chunk))
        for part in sketch_chunks(chunks, self.params, pool, ahead=2 * workers):
            indices = fresh[position : position + len(part)]
            position += len(part)
            part = part.with_outlets(articles[i].outlet for i in indices)
            signed.update((i, sketch.to_bytes(self.params)) for i, sketch in zip(indices, part))
            absorbed_by_row.update(self._cluster_fresh([articles[i] for i in indices], part))
        # Known articles are signed again: their Signature is returned as it was
        # (a sketch is a pure function of the text, so the bytes are the same).
        if others:
            again = sketch_texts([(articles[i].title, articles[i].text) for i in others], self.params)
            again = again.with_outlets(articles[i].outlet for i in others)
            signed.update((i, sketch.to_bytes(self.params)) for i, sketch in zip(others, again))
        result: list[Assignment] = []
        for i, article in enumerate(articles):
            row = self._row_of[article.id]
            result.append(
                Assignment(
                    membership=self._membership(row),
                    signature=Signature(article_id=article.id, data=signed[i], at=arrival_time(article)),
                    absorbed=absorbed_by_row.get(row, ()) if i in fresh_set else (),
                )
            )
        return result

    def add_signed(self, ids: Sequence[str], at: Sequence[int], sketches: SketchBatch) -> None:
        """Cluster new articles signed elsewhere (by ``newsagg dedup``'s workers), as one batch.

        ``at``: each article's arrival time (``arrival_time``) in microseconds
        since the epoch, by which (then by id) the batch is ordered. Article ids
        must be new and distinct (the caller checks).
        """
        order = sorted(range(len(ids)), key=lambda i: (at[i], ids[i]))
        self._grow(len(ids))
        self._add_rows([ids[i] for i in order], np.asarray(at, dtype=np.int64)[order], sketches.take(order))

    def _membership(self, row: int) -> Membership:
        jac = float(self._jac[row])
        con = float(self._con[row])
        return Membership(
            article_id=self._ids[row],
            cluster_id=self._cid[self._find(int(self._cluster[row]))],
            matched_article_id=self._matched[row],
            jaccard=None if np.isnan(jac) or self._matched[row] is None else round(jac, 4),
            containment=None if np.isnan(con) or self._matched[row] is None else round(con, 4),
        )

    def _cluster_fresh(self, articles: Sequence[Article], sketches: SketchBatch) -> dict[int, tuple[str, ...]]:
        self._grow(len(articles))
        at = np.fromiter((epoch_micros(arrival_time(article)) for article in articles), np.int64, len(articles))
        return self._add_rows([article.id for article in articles], at, sketches)

    def _add_rows(self, ids: Sequence[str], at: I64, sketches: SketchBatch) -> dict[int, tuple[str, ...]]:
        """Append and cluster new articles, in arrival order; returns what each row that merged clusters absorbed."""
        new_rows = self._append(ids, at, sketches)
        matchable = sketches.size > 0
        values = sketches.hashvalues
        keys = band_keys(values, self.bands, self.rows)

        q_old, c_old = self._lsh.query(keys[matchable])
        idx = np.nonzero(matchable)[0]
        later, earlier = self._lsh.self_pairs(keys[matchable])
        q = np.concatenate([new_rows[idx[q_old]], new_rows[idx[later]]])
        c = np.concatenate([c_old, new_rows[idx[earlier]]])
        self._lsh.insert(keys[matchable], new_rows[matchable].astype(np.uint32))

        q, c = self._filter_pairs(q, c)
        accept, jac, con = self._verify(q, c)
        q, c, jac, con = q[accept], c[accept], jac[accept], con[accept]
        return self._assign(new_rows, q, c, jac, con)

    def _filter_pairs(self, q: I64, c: I64) -> tuple[I64, I64]:
        """Unique (later, earlier) pairs of live articles within the window of each other."""
        if len(q) == 0:
            return q, c
        keep = (c < q) & self._alive[c] & (np.abs(self._at[q] - self._at[c]) <= self._window)
        q, c = q[keep], c[keep]
        pair = distinct(q * (self._n + 1) + c)
        return pair // (self._n + 1), pair % (self._n + 1)

    def _verify(self, q: I64, c: I64) -> tuple[npt.NDArray[np.bool_], F64, F64]:
        """Accept or reject candidate pairs; returns (accepted, jaccard, containment)."""
        s = self.settings
        if len(q) == 0:
            empty = np.empty(0, dtype=np.float64)
            return np.empty(0, dtype=bool), empty, empty
        jac = _jaccard(self._sig[q] == self._sig[c], _B_COLLIDE)
        nq = self._size[q].astype(np.float64)
        nc = self._size[c].astype(np.float64)
        inter, con = _overlap(jac, nq, nc)
        short_q = self._short[q]
        short_c = self._short[c]
        # Two stories from one outlet share its stock blocks (newsletter promo,
        # "about us"); the same outlet running one story twice shares nearly all.
        same_outlet = (self._outlet[q] == self._outlet[c]) & (self._outlet[q] != 0)
        needed = np.where(same_outlet, s.same_outlet_containment, s.containment_threshold)
        long_pair = ~(short_q | short_c)
        accept = long_pair & (jac >= s.jaccard_threshold)
        # Containment of the smaller text; a short one must be (nearly) contained.
        contained = np.where(
            long_pair,
            (con >= needed) & (inter >= s.min_overlap),
            (con >= s.short_containment) & (inter >= s.min_overlap / 2),
        )
        # Pairs of short texts are decided on their exact shingles below.
        exact = [
            (i, a, b)
            for i in np.nonzero(short_q & short_c)[0].tolist()
            if (a := self._short_sets.get(int(q[i]))) is not None and (b := self._short_sets.get(int(c[i]))) is not None
        ]
        contained[np.asarray([i for i, _, _ in exact], dtype=np.int64)] = False
        # Containment alone also needs one text's opening in the other's lead.
        on_containment = np.nonzero(contained & ~accept)[0]
        accept[on_containment] = self._opening_in_lead(q[on_containment], c[on_containment])
        if exact:
            rows = np.asarray([i for i, _, _ in exact], dtype=np.int64)
            accept[rows], jac[rows], con[rows] = _short_pairs([a for _, a, _ in exact], [b for _, _, b in exact], s)
        return accept, jac, con

    def _opening_in_lead(self, q: I64, c: I64) -> npt.NDArray[np.bool_]:
        """Whether one text's opening is found in the other's lead, either way round (True where not recorded)."""
        lead_perm = self.params.lead_perm
        if lead_perm == 0 or len(q) == 0:
            return np.ones(len(q), dtype=bool)
        a, b = self._lead[q], self._lead[c]
        agree = ((a ^ b) & np.uint8(0x7F)) == 0
        jac = _jaccard(agree, _B7_COLLIDE)
        lead_q = self._lead_size[q].astype(np.float64)
        lead_c = self._lead_size[c].astype(np.float64)
        union = (lead_q + lead_c) / (1.0 + jac)
        # An agreeing value is a shared shingle drawn uniformly from the union of
        # the leads; its opening bit says whether it lies in that text's opening.
        in_c = np.count_nonzero(agree & ((a & np.uint8(OPENING_BIT)) != 0), axis=1) / lead_perm * union
        in_q = np.count_nonzero(agree & ((b & np.uint8(OPENING_BIT)) != 0), axis=1) / lead_perm * union
        share_q = in_c / np.maximum(1.0, self._opening_size[q])
        share_c = in_q / np.maximum(1.0, self._opening_size[c])
        unknown = (lead_q == 0) | (lead_c == 0)
        return cast(npt.NDArray[np.bool_], unknown | (np.maximum(share_q, share_c) >= self.settings.opening_containment))

    def _assign(self, new_rows: I64, q: I64, c: I64, jac: F64, con: F64) -> dict[int, tuple[str, ...]]:
        # A row's pairs together, its strongest match first (ties: the earliest article), which explains the membership.
        order = np.lexsort((c, -(con + jac), q))
        q, c, jac, con = q[order], c[order], jac[order], con[order]
        starts = np.searchsorted(q, new_rows, side="left")
        ends = np.searchsorted(q, new_rows, side="right")
        matched = starts < ends
        self._jac[new_rows] = np.nan
        self._con[new_rows] = np.nan
        self._jac[new_rows[matched]] = jac[starts[matched]]
        self._con[new_rows[matched]] = con[starts[matched]]
        ids, cid, cluster_of = self._ids, self._cid, self._cluster.item
        partners = c.tolist()
        absorbed_by_row: dict[int, tuple[str, ...]] = {}
        arrivals = self._at[new_rows].tolist()
        for row, at, lo, hi in zip(new_rows.tolist(), arrivals, starts.tolist(), ends.tolist()):
            own = founded_cluster_id(ids[row], at)
            if lo == hi:
                self._cluster[row] = self._new_cluster(own)
                continue
            roots = {self._find(cluster_of(other)) for other in partners[lo:hi]}
            survivor = min(roots, key=cid.__getitem__)
            if own < cid[survivor]:
                # Published before every member but arrived later: the cluster is renamed
                # after it, and its old id becomes an alias, as a merged-away one does.
                survivor = self._new_cluster(own)
            absorbed = sorted(cid[k] for k in roots if k != survivor)
            for k in roots:
                if k != survivor:
                    self._parent[k] = survivor
            self._cluster[row] = survivor
            self._matched[row] = ids[partners[lo]]
            if absorbed:
                absorbed_by_row[row] = tuple(absorbed)
                logger.debug("article %s merged clusters %s into %s", ids[row], absorbed, cid[survivor])
        return absorbed_by_row

    # ----------------------------------------------------------------- evict

    def evict_before(self, cutoff: datetime) -> int:
        """Drop articles that arrived before ``cutoff`` from the LSH and the window; returns how many."""
        limit = epoch_micros(cutoff)
        old = np.nonzero(self._alive[: self._n] & (self._at[: self._n] < limit))[0]
        if len(old) == 0:
            return 0
        self._alive[old] = False
        gone = [self._ids[r] for r in old.tolist()]
        for r, article_id in zip(old.tolist(), gone):
            del self._row_of[article_id]
            self._short_sets.pop(r, None)
        self._dead += len(old)
        if self._dead * 4 > self._n:
            self._compact()
        return len(old)

    def _compact(self) -> None:
        keep = np.nonzero(self._alive[: self._n])[0]
        remap = np.full(self._n, -1, dtype=np.int64)
        remap[keep] = np.arange(len(keep))
        self._lsh.compact(remap)
        # Renumber clusters too: only those that still have members survive.
        roots = [self._find(int(k)) for k in self._cluster[keep].tolist()]
        new_index: dict[int, int] = {}
        cid: list[str] = []
        for root in roots:
            if root not in new_index:
                new_index[root] = len(cid)
                cid.append(self._cid[root])
        self._cid = cid
        self._parent = list(range(len(cid)))
        self._sig = self._sig[keep].copy()
        self._size = self._size[keep].copy()
        self._at = self._at[keep].copy()
        self._short = self._short[keep].copy()
        self._outlet = self._outlet[keep].copy()
        self._alive = self._alive[keep].copy()
        self._cluster = np.asarray([new_index[r] for r in roots], dtype=np.int32)
        self._jac = self._jac[keep].copy()
        self._con = self._con[keep].copy()
        self._lead = self._lead[keep].copy()
        self._lead_size = self._lead_size[keep].copy()
        self._opening_size = self._opening_size[keep].copy()
        self._ids = [self._ids[r] for r in keep.tolist()]
        self._matched = [self._matched[r] for r in keep.tolist()]
        self._short_sets = {int(remap[r]): s for r, s in self._short_sets.items() if remap[r] >= 0}
        self._row_of = {article_id: row for row, article_id in enumerate(self._ids)}
        self._n = len(keep)
        self._dead = 0


def _jaccard(agree: npt.NDArray[np.bool_], collide: float) -> F64:
    """Jaccard estimates from which b-bit MinHash values agree, row by row."""
    # b-bit estimator: P(agree) = J + (1 - J) * collide.
    share = np.count_nonzero(agree, axis=1) / max(1, agree.shape[1])
    return cast(F64, np.clip((share - collide) / (1.0 - collide), 0.0, 1.0))


def _overlap(jac: F64, na: F64, nb: F64) -> tuple[F64, F64]:
    """Shared shingles and containment of the smaller set, from a Jaccard estimate and the exact set sizes."""
    # Containment of the smaller text in the larger is what an abridged copy keeps high.
    inter = jac * (na + nb) / (1.0 + jac)
    return inter, np.minimum(1.0, inter / np.maximum(1.0, np.minimum(na, nb)))


def _short_pairs(
    a: Sequence[npt.NDArray[np.uint32]], b: Sequence[npt.NDArray[np.uint32]], s: ClusteringSettings
) -> tuple[npt.NDArray[np.bool_], F64, F64]:
    """Decide pairs of short texts on their exact tagged shingle sets: (accepted, jaccard, containment).

    Each pair is compared over title + lead and over the lead alone (retitled
    copies); either may match, and the better passing score is given. Each
    opening must also be (mostly) in the other's lead; a text without body
    words, or from an older signature, has no opening to check. All pairs of
    a batch at once: a few numpy calls, not a few per pair.
    """
    n = len(a)
    a_pair, a_values = _by_pair(a)
    b_pair, b_values = _by_pair(b)

    def part(pair: U64, values: U64, keep: npt.NDArray[np.bool_]) -> tuple[U64, I64]:
        # Each pair's values of one part of its set as (pair, value) keys, sorted; and their count.
        keys: U64 = (pair[keep] << np.uint64(32)) | (values[keep] & _HASH_BITS)
        return keys, np.bincount(pair[keep].astype(np.int64), minlength=n)

    a_both, a_both_n = part(a_pair, a_values, a_values < TAG_OPENING)
    b_both, b_both_n = part(b_pair, b_values, b_values < TAG_OPENING)
    a_lead, a_lead_n = part(a_pair, a_values, a_values < TAG_TITLE)
    b_lead, b_lead_n = part(b_pair, b_values, b_values < TAG_TITLE)
    a_opening, a_opening_n = part(a_pair, a_values, a_values >= TAG_OPENING)
    b_opening, b_opening_n = part(b_pair, b_values, b_values >= TAG_OPENING)

    def scores(x: U64, nx: I64, y: U64, ny: I64) -> tuple[F64, F64]:
        common = _common_by_pair(x, y, n)
        union = nx + ny - common
        jaccard: F64 = np.divide(common, union, out=np.zeros(n), where=union > 0)
        return jaccard, common / np.maximum(1, np.minimum(nx, ny))

    jac_both, con_both = scores(a_both, a_both_n, b_both, b_both_n)
    jac_lead, con_lead = scores(a_lead, a_lead_n, b_lead, b_lead_n)
    pass_both = (jac_both >= s.short_jaccard) & (con_both >= s.short_containment)
    pass_lead = (jac_lead >= s.short_jaccard) & (con_lead >= s.short_containment)
    a_in_b = _common_by_pair(a_opening, b_lead, n) / np.maximum(1, a_opening_n)
    b_in_a = _common_by_pair(b_opening, a_lead, n) / np.maximum(1, b_opening_n)
    openings = (a_opening_n == 0) | (b_opening_n == 0) | (np.minimum(a_in_b, b_in_a) >= s.short_opening)
    better_lead = (jac_lead > jac_both) | ((jac_lead == jac_both) & (con_lead > con_both))
    lead = np.where(pass_both == pass_lead, better_lead, pass_lead)
    return (pass_both | pass_lead) & openings, np.where(lead, jac_lead, jac_both), np.where(lead, con_lead, con_both)


def _by_pair(sets: Sequence[npt.NDArray[np.uint32]]) -> tuple[U64, U64]:
    """The values of several sorted sets laid end to end, with the index of the set each came from."""
    sizes = np.fromiter(map(len, sets), np.int64, len(sets))
    pair = np.repeat(np.arange(len(sets), dtype=np.uint64), sizes)
    return pair, np.concatenate([np.empty(0, np.uint32), *sets]).astype(np.uint64)


def _common_by_pair(x: U64, y: U64, n: int) -> I64:
    """For each pair, how many keys two sorted arrays of (pair, value) keys share (distinct within each)."""
    # Two sorted runs: numpy's stable sort (timsort) merges them in one linear pass.
    keys = np.sort(np.concatenate([x, y]), kind="stable")
    same = keys[1:][keys[1:] == keys[:-1]]
    counts: I64 = np.bincount((same >> np.uint64(32)).astype(np.int64), minlength=n)
    return counts


def _resolve(cluster_id: str, aliases: Mapping[str, str]) -> str:
    seen = {cluster_id}
    while cluster_id in aliases:
        cluster_id = aliases[cluster_id]
        if cluster_id in seen:  # a cycle would be a store bug; stop rather than spin
            logger.error("alias cycle at cluster %s", cluster_id)
            break
        seen.add(cluster_id)
    return cluster_id


def batch_engine(settings: ClusteringSettings, pool: WorkerPool | None = None) -> ClusterEngine:
    """An engine for one-shot batches (``cluster_documents``, ``newsagg dedup``): it has no window.

    ``window_days`` bounds an incremental index over a stream; a batch is one
    collection the caller asked to deduplicate, and whether a document carries
    a date must not decide what it is a duplicate of. (An undated document
    arrives at its fetch time, which for ``newsagg dedup`` is the moment of the
    run: with a window, it could never match the dated documents of the same
    file.) Arrival times still give the order, so a cluster is named after its
    earliest dated member. ``pool``'s workers sign the articles (None: this
    process does).
    """
    engine = ClusterEngine(settings, pool)
    engine._window = _NO_WINDOW
    return engine


def cluster_documents(
    articles: Sequence[Article], settings: ClusteringSettings, pool: WorkerPool | None = None
) -> list[Membership]:
    """One-shot batch clustering: one membership per input article, in input order (see ``batch_engine``)."""
    return [assignment.membership for assignment in batch_engine(settings, pool).add_many(articles)]
