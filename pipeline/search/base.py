"""The search-index interface every backend implements, and what their answers share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from pipeline.models import IndexChange, IndexFailure, SearchQuery, SearchResults

# Title matches count three times as much as body matches (BM25 over title and body), in every backend.
TITLE_WEIGHT = 3.0
HIGHLIGHT_TAGS = ("[[", "]]")  # around each matched word of a hit's snippet


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


def ordered_facet(counts: dict[str, int]) -> dict[str, int]:
    """A facet's counts, largest first, ties by value: the order every backend returns."""
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
