"""`newsagg demo`: the whole pipeline on the bundled corpus, served on 127.0.0.1."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pipeline.demo.server import CorpusServer, bundled_corpus_dir
from pipeline.errors import ConfigError
from pipeline.models import SearchQuery, SearchResults, Story
from pipeline.runner import Pipeline, RunReport
from pipeline.settings import Settings, load_settings

DEMO_QUERY_FALLBACK = "port strike"


def demo_settings(
    base_url: str, data_dir: Path, feeds_file: Path, config_file: Path | None = None, **overrides: Any
) -> Settings:
    """Embedded defaults, allowed to reach only the loopback server at ``base_url``.

    ``config_file`` and ``overrides`` are as for `load_settings`; a ``fetch`` dict is merged
    into the loopback allowance rather than replacing it.
    """
    fetch = {"allowed_hosts": [urlsplit(base_url).netloc], "politeness_delay": 0.0, **overrides.pop("fetch", {})}
    fields = {"search_backend": "sqlite", "store_url": None, **overrides}
    return load_settings(config_file, data_dir=data_dir, feeds_file=feeds_file, fetch=fetch, **fields)


def write_demo_feeds(base_url: str, target: Path) -> Path:
    """The corpus feed list with its placeholder replaced by the server's address."""
    text = (bundled_corpus_dir() / "feeds.yaml").read_text(encoding="utf-8")
    target.write_text(text.replace("{{BASE}}", base_url), encoding="utf-8")
    return target


def demo_query() -> str:
    expected = json.loads((bundled_corpus_dir() / "expected.json").read_text(encoding="utf-8"))
    searches = expected.get("searches") or [{"query": DEMO_QUERY_FALLBACK}]
    return str(searches[0]["query"])


@dataclass(frozen=True, slots=True)
class DemoResult:
    report: RunReport
    stories: list[Story]  # largest first
    query: str
    results: SearchResults


def run_demo(data_dir: Path | None, *, config_file: Path | None = None, progress: bool = False) -> DemoResult:
    """Serve the corpus, run one pass into ``data_dir`` (a temporary one if None), search it.

    ``config_file``: a settings file (its store, search backend and feed list are the demo's own).

    Raises:
        ConfigError: ``data_dir`` holds a store already (the corpus, served on another port,
            would be stored a second time under new URLs).
    """
    server = CorpusServer()
    try:
        with tempfile.TemporaryDirectory(prefix="newsagg-demo-") as scratch:
            base_url = server.bind()
            feeds_file = write_demo_feeds(base_url, Path(scratch) / "feeds.yaml")
            settings = demo_settings(base_url, data_dir or Path(scratch) / "data", feeds_file, config_file)
            if settings.embedded_store is not None and settings.embedded_store.exists():
                raise ConfigError(f"{data_dir} already holds a store: the demo runs into a directory with no store yet")
            with Pipeline(settings, progress=progress) as pipeline:
                # The workers first, forked while this process has one thread; the server's thread
                # after them (started before, they were spawned and imported the pipeline again).
                pipeline.pool.start()
                server.start()
                return demo_result(pipeline, pipeline.run(force=True, trigger="demo"))
    finally:
        server.stop()


def demo_result(pipeline: Pipeline, report: RunReport) -> DemoResult:
    """What the demo shows after a run: every story, largest first, and the example search."""
    clusters = pipeline.store.cluster_summaries(limit=10_000)
    by_id = pipeline.store.stories_by_id(c.id for c in clusters)
    query = demo_query()
    results = pipeline.index.search(SearchQuery(text=query, limit=5))
    return DemoResult(report, [by_id[c.id] for c in clusters], query, results)
