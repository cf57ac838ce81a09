"""Search backends behind one interface: SQLite FTS5 (embedded default) and Elasticsearch."""

from __future__ import annotations

from pipeline.search.base import SearchIndex
from pipeline.settings import Settings

__all__ = ["SearchIndex", "open_index"]


def open_index(settings: Settings) -> SearchIndex:
    """The backend the settings choose; Elasticsearch is imported only when chosen."""
    if settings.search_backend == "elasticsearch":
        from pipeline.search.elastic import ElasticsearchIndex

        elastic: SearchIndex = ElasticsearchIndex(settings.es)
        return elastic
    from pipeline.search.sqlite import SqliteSearchIndex

    assert settings.embedded_index is not None  # the search backend is SQLite
    return SqliteSearchIndex(settings.embedded_index)
