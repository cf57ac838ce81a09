"""The textbook approach, as a competent user writes it from the datasketch docs: the baseline.

Lower-cased word 5-gram shingles of the raw text, 128-permutation MinHash
signatures with datasketch's default (SHA-1) hash, ``MinHashLSH`` at a Jaccard
threshold, and union-find over whatever the LSH returns. No normalisation, no
verification, no containment.

The signatures are made with ``MinHash.generator``, the API datasketch documents
for many documents: ``update_batch`` per document on copies of one initialised
MinHash, so the permutations are drawn once rather than once per document; they
are kept as ``LeanMinHash``, which the docs recommend for holding many. The
``per_shingle`` variant (a fresh ``MinHash`` per document, ``update`` once per
shingle, the docs' first example) gives the same signatures more slowly; it
was the only baseline until issue 19 and is still measured, labelled as such.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from datasketch import LeanMinHash, MinHash, MinHashLSH

_WORD = re.compile(r"\w+")


def shingles(text: str, k: int = 5) -> set[str]:
    words = _WORD.findall(text.lower())
    if len(words) < k:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + k]) for i in range(len(words) - k + 1)}


def _per_shingle(texts: Iterable[str], num_perm: int) -> Iterator[MinHash]:
    for text in texts:
        m = MinHash(num_perm=num_perm)
        for sh in shingles(text):
            m.update(sh.encode("utf-8"))
        yield m


def signatures(texts: Iterable[str], num_perm: int = 128, per_shingle: bool = False) -> Iterator[LeanMinHash]:
    if per_shingle:
        minhashes = _per_shingle(texts, num_perm)
    else:
        minhashes = MinHash.generator(([sh.encode("utf-8") for sh in shingles(t)] for t in texts), num_perm=num_perm)
    for m in minhashes:
        yield LeanMinHash(m)


def cluster(
    ids: list[str], minhashes: Iterable[LeanMinHash], threshold: float, num_perm: int = 128
) -> tuple[list[str], MinHashLSH]:
    """Union-find over LSH candidates, streaming: query, then insert; returns the roots and the index."""
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for article_id, m in zip(ids, minhashes):
        parent[article_id] = article_id
        for other in lsh.query(m):
            a, b = find(article_id), find(other)
            if a != b:
                parent[max(a, b)] = min(a, b)
        lsh.insert(article_id, m)
    return [find(i) for i in ids], lsh
