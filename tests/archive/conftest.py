"""Fixtures of the archive tests: the fault tests' scripted loopback web (tests/faults/faultkit.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "faults"))  # faultkit: the shared loopback web

from faultkit import Web, serving  # noqa: E402


@pytest.fixture
def web() -> Iterator[Web]:
    """A scripted web server on 127.0.0.1."""
    with serving() as server:
        yield server
