"""Shingles and MinHash signatures, vectorised, and their compact byte form.

Shingles are word k-grams of the normalised body (in scripts without spaces a
word is a character n-gram: see ``normalize``), hashed with xxhash (a token
hash, then a vectorised combination of k token hashes): no SHA-1 and no Python
call per shingle. The MinHash is datasketch's "affine32" scheme computed for a
whole batch with numpy (pre-mix with the MurmurHash3 finaliser, then
``a * h + b mod 2**32`` per permutation, then a column minimum per document);
``tests/clustering`` pins that the values equal
``datasketch.MinHash(..).update_batch`` on the same shingle hashes.

Every text also gets a small MinHash of its lead (the first ``lead_words`` body
words) that also tells where its opening is (the first ``opening_words``, about
a paragraph): each value keeps 7 bits of the minimum and one bit saying whether
the shingle that gave it lies in the opening. Where two texts' values agree,
the shingle is shared, so the agreeing values with the opening bit set estimate
how much of one text's opening is in the other's lead. A match on containment
alone must find one text's opening there: an abridged copy keeps the opening,
even under an outlet's own intro; a different story that carries over a
background paragraph, a quote or a stock block opens with its own.

Short texts (fewer than ``short_words`` body words) also keep their exact set
of smaller shingles over title and lead, because a 128-value MinHash cannot
tell two formulaic 50-word briefs apart reliably enough. The set keeps 30 bits
of each hash under a two-bit tag in the top bits, so that the sorted set comes
grouped: the lead, then the title, then the opening (the lead's first
``short_opening_words`` words again, so that two briefs can be required to open
alike).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache, partial
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import xxhash

from pipeline.clustering.normalize import body_text, canonical_utf8, title_tokens, word_bytes
from pipeline.pool import WorkerPool


U32 = npt.NDArray[np.uint32]
U64 = npt.NDArray[np.uint64]
U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]
_Int = TypeVar("_Int", npt.NDArray[np.uint32], npt.NDArray[np.uint64], npt.NDArray[np.int64])

_MAGIC = b"NS"
_VERSION = 2
# magic, version, flags, num_perm, seed, shingle set size, outlet hash
_HEADER_V1 = struct.Struct("<2sBBHHII")
# ... then the length of the lead MinHash and the shingle set sizes of the lead and the opening
_HEADER = struct.Struct("<2sBBHHIIHHH")
_FLAG_SHORT = 1
# The two top bits of a short-set value say where its shingle comes from (lead: 0).
TAG_TITLE = np.uint32(1 << 30)
TAG_OPENING = np.uint32(2 << 30)
_TAG_SHIFT = np.uint32(2)
HASH_BITS = np.uint32((1 << 30) - 1)
_COMBINE = np.uint64(0x9E3779B97F4A7C15)
_MAX32 = np.uint32(0xFFFFFFFF)
_LOW7 = np.uint32(0x7F)
OPENING_BIT = 0x80  # in a lead value: the minimum came from the opening
# Rows of the (shingles x permutations) matrix computed at once; bounds the
# transient memory of a batch to a few tens of MiB.
_CHUNK_CELLS = 1_000_000
_TOKEN_CACHE_MAX = 400_000


@dataclass(frozen=True, slots=True)
class SketchParams:
    """What a signature depends on; two signatures compare only if these are equal."""

    num_perm: int = 128
    seed: int = 1
    shingle_size: int = 5
    short_shingle_size: int = 3
    short_words: int = 80
    lead_words: int = 150
    opening_words: int = 40
    lead_perm: int = 64
    short_opening_words: int = 12


@dataclass(frozen=True, slots=True)
class Sketch:
    """One article's matching signature."""

    hashvalues: U32  # MinHash over body shingles, uint32[num_perm]
    size: int  # distinct body shingles
    short: bool
    short_set: U32 | None  # exact sorted tagged shingle hashes of title, lead and opening, short texts only
    outlet: int = 0  # 32-bit hash of the outlet name (0: unknown)
    # The lead's MinHash, uint8[lead_perm]: 7 low bits of each value, and
    # OPENING_BIT when its shingle is in the opening; None: not recorded
    # (older signatures). Then the number of shingles in the lead and in the opening.
    lead: U8 | None = None
    lead_size: int = 0
    opening_size: int = 0

    def to_bytes(self, params: SketchParams) -> bytes:
        """The compact form persisted by the store (about 4 bytes per permutation, 1 per lead value)."""
        flags = _FLAG_SHORT if self.short else 0
        lead = self.lead if self.lead is not None else np.empty(0, np.uint8)
        header = _HEADER.pack(
            _MAGIC,
            _VERSION,
            flags,
            params.num_perm,
            params.seed,
            self.size,
            self.outlet,
            len(lead),
            self.lead_size,
            self.opening_size,
        )
        parts = [header, self.hashvalues.astype("<u4", copy=False).tobytes(), lead.tobytes()]
        if self.short:
            short_set = self.short_set if self.short_set is not None else np.empty(0, np.uint32)
            parts.append(struct.pack("<H", len(short_set)))
            parts.append(short_set.astype("<u4", copy=False).tobytes())
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes, params: SketchParams) -> Sketch:
        """Decode what ``to_bytes`` wrote (or its version 1); raises ValueError for data from other parameters."""
        magic, version, flags, num_perm, seed, size, outlet = _HEADER_V1.unpack_from(data)
        if magic != _MAGIC or version not in (1, _VERSION):
            raise ValueError("not a newsagg clustering signature (bad magic or version)")
        if num_perm != params.num_perm or seed != params.seed:
            raise ValueError(
                f"signature made with num_perm={num_perm}, seed={seed}; "
                f"settings say num_perm={params.num_perm}, seed={params.seed}: re-cluster to change them"
            )
        lead_perm = lead_size = opening_size = 0
        offset = _HEADER_V1.size
        if version >= 2:
            *_, lead_perm, lead_size, opening_size = _HEADER.unpack_from(data)
            offset = _HEADER.size
        hashvalues = np.frombuffer(data, dtype="<u4", count=num_perm, offset=offset).astype(np.uint32)
        offset += 4 * num_perm
        lead: U8 | None = None
        # A lead of another length is left out: the opening check is skipped
        # for this article rather than the signature refused.
        if lead_perm and lead_perm == params.lead_perm:
            lead = np.frombuffer(data, dtype=np.uint8, count=lead_perm, offset=offset).copy()
        offset += lead_perm
        short = bool(flags & _FLAG_SHORT)
        short_set: U32 | None = None
        if short:
            (count,) = struct.unpack_from("<H", data, offset)
            short_set = np.frombuffer(data, dtype="<u4", count=count, offset=offset + 2).astype(np.uint32)
            if version == 1:
                # Version 1 tagged the title in the lowest bit and kept no opening.
                title = np.where(short_set & np.uint32(1), TAG_TITLE, np.uint32(0))
                short_set = distinct(title | (short_set >> _TAG_SHIFT)).astype(np.uint32)
        return cls(
            hashvalues=hashvalues,
            size=int(size),
            short=short,
            short_set=short_set,
            outlet=int(outlet),
            lead=lead,
            lead_size=int(lead_size) if lead is not None else 0,
            opening_size=int(opening_size) if lead is not None else 0,
        )


