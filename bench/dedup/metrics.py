"""Pairwise precision/recall/F1 and the adjusted Rand index from two labelings."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def scores(truth: Sequence[str], predicted: Sequence[str]) -> dict[str, float]:
    joint = Counter(zip(truth, predicted))
    tp = sum(_pairs(n) for n in joint.values())
    true_pairs = sum(_pairs(n) for n in Counter(truth).values())
    pred_pairs = sum(_pairs(n) for n in Counter(predicted).values())
    total = _pairs(len(truth))
    precision = tp / pred_pairs if pred_pairs else 1.0
    recall = tp / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    expected = true_pairs * pred_pairs / total if total else 0.0
    maximum = (true_pairs + pred_pairs) / 2
    ari = (tp - expected) / (maximum - expected) if maximum != expected else 1.0
    return {"precision": precision, "recall": recall, "f1": f1, "ari": ari}


def merged_apart(
    truth: Sequence[str], predicted: Sequence[str], apart: Sequence[tuple[str, str, str]]
) -> dict[str, dict[str, int]]:
    """Per case: how many must-stay-apart label pairs ended up sharing a predicted cluster."""
    clusters: dict[str, set[str]] = {}
    for label, cluster in zip(truth, predicted):
        clusters.setdefault(label, set()).add(cluster)
    out: dict[str, dict[str, int]] = {}
    for a, b, case in apart:
        entry = out.setdefault(case, {"pairs": 0, "merged": 0})
        entry["pairs"] += 1
        if clusters.get(a, set()) & clusters.get(b, set()):
            entry["merged"] += 1
    return out
