"""Search backends behind one interface: SQLite FTS5 (embedded default) and Elasticsearch."""

from __future__ import annotations

from collections.abc import Callable

from pipeline.errors import SearchBackendError
from pipeline.search.base import SearchIndex
from pipeline.settings import Settings

__all__ = ["SearchIndex", "open_index"]


def open_index(settings: Settings, *, stories: Callable[[], int] | None = None) -> SearchIndex:
    """The backend the settings choose; Elasticsearch is imported only when chosen.

    Args:
        settings: the search backend and where it is.
        stories: for a reader, how many stories the store holds (asked only when the embedded
            index's file is not there).

    Raises:
        SearchBackendError: the embedded index's file is gone while the store holds stories: made
            again, empty, it would find nothing, as if nothing matched.
    """
    if settings.search_backend == "elasticsearch":
        from pipeline.search.elastic import ElasticsearchIndex

        elastic: SearchIndex = ElasticsearchIndex(settings.es)
        return elastic
    from pipeline.search.sqlite import SqliteSearchIndex

    path = settings.embedded_index
    assert path is not None  # the search backend is SQLite
    if stories is not None and not path.exists() and stories():
        raise SearchBackendError(f"the search index {path} is missing while the store holds stories: "
                                 "`newsagg outbox fill` builds it again from the store")
    return SqliteSearchIndex(path)