@lru_cache(maxsize=8)
def permutations(num_perm: int, seed: int) -> tuple[U32, U32]:
    """datasketch's affine32 permutation parameters (a odd, b) for this num_perm and seed."""
    # Drawn as datasketch 2's MinHash._init_permutations draws them (a test pins
    # the equality), so that signing processes need not import datasketch and
    # the SciPy it pulls in: half a second of every pool's start.
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def fmix32(values: U32) -> U32:
    """MurmurHash3's 32-bit finaliser, the pre-mix of datasketch's affine32 scheme."""
    h = values.astype(np.uint32, copy=True)
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    return h


def _fmix64(values: U64) -> U64:
    h = values.copy()
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return h


class _TokenHashes(dict[str | bytes, int]):
    """Token -> its hash as a signed 64-bit int (numpy converts those fastest), computed on first use.

    A token is a str, or its UTF-8 bytes (``word_bytes``): both have the same hash.
    """

    def __missing__(self, word: str | bytes) -> int:
        # The canonical form is hashed, so "said" and "says" are one token.
        value = int.from_bytes(xxhash.xxh3_64_digest(canonical_utf8(word)), "big", signed=True)
        self[word] = value
        return value


_token_cache = _TokenHashes()


def _token_hashes(runs: Iterable[Sequence[str] | Sequence[bytes]]) -> tuple[U64, I64]:
    """The hashes of the tokens of several runs laid end to end, and the runs' lengths.

    Each run is hashed as it comes and can be dropped at once, so a batch's token
    strings (hundreds of thousands) are never all held together: they were most of
    a signing worker's peak memory.
    """
    if len(_token_cache) > _TOKEN_CACHE_MAX:
        _token_cache.clear()
    # The lookups run at C speed (map over the dict's __getitem__); a word not
    # seen before costs one call of __missing__.
    lookup = _token_cache.__getitem__
    parts = [np.fromiter(map(lookup, run), np.int64, len(run)) for run in runs]
    lengths = np.fromiter(map(len, parts), np.int64, len(parts))
    hashes = np.concatenate(parts) if parts else np.empty(0, np.int64)
    return hashes.view(np.uint64), lengths


