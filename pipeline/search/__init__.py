"""Search backends behind one interface: SQLite FTS5 (embedded default) and Elasticsearch."""

from __future__ import annotations

import logging
from collections.abc import Callable

from pipeline.errors import SearchBackendError
from pipeline.search.base import SearchIndex
from pipeline.settings import Settings

__all__ = ["SearchIndex", "open_index"]

log = logging.getLogger(__name__)


def open_index(settings: Settings, *, stories: Callable[[], int] | None = None, writing: bool = False) -> SearchIndex:
    """The backend the settings choose; Elasticsearch is imported only when chosen.

    Args:
        settings: the search backend and where it is.
        stories: how many stories the store holds that the index would lack if it were made
            anew (asked only when the index is not there: the embedded index's file, or
            Elasticsearch's aliases).
        writing: the caller writes to the index (a run): one that is not there is made by its
            ``setup``, with a warning when ``stories`` says it lacks some. Else (a reader) that
            is an error.

    Raises:
        SearchBackendError: for a reader, the index is not there while the store holds stories:
            made again, empty, it would find nothing, as if nothing matched.
    """
    if settings.search_backend == "elasticsearch":
        from pipeline.search.elastic import ElasticsearchIndex
        from pipeline.search.elastic.templates import FAMILIES

        elastic = ElasticsearchIndex(settings.es)
        aliases = ", ".join(elastic.alias(f) for f in FAMILIES)
        try:
            _missing(elastic.exists, f"the search index at {elastic.where} ({aliases})", stories, writing)
        except BaseException:
            elastic.close()
            raise
        return elastic
    from pipeline.search.sqlite import SqliteSearchIndex

    path = settings.embedded_index
    assert path is not None  # the search backend is SQLite
    _missing(path.exists, f"the search index {path}", stories, writing)
    return SqliteSearchIndex(path)


def _missing(there: Callable[[], bool], what: str, stories: Callable[[], int] | None, writing: bool) -> None:
    """Refuse (a reader) or warn of (a writer) an index that is not there while the store holds stories."""
    if stories is None or there() or not stories():
        return
    if not writing:
        raise SearchBackendError(f"{what} is missing while the store holds stories: "
                                 "`newsagg outbox fill` builds it again from the store")
    log.warning("%s is made anew while the store holds stories: they are not in it until `newsagg outbox fill` runs",
                what)
