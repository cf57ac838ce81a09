"""The demo corpus run into a folder for the web tests."""

from __future__ import annotations

from pathlib import Path

from pipeline.demo.run import demo_settings, write_demo_feeds
from pipeline.demo.server import CorpusServer
from pipeline.runner import Pipeline
from pipeline.settings import Settings


def run_demo_into(server: CorpusServer, folder: Path, **overrides: object) -> Settings:
    """One demo run into ``folder``; the settings that read it."""
    folder.mkdir(parents=True, exist_ok=True)
    feeds = write_demo_feeds(server.base_url, folder / "feeds.yaml")
    settings = demo_settings(server.base_url, folder / "data", feeds, **overrides)
    with Pipeline(settings) as pipeline:
        report = pipeline.run(force=True, trigger="demo")
    assert report.failed_feeds == [] and report.index_error is None
    return settings
