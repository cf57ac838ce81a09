"""A store filled by the demo pipeline, shared by the web tests, and a client for the app over it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from web_demo import run_demo_into

from pipeline.demo.server import CorpusServer
from pipeline.settings import Settings
from pipeline.web import create_app


@pytest.fixture(scope="session")
def demo_web_settings(corpus_server: CorpusServer, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The demo corpus run once into a data dir the web tests only read."""
    return run_demo_into(corpus_server, tmp_path_factory.mktemp("web-demo"))


@pytest.fixture
def client(demo_web_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(demo_web_settings)) as test_client:
        yield test_client
