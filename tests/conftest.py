"""Fixtures shared by the suite: fresh settings, search backends, the demo corpus over loopback HTTP."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from services import ensure_elasticsearch

from pipeline.demo.run import demo_settings as demo_settings_for
from pipeline.demo.run import write_demo_feeds
from pipeline.demo.server import CorpusServer
from pipeline.search.base import SearchIndex
from pipeline.search.sqlite import SqliteSearchIndex
from pipeline.settings import ElasticsearchSettings, Settings


@pytest.fixture(scope="session")
def es_url() -> str:
    """The Elasticsearch node for the session: NEWSAGG_ES_URL, the running scripts/es-node node, or a fresh one."""
    return ensure_elasticsearch()


@pytest.fixture(params=["sqlite", "elasticsearch"])
def search_index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SearchIndex]:
    if request.param == "elasticsearch":
        from pipeline.search.elastic import ElasticsearchIndex

        # A prefix of its own per test; its indices and templates are dropped afterwards.
        settings = ElasticsearchSettings(
            urls=[request.getfixturevalue("es_url")], index_prefix=f"t-{uuid.uuid4().hex[:8]}"
        )
        es_index = ElasticsearchIndex(settings)
        yield es_index
        es_index.drop()
        es_index.close()
        return
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
