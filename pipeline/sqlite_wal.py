"""SQLite files in WAL mode: switching a file to it safely when several processes open a new one
at once, and saying why one cannot be opened."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path


def use_wal(connection: sqlite3.Connection, wait: float) -> None:
    """Put the connection's database in WAL mode, waiting up to ``wait`` seconds for other processes.

    Every other statement waits for a lock (the busy timeout), but SQLite answers a journal-mode
    switch that could deadlock with another connection's with "database is locked" at once,
    without waiting: two workers opening a new data directory together would have one fail.
    The switch is made once per file, so retrying it until the other process is done is cheap.
    """
    deadline = time.monotonic() + wait
    pause = 0.005
    while True:
        try:
            connection.execute("PRAGMA journal_mode=WAL").fetchall()
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


def why_unopenable(path: Path, reason: str) -> str:
    """``reason`` a database file could not be opened, with the likely cause when its directory is read-only.

    SQLite alone says "unable to open database file", which reads like damage or a wrong path.
    """
    if path.parent.is_dir() and not os.access(path.parent, os.W_OK):
        return (f"{reason} ({path.parent} is read-only, and SQLite writes its -wal and -shm files beside a "
                "database even to read it: make the directory writable, or copy the file elsewhere)")
    return reason
