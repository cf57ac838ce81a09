"""The search-index interface every backend implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from pipeline.models import IndexChange, IndexFailure, SearchQuery, SearchResults


class SearchIndex(Protocol):
    """Where merged stories and their articles are made searchable.

    ``write`` applies upserts and deletions (``document is None``) and is idempotent:
    writing the same change twice leaves the index as writing it once. It returns the
    documents the backend refused; it raises ``SearchUnavailable`` when the backend
    cannot be reached at all, so the caller keeps the whole batch for later.
    """

    def setup(self) -> None:
        """Create what the backend needs (tables, templates, aliases); safe to repeat."""

    def write(self, changes: Sequence[IndexChange]) -> list[IndexFailure]:
        """Apply the changes; return the ones that failed."""

    def search(self, query: SearchQuery) -> SearchResults:
        """Full-text search over merged stories."""

    def close(self) -> None:
        """Release connections."""
