"""Fixtures of the stack tests: a fresh PostgreSQL database, a Redis key prefix, the demo corpus truth."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from pipeline.demo.server import bundled_corpus_dir
from pipeline.storage import Store
from pipeline.urls import article_id, canonicalize
from stack.services import ensure_redis, postgres_database


@pytest.fixture
def pg_store_url() -> Iterator[str]:
    """A fresh, empty database on the test PostgreSQL server."""
    with postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> str:
    return ensure_redis()


@pytest.fixture
def lsh_basename(redis_url: str) -> Iterator[str]:
    """A key prefix of its own in Redis; its keys are deleted afterwards."""
    name = f"t-lsh-{uuid.uuid4().hex[:10]}"
    yield name
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{name}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def demo_truth(base_url: str) -> set[frozenset[str]]:
    """The demo corpus's expected clusters (singletons included), as sets of article ids."""
    truth: dict[str, Any] = json.loads((bundled_corpus_dir() / "expected.json").read_text(encoding="utf-8"))

    def ids(paths: list[str]) -> frozenset[str]:
        found = set()
        for path in paths:
            url = canonicalize(base_url + path)
            assert url is not None
            found.add(article_id(url))
        return frozenset(found)

    return {ids(c["members"]) for c in truth["clusters"]} | {ids([p]) for p in truth["singletons"]}


def clusters_in(store: Store) -> set[frozenset[str]]:
    groups: dict[str, set[str]] = defaultdict(set)
    for cluster_id in store.cluster_ids():
        for member in store.memberships_of(cluster_id):
            groups[cluster_id].add(member.article_id)
    return {frozenset(g) for g in groups.values()}
