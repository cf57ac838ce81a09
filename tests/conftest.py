"""Fixtures shared by the suite: fresh settings, search backends, the demo corpus over loopback HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.search.base import SearchIndex
from pipeline.search.sqlite import SqliteSearchIndex


@pytest.fixture(params=["sqlite"])
def search_index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SearchIndex]:
    index = SqliteSearchIndex(tmp_path / "search.sqlite3")
    yield index
    index.close()
