"""`newsagg export` streams: it reads the store a chunk at a time and holds no more than a chunk."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tracemalloc
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pipeline.export import export_records, write_records
from pipeline.storage import Store
from pipeline.storage.schema import articles, memberships

T0 = datetime(2026, 11, 1, tzinfo=UTC)
ROWS, TEXT = 2000, 4000  # 8 MB of article text


class _Counting(io.TextIOBase):
    """A sink that keeps nothing: what the export holds is what tracemalloc sees."""

    def __init__(self) -> None:
        self.lines = 0

    def write(self, text: str) -> int:
        self.lines += text.count("\n")
        return len(text)


def _fill(store: Store) -> None:
    """ROWS articles of TEXT characters, arriving three a second; every other one in cluster c1."""
    rows = [
        {"id": f"a{n:05d}", "url": f"https://outlet.example/{n}", "outlet": "Outlet", "title": f"Story {n}",
         "text": f"{n:05d}" + "x" * (TEXT - 5), "fetched_at": T0, "arrived_at": T0 + timedelta(seconds=n // 3),
         "text_source": "page", "tags": ["world"]}
        for n in range(ROWS)
    ]
    with store.engine.begin() as conn:
        conn.execute(articles.insert(), rows)
        conn.execute(memberships.insert(), [{"article_id": r["id"], "cluster_id": "c1"} for r in rows[::2]])


def test_export_holds_one_chunk_not_the_whole_table(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    try:
        _fill(store)

        for fmt in ("jsonl", "csv"):
            sink = _Counting()
            tracemalloc.start()
            try:
                count = write_records(export_records(store, "articles", chunk=100), "articles", fmt, sink)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert count == ROWS and sink.lines >= ROWS
            # The whole table's text alone is 8 MB; a chunk of 100 articles holds 0.4 MB of it.
            assert peak < 3_000_000, (fmt, peak)

        exported = list(export_records(store, "articles", since=T0 + timedelta(seconds=600), chunk=7))
        assert [a["id"] for a in exported] == [f"a{n:05d}" for n in range(1800, ROWS)]
        assert [a["cluster_id"] for a in exported[:2]] == ["c1", None]
    finally:
        store.close()


def test_export_into_a_pipe_closed_early_stops_quietly(tmp_path: Path) -> None:
    with closing(Store(f"sqlite:///{tmp_path / 'store.sqlite3'}")) as store:
        _fill(store)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "--data-dir", str(tmp_path), "export", "articles"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )
    with proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.read(1000).startswith(b'{"id": "a00000"')  # like `| head`: read a little, then go
        proc.stdout.close()
        err = proc.stderr.read().decode()
    assert proc.returncode == 1 and err == ""
