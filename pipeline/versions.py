"""The versions newsagg runs with: Python's, SQLite's and the named distributions' (newsagg's own too).

What ``newsagg --version`` prints and what every benchmark records with its results.
"""

from __future__ import annotations

import importlib.metadata
import platform
import sqlite3


def versions(*packages: str) -> dict[str, str]:
    """Python's version and each named distribution's ("sqlite": the SQLite library's), in that order."""
    found = {"python": platform.python_version()}
    for name in packages:
        if name == "sqlite":
            found["sqlite"] = sqlite3.sqlite_version
            continue
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found
