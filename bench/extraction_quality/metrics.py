"""The three sets' metrics: trafilatura's snippet counts, WCXB's word F1, ROUGE-LSum F1 for Fundus."""

from __future__ import annotations

import re
from collections import Counter

_WORDS = re.compile(r"\w+")
_SPACE = re.compile(r"\s+")


def _norm(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def snippet_counts(text: str | None, with_: list[str], without: list[str]) -> tuple[int, int, int, int]:
    """(tp, fp, fn, tn) of one page: whitespace-normalised substring matches (trafilatura's ``count_item``)."""
    found = _norm(text or "")
    tp = sum(1 for s in with_ if _norm(s) in found) if text else 0
    fp = sum(1 for s in without if _norm(s) in found) if text else 0
    return tp, fp, len(with_) - tp, len(without) - fp


def word_f1(predicted: str | None, reference: str) -> float:
    """WCXB's ``word_f1``: F1 of the lower-cased ``\\w+`` tokens, as multisets."""
    pred = _WORDS.findall((predicted or "").lower())
    ref = _WORDS.findall(reference.lower())
    if not ref:
        return 1.0 if not pred else 0.0
    if not pred:
        return 0.0
    overlap = sum((Counter(pred) & Counter(ref)).values())
    if not overlap:
        return 0.0
    precision, recall = overlap / len(pred), overlap / len(ref)
    return 2 * precision * recall / (precision + recall)


def rouge_lsum_f1(predicted: str | None, reference: str) -> float:
    """ROUGE-LSum F1: summary-level LCS over newline-separated units, as Google's ``rouge-score``
    computes ``rougeLsum`` (union LCS per reference unit, hits capped by token counts), but with
    Unicode ``\\w+`` tokens lower-cased, where rouge-score keeps only ``[a-z0-9]`` and would
    score Chinese, Greek or Cyrillic bodies as empty."""
    refs = [_WORDS.findall(line.lower()) for line in reference.split("\n")]
    cands = [_WORDS.findall(line.lower()) for line in (predicted or "").split("\n")]
    refs = [r for r in refs if r]
    cands = [c for c in cands if c]
    ref_total = sum(map(len, refs))
    cand_total = sum(map(len, cands))
    if not ref_total or not cand_total:
        return 1.0 if ref_total == cand_total else 0.0
    ref_left = Counter(t for r in refs for t in r)
    cand_left = Counter(t for c in cands for t in c)
    hits = 0
    for ref in refs:
        union: set[int] = set()
        ref_words = set(ref)
        for cand in cands:
            union |= _lcs_positions(ref, cand, ref_words)
        for token in (ref[i] for i in sorted(union)):
            if ref_left[token] > 0 and cand_left[token] > 0:
                hits += 1
                ref_left[token] -= 1
                cand_left[token] -= 1
    if not hits:
        return 0.0
    precision, recall = hits / cand_total, hits / ref_total
    return 2 * precision * recall / (precision + recall)


def _lcs_positions(ref: list[str], cand: list[str], ref_words: set[str]) -> set[int]:
    """Positions in ``ref`` of one longest common subsequence with ``cand``.

    Tokens absent from the other side cannot be in any common subsequence: dropping them
    first gives the same LCS on much smaller tables.
    """
    cand_words = set(cand)
    r = [(i, t) for i, t in enumerate(ref) if t in cand_words]
    c = [t for t in cand if t in ref_words]
    if not r or not c:
        return set()
    rows, cols = len(r), len(c)
    table = [[0] * (cols + 1) for _ in range(rows + 1)]
    for i in range(1, rows + 1):
        token = r[i - 1][1]
        above, row = table[i - 1], table[i]
        for j in range(1, cols + 1):
            row[j] = above[j - 1] + 1 if c[j - 1] == token else max(above[j], row[j - 1])
    found: set[int] = set()
    i, j = rows, cols
    while i and j:
        if r[i - 1][1] == c[j - 1]:
            found.add(r[i - 1][0])
            i -= 1
            j -= 1
        elif table[i - 1][j] >= table[i][j - 1]:
            i -= 1
        else:
            j -= 1
    return found
