"""Fixtures of the stack tests: a fresh PostgreSQL database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services import postgres_database


@pytest.fixture
def pg_store_url() -> Iterator[str]:
    """A fresh, empty database on the test PostgreSQL server."""
    with postgres_database() as url:
        yield url

