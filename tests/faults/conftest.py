"""Fixtures of the fault tests; the tools themselves live in faultkit.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from faultkit import Web, serving


@pytest.fixture
def web() -> Iterator[Web]:
    """A scripted web server on 127.0.0.1."""
    with serving() as server:
        yield server


@pytest.fixture
def witness() -> Iterator[Web]:
    """A second server the pipeline must never reach: any request it sees is a failure."""
    with serving() as server:
        yield server
