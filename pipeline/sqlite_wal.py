"""Switching a SQLite file to WAL mode, safely when several processes open a new file at once."""

from __future__ import annotations

import sqlite3
import time


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
