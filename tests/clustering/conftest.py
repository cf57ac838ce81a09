"""Fixtures for the clustering tests; their material is in clusterkit.py."""

from __future__ import annotations

import pytest

from pipeline.settings import ClusteringSettings


@pytest.fixture
def settings() -> ClusteringSettings:
    return ClusteringSettings()
