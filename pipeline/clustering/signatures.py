"""Shingles and MinHash signatures, vectorised, and their compact byte form.

Shingles are word k-grams of the normalised body, hashed with xxhash (a token
hash, then a vectorised combination of k token hashes): no SHA-1 and no Python
call per shingle. The MinHash is datasketch's "affine32" scheme computed for a
whole batch with numpy (pre-mix with the MurmurHash3 finaliser, then
``a * h + b mod 2**32`` per permutation, then a column minimum per document);
``tests/clustering`` pins that the values equal
``datasketch.MinHash(..).update_batch`` on the same shingle hashes.

Short texts (fewer than ``short_words`` body words) also keep their exact set
of smaller shingles over title and lead, because a 128-value MinHash cannot
tell two formulaic 50-word briefs apart reliably enough.
"""

from __future__ import annotations

import logging
import multiprocessing
import struct
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
import xxhash
from datasketch import MinHash

from pipeline.clustering.normalize import MatchText, canonical, normalize

logger = logging.getLogger(__name__)

U32 = npt.NDArray[np.uint32]
U64 = npt.NDArray[np.uint64]

_MAGIC = b"NS"
_VERSION = 1
# magic, version, flags, num_perm, seed, shingle set size, outlet hash
_HEADER = struct.Struct("<2sBBHHII")
_FLAG_SHORT = 1
_COMBINE = np.uint64(0x9E3779B97F4A7C15)
_MAX32 = np.uint32(0xFFFFFFFF)
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
    lead_words: int = 100


@dataclass(frozen=True, slots=True)
class Sketch:
    """One article's matching signature."""

    hashvalues: U32  # MinHash over body shingles, uint32[num_perm]
    size: int  # distinct body shingles
    short: bool
    short_set: U32 | None  # exact sorted shingle hashes of title + lead, short texts only
    outlet: int = 0  # 32-bit hash of the outlet name (0: unknown)

    def to_bytes(self, params: SketchParams) -> bytes:
        """The compact form persisted by the store (about 4 bytes per permutation)."""
        flags = _FLAG_SHORT if self.short else 0
        header = _HEADER.pack(_MAGIC, _VERSION, flags, params.num_perm, params.seed, self.size, self.outlet)
        parts = [header, self.hashvalues.astype("<u4", copy=False).tobytes()]
        if self.short:
            short_set = self.short_set if self.short_set is not None else np.empty(0, np.uint32)
            parts.append(struct.pack("<H", len(short_set)))
            parts.append(short_set.astype("<u4", copy=False).tobytes())
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes, params: SketchParams) -> Sketch:
        """Decode what ``to_bytes`` wrote; raises ValueError for data from other parameters."""
        magic, version, flags, num_perm, seed, size, outlet = _HEADER.unpack_from(data)
        if magic != _MAGIC or version != _VERSION:
            raise ValueError("not a newsagg clustering signature (bad magic or version)")
        if num_perm != params.num_perm or seed != params.seed:
            raise ValueError(
                f"signature made with num_perm={num_perm}, seed={seed}; "
                f"settings say num_perm={params.num_perm}, seed={params.seed}: re-cluster to change them"
            )
        offset = _HEADER.size
        hashvalues = np.frombuffer(data, dtype="<u4", count=num_perm, offset=offset).astype(np.uint32)
        offset += 4 * num_perm
        short = bool(flags & _FLAG_SHORT)
        short_set: U32 | None = None
        if short:
            (count,) = struct.unpack_from("<H", data, offset)
            short_set = np.frombuffer(data, dtype="<u4", count=count, offset=offset + 2).astype(np.uint32)
        return cls(hashvalues=hashvalues, size=int(size), short=short, short_set=short_set, outlet=int(outlet))


@lru_cache(maxsize=8)
def permutations(num_perm: int, seed: int) -> tuple[U32, U32]:
    """datasketch's affine32 permutation parameters (a odd, b) for this num_perm and seed."""
    perm = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
    return np.ascontiguousarray(perm[0], dtype=np.uint32), np.ascontiguousarray(perm[1], dtype=np.uint32)


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


_token_cache: dict[str, int] = {}


def _token_hashes(words: Sequence[str]) -> U64:
    cache = _token_cache
    if len(cache) > _TOKEN_CACHE_MAX:
        cache.clear()
    # map() over the dict's get runs at C speed; only unseen words need Python.
    hashes: list[int | None] = list(map(cache.get, words))
    if None in hashes:
        for i, h in enumerate(hashes):
            if h is None:
                word = words[i]
                # The canonical form is hashed, so "said" and "says" are one token.
                hashes[i] = cache[word] = xxhash.xxh3_64_intdigest(canonical(word).encode("utf-8"))
    return np.array(hashes, dtype=np.uint64)


