"""The suite itself: any selection of its directories collects, in any order."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
DIRECTORIES = sorted(path.name for path in TESTS.iterdir() if any(path.glob("test_*.py")))


@pytest.mark.parametrize("order", ["sorted", "reversed"])
def test_every_test_directory_collects_beside_the_others(order: str) -> None:
    # Each directory's conftest.py is imported as the module `conftest`, the last one given wins:
    # a test module that imported from its own conftest found another directory's.
    directories = DIRECTORIES if order == "sorted" else DIRECTORIES[::-1]
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         *(f"tests/{name}" for name in directories)],
        cwd=TESTS.parent, capture_output=True, text=True, timeout=300,
    )
    assert collected.returncode == 0, collected.stdout[-3000:]