def distinct(values: _Int) -> _Int:
    """The distinct values, sorted: ``np.unique``, several times faster at every size.

    (numpy's takes a hash-based path for integers and first imports numpy.ma to rule out a
    masked array.)
    """
    ordered = np.sort(values)
    if len(ordered) < 2:
        return ordered
    keep = np.empty(len(ordered), dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def _ranges(starts: I64, counts: I64) -> I64:
    """The ranges ``start, start + 1, ..., start + count - 1`` of each pair, concatenated."""
    ends = np.cumsum(counts)
    total = int(ends[-1]) if len(ends) else 0
    out: I64 = np.arange(total, dtype=np.int64) + np.repeat(starts - (ends - counts), counts)
    return out


def _shingle_runs(th: U64, lengths: I64, k: int) -> tuple[U32, I64]:
    """``shingles_in_order`` of token runs laid end to end (their token hashes ``th``), concatenated; and their counts.

    One pass of numpy over all the runs of a batch, not one per text: most
    of the cost of a few hundred values is numpy's per-call overhead.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    starts = np.cumsum(lengths) - lengths
    counts = np.where(lengths >= k, lengths - k + 1, np.minimum(lengths, 1))
    n = len(th)
    acc = th.copy()
    # A run shorter than k is one shingle of all its tokens: what the
    # combination holds at its start once it has taken that many.
    partial = np.zeros(len(lengths), dtype=np.uint64)
    for j in range(1, k):
        done = lengths == j
        partial[done] = acc[starts[done]]
        # Order-sensitive combination: rotate-free multiply-add, wrapping mod 2**64.
        head = acc[: max(0, n - j)]
        head *= _COMBINE
        head += th[j:]
    combined = acc[_ranges(starts, counts)]
    short = (lengths < k) & (lengths > 0)
    combined[(np.cumsum(counts) - counts)[short]] = partial[short]
    return (_fmix64(combined) >> np.uint64(32)).astype(np.uint32), counts


def shingles_in_order(words: Sequence[str], k: int) -> U32:
    """32-bit hashes of the word k-grams in text order, repeats kept (one shingle for texts shorter than k)."""
    return _shingle_runs(*_token_hashes([words]), k)[0]


def shingle_hashes(words: Sequence[str], k: int) -> U32:
    """Distinct 32-bit hashes of the word k-grams (one shingle for texts shorter than k)."""
    return distinct(shingles_in_order(words, k))


def minhash_many(sets: Sequence[U32], params: SketchParams) -> npt.NDArray[np.uint32]:
    """MinHash values (datasketch affine32) for many shingle sets at once: uint32[len(sets), num_perm]."""
    values = np.concatenate([np.empty(0, np.uint32), *sets])
    return _minhash(values, np.fromiter(map(len, sets), np.int64, len(sets)), params.num_perm, params.seed)


def _minhash(values: U32, counts: I64, num_perm: int, seed: int) -> npt.NDArray[np.uint32]:
    """The MinHash of each run of ``values`` (``counts`` long, laid end to end; repeats change nothing)."""
    out = np.full((len(counts), num_perm), _MAX32, dtype=np.uint32)
    if num_perm == 0 or len(values) == 0:
        return out
    a, b = permutations(num_perm, seed)
    hv = fmix32(values)
    ends = np.cumsum(counts)
    members = np.flatnonzero(counts)
    rows_per_chunk = max(1, _CHUNK_CELLS // num_perm)
    # One buffer for every chunk: a fresh array per chunk would be mapped and
    # faulted in anew each time.
    buffer = np.empty(num_perm * min(len(values), rows_per_chunk), dtype=np.uint32)
    first = 0
    while first < len(members):
        # Take texts until the chunk holds about rows_per_chunk shingles (at least one text).
        lo = int(ends[members[first]] - counts[members[first]])
        last = max(first + 1, int(np.searchsorted(ends[members], lo + rows_per_chunk, side="right")))
        group = members[first:last]
        hi = int(ends[group[-1]])
        # Permutations along the rows and shingles along the columns, so the
        # per-text minimum reduces contiguous memory.
        cells = num_perm * (hi - lo)
        phv = (buffer[:cells] if cells <= len(buffer) else np.empty(cells, dtype=np.uint32)).reshape(num_perm, hi - lo)
        np.multiply(a[:, None], hv[None, lo:hi], out=phv)
        phv += b[:, None]
        out[group] = np.minimum.reduceat(phv, ends[group] - counts[group] - lo, axis=1).T
        first = last
    return out


def outlet_hash(outlet: str) -> int:
    """32-bit hash of an outlet name, as kept in signatures (0 for no outlet)."""
    name = outlet.strip().casefold()
    return (xxhash.xxh32_intdigest(name.encode("utf-8")) or 1) if name else 0


def _short_sets(titles: Sequence[str], th: U64, lengths: I64, picked: I64, params: SketchParams) -> list[U32]:
    """The exact tagged shingle sets of the ``picked`` texts of a batch (body token hashes ``th``, runs ``lengths``)."""
    k = params.short_shingle_size
    starts = (np.cumsum(lengths) - lengths)[picked]
    lead = np.minimum(lengths[picked], params.lead_words)
    opening = np.minimum(lead, params.short_opening_words)
    # Title and lead are shingled separately (no shingle spans the boundary)
    # and tagged, so the lead can also be compared alone: copies are often
    # retitled. The opening's shingles are the lead's first ones again, under
    # their own tag.
    runs = [
        (_shingle_runs(*_token_hashes(title_tokens(title) for title in titles), k), TAG_TITLE),
        (_shingle_runs(th[_ranges(starts, lead)], lead, k), np.uint32(0)),
        (_shingle_runs(th[_ranges(starts, opening)], opening, k), TAG_OPENING),
    ]
    # Each text's distinct values, sorted: one sort of (text, value) pairs for all of them.
    text = np.arange(len(picked), dtype=np.uint64)
    pairs = np.concatenate(
        [(np.repeat(text, counts) << np.uint64(32)) | ((values >> _TAG_SHIFT) | tag) for (values, counts), tag in runs]
    )
    kept = distinct(pairs)
    sizes = np.bincount((kept >> np.uint64(32)).astype(np.int64), minlength=len(picked))
    return [part.copy() for part in np.split(kept.astype(np.uint32), np.cumsum(sizes)[:-1])]


def split_short_set(short_set: U32) -> tuple[U32, U32, U32]:
    """The lead, the title + lead and the opening of a short set; the opening without its tag."""
    title_at, opening_at = np.searchsorted(short_set, (TAG_TITLE, TAG_OPENING)).tolist()
    return short_set[:title_at], short_set[:opening_at], short_set[opening_at:] & HASH_BITS


@dataclass(frozen=True, slots=True)
class SketchBatch:
    """The sketches of several articles as arrays, one row per article: what signing returns, clustering takes.

    A sequence of ``Sketch``; kept as arrays so that a batch crosses between
    processes as a few buffers and is appended to the index in a few copies.
    """

    hashvalues: npt.NDArray[np.uint32]  # uint32[n, num_perm]
    size: U32
    short: npt.NDArray[np.bool_]
    short_sets: list[U32 | None]
    outlet: U32
    # uint8[n, lead_perm]; a row with lead_size 0 has no lead (an empty text, or an
    # older signature without one): the engine skips its opening check.
    lead: npt.NDArray[np.uint8]
    lead_size: U32
    opening_size: U32

    def __len__(self) -> int:
        return len(self.size)

    def __getitem__(self, i: int) -> Sketch:
        return Sketch(
            hashvalues=self.hashvalues[i].copy(),
            size=int(self.size[i]),
            short=bool(self.short[i]),
            short_set=self.short_sets[i],
            outlet=int(self.outlet[i]),
            lead=self.lead[i].copy(),
            lead_size=int(self.lead_size[i]),
            opening_size=int(self.opening_size[i]),
        )

    def __iter__(self) -> Iterator[Sketch]:
        return (self[i] for i in range(len(self)))

    def take(self, rows: Sequence[int] | npt.NDArray[np.int64]) -> SketchBatch:
        """These rows, in this order."""
        index = np.asarray(rows, dtype=np.int64)
        return SketchBatch(
            hashvalues=self.hashvalues[index],
            size=self.size[index],
            short=self.short[index],
            short_sets=[self.short_sets[i] for i in index.tolist()],
            outlet=self.outlet[index],
            lead=self.lead[index],
            lead_size=self.lead_size[index],
            opening_size=self.opening_size[index],
        )

    @classmethod
    def joined(cls, batches: Sequence[SketchBatch]) -> SketchBatch:
        """The rows of these batches, one batch after the other."""
        if len(batches) == 1:
            return batches[0]
        return cls(
            hashvalues=np.concatenate([batch.hashvalues for batch in batches]),
            size=np.concatenate([batch.size for batch in batches]),
            short=np.concatenate([batch.short for batch in batches]),
            short_sets=[row for batch in batches for row in batch.short_sets],
            outlet=np.concatenate([batch.outlet for batch in batches]),
            lead=np.concatenate([batch.lead for batch in batches]),
            lead_size=np.concatenate([batch.lead_size for batch in batches]),
            opening_size=np.concatenate([batch.opening_size for batch in batches]),
        )

    def with_outlets(self, outlets: Iterable[str]) -> SketchBatch:
        """The same sketches with the hashes of these outlet names, one per row."""
        hashes = np.fromiter(map(outlet_hash, outlets), np.uint32, len(self))
        return replace(self, outlet=hashes)

    @classmethod
    def of(cls, sketches: Sequence[Sketch], params: SketchParams) -> SketchBatch:
        """The batch of these sketches (a lead of another length than ``params.lead_perm`` is not recorded)."""
        n = len(sketches)
        lead = np.zeros((n, params.lead_perm), dtype=np.uint8)
        lead_size = np.zeros(n, dtype=np.uint32)
        opening_size = np.zeros(n, dtype=np.uint32)
        for i, sketch in enumerate(sketches):
            if sketch.lead is not None and len(sketch.lead) == params.lead_perm:
                lead[i] = sketch.lead
                lead_size[i], opening_size[i] = sketch.lead_size, sketch.opening_size
        return cls(
            hashvalues=(
                np.stack([s.hashvalues for s in sketches]) if n else np.empty((0, params.num_perm), dtype=np.uint32)
            ),
            size=np.fromiter((s.size for s in sketches), np.uint32, n),
            short=np.fromiter((s.short for s in sketches), bool, n),
            short_sets=[s.short_set if s.short else None for s in sketches],
            outlet=np.fromiter((s.outlet for s in sketches), np.uint32, n),
            lead=lead,
            lead_size=lead_size,
            opening_size=opening_size,
        )


def sketch_texts(items: Sequence[tuple[str, str]], params: SketchParams) -> SketchBatch:
    """Normalise, shingle and MinHash (title, text) pairs in this process (outlets unknown: 0)."""
    # Only the hashes are kept, not the token strings.
    th, lengths = _token_hashes(word_bytes(body_text(text)) for _, text in items)
    in_order, counts = _shingle_runs(th, lengths, params.shingle_size)
    ends = np.cumsum(counts)
    starts = ends - counts
    bounds = zip(starts.tolist(), ends.tolist())
    sizes = np.fromiter((len(distinct(in_order[lo:hi])) for lo, hi in bounds), np.uint32, len(counts))
    values = _minhash(in_order, counts, params.num_perm, params.seed)
    # A repeated shingle changes no minimum, and is rare this close to the
    # start: the lead and the opening are taken as they come. The opening is
    # the start of the lead, and no longer than it.
    lead_shingles = max(1, params.lead_words - params.shingle_size + 1)
    opening_shingles = min(lead_shingles, max(1, params.opening_words - params.shingle_size + 1))
    lead_counts = np.minimum(counts, lead_shingles)
    opening_counts = np.minimum(counts, opening_shingles)
    both = _minhash(
        in_order[np.concatenate([_ranges(starts, lead_counts), _ranges(starts, opening_counts)])],
        np.concatenate([lead_counts, opening_counts]),
        params.lead_perm,
        params.seed,
    )
    # The opening is part of the lead: the lead's minimum comes from the opening
    # exactly when the opening's minimum (same permutation) equals it.
    lead_min, opening_min = both[: len(counts)], both[len(counts) :]
    lead_values = ((lead_min & _LOW7) | np.where(lead_min == opening_min, OPENING_BIT, 0)).astype(np.uint8)
    short = lengths < params.short_words
    short_sets: list[U32 | None] = [None] * len(items)
    if short.any():
        picked = np.flatnonzero(short)
        sets = _short_sets([items[i][0] for i in picked.tolist()], th, lengths, picked, params)
        for i, short_set in zip(picked.tolist(), sets):
            short_sets[i] = short_set
    return SketchBatch(
        hashvalues=values,
        size=sizes,
        short=short,
        short_sets=short_sets,
        outlet=np.zeros(len(items), dtype=np.uint32),
        lead=lead_values,
        lead_size=lead_counts.astype(np.uint32),
        opening_size=opening_counts.astype(np.uint32),
    )


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _sketch_chunk(items: list[tuple[bytes, bytes]], params: SketchParams) -> SketchBatch:
    texts = [(title.decode("utf-8", "surrogatepass"), text.decode("utf-8", "surrogatepass")) for title, text in items]
    return sketch_texts(texts, params)


def sketch_chunks(
    chunks: Iterable[Sequence[tuple[str, str]]], params: SketchParams, pool: WorkerPool | None, ahead: int = 4
) -> Iterator[SketchBatch]:
    """The sketches of each chunk of (title, text) pairs, in order, computed by ``pool``'s workers when it has some.

    Up to ``ahead`` chunks are with the pool at once, so the caller can cluster
    chunk k while the pool signs the next ones; ``chunks`` is read as the pool
    takes them, so a stream is never held whole. The result does not depend on
    the pool: a sketch is a pure function of its text and ``params``.
    """
    if pool is None or pool.executor() is None:
        return (sketch_texts(part, params) for part in chunks)
    # Texts go as UTF-8 bytes: pickling a str that is not ASCII caches a
    # UTF-8 copy inside it (CPython), which would then double the memory
    # of the caller's articles for as long as it keeps them.
    encoded = ([(_encode(title), _encode(text)) for title, text in part] for part in chunks)
    return pool.imap(partial(_sketch_chunk, params=params), encoded, ahead)
