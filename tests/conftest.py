"""Fixtures shared by the suite: fresh settings, search backends, the demo corpus over loopback HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.demo.run import demo_settings as demo_settings_for
from pipeline.demo.run import write_demo_feeds
from pipeline.demo.server import CorpusServer
from pipeline.search.base import SearchIndex
from pipeline.search.sqlite import SqliteSearchIndex
from pipeline.settings import Settings


@pytest.fixture(params=["sqlite"])
def search_index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SearchIndex]:
    index = SqliteSearchIndex(tmp_path / "search.sqlite3")
    yield index
    index.close()


@pytest.fixture(scope="session")
def corpus_server() -> Iterator[CorpusServer]:
    """The bundled demo corpus served on 127.0.0.1 for the whole session."""
    with CorpusServer() as server:
        yield server


@pytest.fixture
def demo_settings(corpus_server: CorpusServer, tmp_path: Path) -> Settings:
    """Embedded defaults in a fresh data directory, allowed to reach only the corpus server."""
    feeds_file = write_demo_feeds(corpus_server.base_url, tmp_path / "feeds.yaml")
    return demo_settings_for(corpus_server.base_url, tmp_path / "data", feeds_file)
