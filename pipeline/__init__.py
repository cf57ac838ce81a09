"""newsagg: fetch news feeds, cluster syndicated copies of a story, index the merged stories.

The public surface is pinned in ``__all__`` (tests/test_public_api.py). The records,
errors and settings load eagerly; the pipeline and store load on first use, so that
importing ``pipeline`` (an Airflow DAG file does) stays cheap.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

# numpy's OpenBLAS starts a thread pool when it loads, and a process with a second thread
# spawns its workers rather than forking them (pipeline.pool.start_method): each then
# imports the pipeline again, about a second of CPU per worker per run. The pipeline uses
# numpy element-wise only, which BLAS threads do not speed up. Set before numpy loads;
# a value the user set wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from pipeline.errors import (
    ConfigError,
    ExtractionError,
    FeedParseError,
    FetchError,
    NewsaggError,
    SearchBackendError,
    SearchUnavailable,
    StoreError,
)
from pipeline.models import Article, FeedEntry, FeedSource, Membership, SearchQuery, SearchResults, Story
from pipeline.settings import Settings, load_settings

if TYPE_CHECKING:
    from pipeline.runner import Pipeline, RunReport
    from pipeline.storage import Store

__all__ = [
    "Article",
    "ConfigError",
    "ExtractionError",
    "FeedEntry",
    "FeedParseError",
    "FeedSource",
    "FetchError",
    "Membership",
    "NewsaggError",
    "Pipeline",
    "RunReport",
    "SearchBackendError",
    "SearchQuery",
    "SearchResults",
    "SearchUnavailable",
    "Settings",
    "Store",
    "StoreError",
    "Story",
    "load_settings",
]

_LAZY = {"Pipeline": "pipeline.runner", "RunReport": "pipeline.runner", "Store": "pipeline.storage"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
