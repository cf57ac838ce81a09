"""The demo corpus's ground truth (pipeline/demo/corpus/expected.json) in article ids, and what a store holds."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from pipeline.demo.server import bundled_corpus_dir
from pipeline.storage import Store
from pipeline.urls import article_id, canonicalize


def expected() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((bundled_corpus_dir() / "expected.json").read_text(encoding="utf-8"))
    return data


def ids_of(base_url: str, paths: list[str]) -> frozenset[str]:
    """The article ids of corpus paths served at ``base_url``."""
    ids = set()
    for path in paths:
        url = canonicalize(base_url + path)
        assert url is not None
        ids.add(article_id(url))
    return frozenset(ids)


def expected_clusters(base_url: str) -> set[frozenset[str]]:
    """Every expected cluster, singletons included, as sets of article ids."""
    truth = expected()
    return {ids_of(base_url, c["members"]) for c in truth["clusters"]} | {
        ids_of(base_url, [path]) for path in truth["singletons"]
    }


def clusters_in(store: Store) -> set[frozenset[str]]:
    """The store's clusters as sets of article ids."""
    groups: dict[str, set[str]] = defaultdict(set)
    for cluster_id in store.cluster_ids():
        for member in store.memberships_of(cluster_id):
            groups[cluster_id].add(member.article_id)
    return {frozenset(g) for g in groups.values()}