def shingle_hashes(words: Sequence[str], k: int) -> U32:
    """Distinct 32-bit hashes of the word k-grams (one shingle for texts shorter than k)."""
    if not words:
        return np.empty(0, dtype=np.uint32)
    th = _token_hashes(words)
    if len(th) < k:
        k = len(th)
    n = len(th) - k + 1
    acc = th[:n].copy()
    for j in range(1, k):
        # Order-sensitive combination: rotate-free multiply-add, wrapping mod 2**64.
        acc = acc * _COMBINE + th[j : j + n]
    mixed = _fmix64(acc) >> np.uint64(32)
    return np.unique(mixed.astype(np.uint32))


def minhash_many(sets: Sequence[U32], params: SketchParams) -> npt.NDArray[np.uint32]:
    """MinHash values (datasketch affine32) for many shingle sets at once: uint32[len(sets), num_perm]."""
    a, b = permutations(params.num_perm, params.seed)
    out = np.full((len(sets), params.num_perm), _MAX32, dtype=np.uint32)
    rows_per_chunk = max(1, _CHUNK_CELLS // params.num_perm)
    start = 0
    while start < len(sets):
        # Take documents until the chunk holds about rows_per_chunk shingles.
        end, cells = start, 0
        while end < len(sets) and (cells == 0 or cells + len(sets[end]) <= rows_per_chunk):
            cells += len(sets[end])
            end += 1
        members = [i for i in range(start, end) if len(sets[i])]
        if members:
            hv = fmix32(np.concatenate([sets[i] for i in members]))
            # Permutations along the rows and shingles along the columns, so the
            # per-document minimum reduces contiguous memory.
            phv = np.multiply(a[:, None], hv[None, :])
            phv += b[:, None]
            offsets = np.cumsum([0] + [len(sets[i]) for i in members[:-1]])
            out[members] = np.minimum.reduceat(phv, offsets, axis=1).T
        start = end
    return out


def outlet_hash(outlet: str) -> int:
    """32-bit hash of an outlet name, as kept in signatures (0 for no outlet)."""
    name = outlet.strip().casefold()
    return (xxhash.xxh32_intdigest(name.encode("utf-8")) or 1) if name else 0


def _short_set(match: MatchText, params: SketchParams) -> U32:
    k = params.short_shingle_size
    lead = match.body[: params.lead_words]
    # Title and lead are shingled separately (no shingle spans the boundary)
    # and tagged by the lowest bit, so the lead can also be compared alone:
    # copies are often retitled.
    title = shingle_hashes(match.title, k) | np.uint32(1)
    body = shingle_hashes(lead, k) & np.uint32(0xFFFFFFFE)
    return np.union1d(title, body).astype(np.uint32)


def sketch_texts(items: Sequence[tuple[str, str]], params: SketchParams) -> list[Sketch]:
    """Normalise, shingle and MinHash (title, text) pairs in this process."""
    sets: list[U32] = []
    shorts: list[U32 | None] = []
    for title, text in items:
        # One document at a time: only its shingle hashes outlive the loop,
        # not the thousands of token strings normalisation makes.
        match = normalize(title, text)
        sets.append(shingle_hashes(match.body, params.shingle_size))
        shorts.append(_short_set(match, params) if len(match.body) < params.short_words else None)
    values = minhash_many(sets, params)
    return [
        Sketch(hashvalues=values[i].copy(), size=len(sets[i]), short=shorts[i] is not None, short_set=shorts[i])
        for i in range(len(sets))
    ]


def _sketch_chunk(args: tuple[list[tuple[str, str]], SketchParams]) -> list[Sketch]:
    items, params = args
    return sketch_texts(items, params)


def sketch_chunks(
    items: Sequence[tuple[str, str]], params: SketchParams, pool: Executor | None, chunk: int
) -> Iterator[list[Sketch]]:
    """Sketches of ``items`` in order, ``chunk`` at a time, computed by ``pool`` when given.

    All chunks are submitted at once, so the caller can cluster chunk k while
    the pool signs chunk k+1. The result does not depend on the pool: a sketch
    is a pure function of its text and ``params``.
    """
    parts = [(list(items[i : i + chunk]), params) for i in range(0, len(items), chunk)]
    if pool is None:
        for part in parts:
            yield sketch_texts(*part)
        return
    yield from pool.map(_sketch_chunk, parts)


def make_pool(workers: int) -> ProcessPoolExecutor:
    """A process pool for signing large batches."""
    # spawn, not fork: the caller may run threads (Airflow, an HTTP client pool),
    # and forking a threaded process is unsafe.
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
