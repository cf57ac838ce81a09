"""The textbook approach, as commonly written: the baseline we measure against.

Lower-cased word 5-gram shingles of the raw text, ``datasketch.MinHash`` with 128
permutations updated one shingle at a time with datasketch's default (SHA-1)
hash, ``MinHashLSH`` at a Jaccard threshold, and union-find over whatever the
LSH returns. No normalisation, no verification, no containment.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

import numpy as np
from datasketch import MinHash, MinHashLSH

_WORD = re.compile(r"\w+")


def shingles(text: str, k: int = 5) -> set[str]:
    words = _WORD.findall(text.lower())
    if len(words) < k:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + k]) for i in range(len(words) - k + 1)}


def signatures(texts: Iterable[str], num_perm: int = 128) -> Iterator[np.ndarray]:
    for text in texts:
        m = MinHash(num_perm=num_perm)
        for sh in shingles(text):
            m.update(sh.encode("utf-8"))
        yield m.hashvalues


def cluster(
    ids: list[str], hashvalues: Iterable[np.ndarray], threshold: float, num_perm: int = 128
) -> tuple[list[str], MinHashLSH]:
    """Union-find over LSH candidates, streaming: query, then insert; returns the roots and the index."""
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for article_id, values in zip(ids, hashvalues):
        m = MinHash(num_perm=num_perm, hashvalues=values, scheme="affine32")
        parent[article_id] = article_id
        for other in lsh.query(m):
            a, b = find(article_id), find(other)
            if a != b:
                parent[max(a, b)] = min(a, b)
        lsh.insert(article_id, m)
    return [find(i) for i in ids], lsh
