"""Consistent copies of the embedded (SQLite) store, taken while other processes read and write it."""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path

from pipeline.errors import StoreError


def copy_store(source: Path, target: Path) -> None:
    """Copy the SQLite database ``source`` to the new file ``target``, as of its last commit.

    SQLite's online backup copies a snapshot page by page, where copying the file (and its
    write-ahead log) while a run writes could give a torn copy. The copy is written beside
    ``target`` and renamed into place, so ``target`` is whole or absent.

    Raises:
        StoreError: the source cannot be read or the copy cannot be written.
    """
    partial = target.with_name(target.name + ".partial")
    try:
        # Left by a copy that was stopped or killed: copied into, its torn pages read as a damaged database.
        partial.unlink(missing_ok=True)
        with closing(sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True, timeout=30)) as reading, \
                closing(sqlite3.connect(partial)) as writing:
            reading.backup(writing)
        os.replace(partial, target)
    except (OSError, sqlite3.Error) as exc:
        partial.unlink(missing_ok=True)
        raise StoreError(f"cannot copy the store {source} to {target}: {exc}") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
