"""A store filled by the demo pipeline, shared by the web tests, and a client for the app over it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pipeline.demo.run import demo_settings, write_demo_feeds
from pipeline.demo.server import CorpusServer
from pipeline.runner import Pipeline
from pipeline.settings import Settings
from pipeline.web import create_app


def run_demo_into(server: CorpusServer, folder: Path, **overrides: object) -> Settings:
    """One demo run into ``folder``; the settings that read it."""
    folder.mkdir(parents=True, exist_ok=True)
    feeds = write_demo_feeds(server.base_url, folder / "feeds.yaml")
    settings = demo_settings(server.base_url, folder / "data", feeds, **overrides)
    with Pipeline(settings) as pipeline:
        report = pipeline.run(force=True, trigger="demo")
    assert report.failed_feeds == [] and report.index_error is None
    return settings


@pytest.fixture(scope="session")
def demo_web_settings(corpus_server: CorpusServer, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The demo corpus run once into a data dir the web tests only read."""
    return run_demo_into(corpus_server, tmp_path_factory.mktemp("web-demo"))


@pytest.fixture
def client(demo_web_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(demo_web_settings)) as test_client:
        yield test_client
