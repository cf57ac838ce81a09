"""Fixtures of the stack tests: a fresh PostgreSQL database, a Redis key prefix, the demo corpus truth."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from services import ensure_redis, postgres_database


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
