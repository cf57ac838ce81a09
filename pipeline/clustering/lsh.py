"""Banded MinHash LSH tables in memory: ``CompactLSH``.

Banding is datasketch's: ``b`` bands of ``r`` consecutive hash values, chosen by
``datasketch.MinHashLSH``'s false-positive/false-negative optimiser for our
(recall-weighted) threshold. What differs is where the buckets live.

``CompactLSH`` keeps, per band, sorted numpy arrays of (32-bit band key, row)
pairs in a few size-tiered levels, queried and filled for a whole batch at once.
datasketch's dict storage holds a Python ``set`` per bucket and a list of band
keys per document, several KiB per article at our band count (the benchmark
measures it); this holds 8 bytes per band. A false key collision (two different
bands, one 32-bit key) only adds a candidate, which verification then rejects.
It returns candidates by row; it decides nothing.

Each clustering run rebuilds its index from the window's stored signatures,
under the store's "clusters" lock. A shared index in Redis was measured against
that and bought nothing: the same candidates, far slower, unbounded memory
(bench/README.md, "The Redis LSH index").
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

U32 = npt.NDArray[np.uint32]
I64 = npt.NDArray[np.int64]

_MAX_LEVELS = 6


def band_params(threshold: float, num_perm: int, recall_weight: float) -> tuple[int, int]:
    """(bands, rows per band) as datasketch's MinHashLSH optimiser picks them.

    The same search as ``datasketch.lsh._optimal_param``: the (b, r) with
    b * r <= num_perm, taken in the same order, that first minimises the
    weighted false-positive and false-negative areas under the S-curve. The
    areas are integrals of polynomials of degree b * r, which Gauss-Legendre
    quadrature with num_perm nodes gives exactly, where datasketch calls SciPy
    (whose import costs about a second of every ``newsagg dedup``). A test
    pins the equality.
    """
    nodes, weights = np.polynomial.legendre.leggauss(max(1, num_perm))
    pairs = [(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)]
    b = np.array([p[0] for p in pairs], dtype=np.float64)[:, None]
    r = np.array([p[1] for p in pairs], dtype=np.float64)[:, None]

    def area(lo: float, hi: float, miss: bool) -> npt.NDArray[np.float64]:
        # Each pair's integral over [lo, hi] of its chance to collide (or to miss).
        s = (hi - lo) / 2 * nodes + (hi + lo) / 2
        collide = 1 - (1 - s[None, :] ** r) ** b
        p: npt.NDArray[np.float64] = ((1 - collide) if miss else collide) @ weights * ((hi - lo) / 2)
        return p

    false_positive = area(0.0, threshold, miss=False)
    false_negative = area(threshold, 1.0, miss=True)
    error = false_positive * (1.0 - recall_weight) + false_negative * recall_weight
    return pairs[int(np.argmin(error))]


def band_keys(hashvalues: npt.NDArray[np.uint32], bands: int, rows: int) -> U32:
    """32-bit bucket keys, uint32[n, bands], for MinHash values uint32[n, num_perm]."""
    n = hashvalues.shape[0]
    used = hashvalues[:, : bands * rows].astype(np.uint64).reshape(n, bands, rows)
    acc = used[:, :, 0].copy()
    for j in range(1, rows):
        acc = (acc << np.uint64(32)) ^ (acc >> np.uint64(32)) ^ used[:, :, j]
        acc *= np.uint64(0x9E3779B97F4A7C15)
    acc ^= acc >> np.uint64(33)
    acc *= np.uint64(0xFF51AFD7ED558CCD)
    acc ^= acc >> np.uint64(33)
    return (acc >> np.uint64(32)).astype(np.uint32)


class _Level:
    __slots__ = ("keys", "rows")

    def __init__(self, keys: U32, rows: U32) -> None:
        self.keys = keys
        self.rows = rows


def _sorted_level(keys: U32, rows: U32) -> _Level:
    # Sorted by key, then row, so that a bucket lists its rows oldest first.
    # The rows come in ascending order for each key (new rows are numbered
    # after every row in the index, and a merge puts the older level first),
    # so a stable sort by key keeps them so; timsort, numpy's stable sort for
    # these keys, merges two sorted levels in one linear pass.
    order = np.argsort(keys, kind="stable")
    return _Level(np.ascontiguousarray(keys[order]), np.ascontiguousarray(rows[order]))


class CompactLSH:
    """Per-band sorted (key, row) arrays in size-tiered levels; batch insert and query.

    Rows are small integers the caller assigns in arrival order. ``max_bucket``
    caps how many rows one bucket contributes per query (the most recent ones),
    so that a bucket shared by thousands of identical texts cannot make a batch
    quadratic.
    """

    def __init__(self, bands: int, rows: int, max_bucket: int = 64) -> None:
        self.bands = bands
        self.rows = rows
        self.max_bucket = max_bucket
        self._levels: list[list[_Level]] = [[] for _ in range(bands)]

    def __len__(self) -> int:
        return sum(len(level.rows) for level in self._levels[0]) if self.bands else 0

    def nbytes(self) -> int:
        """Bytes held by the bucket arrays."""
        return sum(level.keys.nbytes + level.rows.nbytes for band in self._levels for level in band)

    def insert(self, keys: U32, rows: U32) -> None:
        """Add rows with their band keys (uint32[n, bands])."""
        if len(rows) == 0:
            return
        for band in range(self.bands):
            levels = self._levels[band]
            levels.append(_sorted_level(keys[:, band], rows))
            # Merge while the newest level is at least half its predecessor, so
            # a band holds O(log n) levels and each row is re-sorted O(log n) times.
            while len(levels) > 1 and (
                2 * len(levels[-1].rows) >= len(levels[-2].rows) or len(levels) > _MAX_LEVELS
            ):
                top = levels.pop()
                below = levels.pop()
                levels.append(
                    _sorted_level(np.concatenate([below.keys, top.keys]), np.concatenate([below.rows, top.rows]))
                )

    def query(self, keys: U32) -> tuple[I64, I64]:
        """Candidate pairs for query keys uint32[m, bands]: (query index, row), with repeats."""
        q_parts: list[I64] = []
        r_parts: list[I64] = []
        for band in range(self.bands):
            qk = keys[:, band]
            for level in self._levels[band]:
                lo = np.searchsorted(level.keys, qk, side="left")
                # Most keys are in no bucket: the end of a bucket is looked up only for those that are.
                hit = np.flatnonzero(level.keys[np.minimum(lo, len(level.keys) - 1)] == qk)
                if len(hit) == 0:
                    continue
                hi = np.searchsorted(level.keys, qk[hit], side="right")
                lo = np.maximum(lo[hit], hi - self.max_bucket)
                counts = hi - lo
                total = int(counts.sum())
                qidx = np.repeat(hit, counts)
                starts = np.repeat(lo - (np.cumsum(counts) - counts), counts)
                pos = np.arange(total, dtype=np.int64) + starts
                q_parts.append(qidx)
                r_parts.append(level.rows[pos].astype(np.int64))
        if not q_parts:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty
        return np.concatenate(q_parts), np.concatenate(r_parts)

    def self_pairs(self, keys: U32) -> tuple[I64, I64]:
        """Colliding pairs inside one batch: (later index, earlier index), indices into ``keys``, a pair once per band."""
        m = keys.shape[0]
        # Every band's keys in one array, band after band and each band's rows in order, so one
        # stable sort lists each bucket's rows oldest first; a row pairs with up to max_bucket
        # rows before it in its bucket.
        flat = ((np.arange(self.bands, dtype=np.uint64) << np.uint64(32))[:, None] | keys.T).ravel()
        order = np.argsort(flat, kind="stable")
        bucket = flat[order]
        at = np.arange(len(bucket), dtype=np.int64)
        bucket_start = np.zeros(len(bucket), dtype=np.int64)
        bucket_start[1:] = np.where(bucket[1:] != bucket[:-1], at[1:], 0)
        np.maximum.accumulate(bucket_start, out=bucket_start)
        partners = np.minimum(at - bucket_start, self.max_bucket)
        later = np.repeat(at, partners)
        back = np.arange(len(later), dtype=np.int64) - np.repeat(np.cumsum(partners) - partners, partners) + 1
        index = order % max(1, m)
        return index[later], index[later - back]

    def compact(self, remap: I64) -> None:
        """Drop rows whose ``remap`` entry is negative and renumber the others."""
        for band in range(self.bands):
            keys = np.concatenate([level.keys for level in self._levels[band]] or [np.empty(0, np.uint32)])
            rows = np.concatenate([level.rows for level in self._levels[band]] or [np.empty(0, np.uint32)])
            new_rows = remap[rows.astype(np.int64)]
            keep = new_rows >= 0
            self._levels[band] = (
                [_sorted_level(keys[keep], new_rows[keep].astype(np.uint32))] if keep.any() else []
            )
