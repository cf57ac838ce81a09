"""Memory: peak RSS of the store-side stages over N articles, its growth with N, leaks across runs,
and the bytes per article of every structure that outlives a run.

Fetching 100k pages over loopback is not the point here, so the generated articles
(``bench.corpus``) are inserted straight into a fresh SQLite store by one process; a
second, fresh process then runs the stages that hold state in memory, as ``run()``
does after fetching: ``cluster``, ``build_stories`` and ``index_outbox`` (embedded
SQLite FTS5 index). Its peak RSS (VmHWM) above its RSS once the store is open is what
the run costs; dividing by N at several sizes shows whether it grows linearly.

Leaks: one process runs the same stages on fresh copies of one store ``runs`` times;
its RSS after each run (after a garbage collection) must stop growing after the first.

Long-lived state, at each size once the stages ran: the store's SQLite pages per table
(its indexes counted with it; SQLite's ``dbstat``), the stored signatures (their bytes,
and their table's pages), the search index's files, and the engine a clustering run
rebuilds from the signatures (LSH buckets and per-article arrays, ``ClusterEngine.nbytes``,
and the RSS it added), restored here from every signature as if all were in the window.
There is nothing in Redis: the pipeline keeps no state there.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import ROOT, Result, Side, peak_rss_bytes, reset_peak_rss, rss_bytes, save
from pipeline.versions import versions

SIZES = {"tiny": (50, 100), "quick": (2000, 4000, 8000), "full": (25000, 50000, 100000)}
LEAK_RUNS = 3
MIB = 1024 * 1024


def _settings(data_dir: Path) -> Any:
    from pipeline.settings import load_settings

    return load_settings(data_dir=data_dir, search_backend="sqlite", store_url=None)


def insert(data_dir: Path, count: int) -> dict[str, Any]:
    """Generate ``count`` articles and insert them into a fresh store in ``data_dir``."""
    from pipeline.storage import schema
    from pipeline.models import TextSource
    from pipeline.storage import Store

    from bench.corpus import generate_articles

    started = time.perf_counter()
    articles = generate_articles(count)
    store = Store(_settings(data_dir).resolved_store_url)
    fetched = datetime(2024, 9, 30, tzinfo=UTC)
    rows = [
        {
            "id": a.id,
            "url": f"https://outlet-{a.outlet}.example/articles/{a.id}.html",
            "feed_id": f"outlet-{a.outlet}",
            "outlet": f"Outlet {a.outlet}",
            "title": a.title,
            "text": a.text,
            "author": None,
            "published": a.published,
            "fetched_at": fetched,
            "arrived_at": a.published,
            "language": "en",
            "text_source": TextSource.PAGE.value,
            "text_source_reason": None,
        }
        for a in articles
    ]
    with store.engine.begin() as conn:
        for start in range(0, len(rows), 5000):
            conn.execute(schema.articles.insert(), rows[start : start + 5000])
            # Queued for clustering, as the store queues the articles it saves.
            conn.execute(schema.unclustered.insert(),
                         [{"article_id": r["id"], "arrived_at": r["arrived_at"]} for r in rows[start : start + 5000]])
    store.close()
    return {"articles": count, "seconds": time.perf_counter() - started}


def stages(data_dir: Path) -> dict[str, Any]:
    """cluster + build_stories + index_outbox on the store in ``data_dir``; seconds per stage."""
    from pipeline.runner import Pipeline

    seconds: dict[str, float] = {}
    counts: dict[str, int] = {}
    with Pipeline(_settings(data_dir)) as pipe:
        for name in ("cluster", "build_stories", "index_outbox"):
            started = time.perf_counter()
            done = getattr(pipe, name)()
            seconds[name] = time.perf_counter() - started
            counts[name] = int(done[0])
    return {"seconds": seconds, "counts": counts}


def child_peak(data_dir: Path) -> dict[str, Any]:
    """In a fresh process: RSS with the pipeline imported and the store open, then the stages' peak."""
    from pipeline.runner import Pipeline

    with Pipeline(_settings(data_dir)) as pipe:
        pipe.store.article_count()
    base = reset_peak_rss()
    result = stages(data_dir)
    return {**result, "base_rss": base, "peak_rss": peak_rss_bytes()}


def structures(data_dir: Path) -> dict[str, Any]:
    """Bytes per article of what outlives a run: store tables, signatures, search index, a restored engine."""
    import sqlalchemy as sa

    from pipeline.clustering import ClusterEngine
    from pipeline.storage import Store

    settings = _settings(data_dir)
    url = settings.resolved_store_url
    path = sa.make_url(url).database
    assert path, url
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        articles = db.execute("SELECT count(*) FROM articles").fetchone()[0]
        signature_count, signature_bytes = db.execute("SELECT count(*), sum(length(data)) FROM signatures").fetchone()
        # Pages per table, each index counted with its table.
        tables: dict[str, int] = {}
        for table, size in db.execute(
            "SELECT coalesce(m.tbl_name, d.name), sum(d.pgsize) FROM dbstat AS d"
            " LEFT JOIN sqlite_schema AS m ON m.name = d.name GROUP BY 1"
        ):
            tables[table] = tables.get(table, 0) + size
    store_file = os.path.getsize(path)
    search_files = sum(
        f.stat().st_size for f in data_dir.iterdir() if f.is_file() and f.name.startswith("search")
    )
    store = Store(url)
    try:
        state = store.clustering_state(since=datetime(1970, 1, 1, tzinfo=UTC))
    finally:
        store.close()
    engine = ClusterEngine(settings.clustering)
    gc.collect()
    before = rss_bytes()
    engine.restore(*state)
    gc.collect()
    restored_rss = rss_bytes() - before
    held = len(engine)
    result = {
        "articles": articles,
        "store_file_bytes": store_file,
        "store_table_bytes": dict(sorted(tables.items(), key=lambda kv: -kv[1])),
        "signatures": signature_count,
        "signature_data_bytes": signature_bytes,
        "search_index_bytes": search_files,
        "engine_articles": held,
        "engine_bytes": engine.nbytes(),
        "engine_lsh_bytes": engine._lsh.nbytes(),
        "engine_rss_bytes": restored_rss,
    }
    return result


def per_article(state: dict[str, Any]) -> dict[str, float]:
    """The structures' bytes per article (per signature, per restored article where that is the unit)."""
    n = max(1, state["articles"])
    held = max(1, state["engine_articles"])
    return {
        "store_file": state["store_file_bytes"] / n,
        **{f"store_{table}": size / n for table, size in state["store_table_bytes"].items()},
        "signature_data": state["signature_data_bytes"] / max(1, state["signatures"]),
        "signature_table": state["store_table_bytes"].get("signatures", 0) / max(1, state["signatures"]),
        "search_index": state["search_index_bytes"] / n,
        "engine": state["engine_bytes"] / held,
        "engine_lsh": state["engine_lsh_bytes"] / held,
        "engine_rss": state["engine_rss_bytes"] / held,
    }


def child_leaks(template: Path, runs: int) -> dict[str, Any]:
    """In one process: the stages on ``runs`` fresh copies of one store; RSS after each."""
    after: list[int] = []
    with tempfile.TemporaryDirectory(prefix="newsagg-bench-leak-") as scratch:
        for number in range(runs):
            data_dir = Path(scratch) / f"run-{number}"
            shutil.copytree(template, data_dir)
            stages(data_dir)
            shutil.rmtree(data_dir)
            gc.collect()
            after.append(rss_bytes())
    return {"rss_after_run": after}


def _child(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.memory", "--child", *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def _in_process(what: str, path: str, *rest: str) -> dict[str, Any]:
    if what == "insert":
        return insert(Path(path), int(rest[0]))
    if what == "peak":
        return child_peak(Path(path))
    if what == "structures":
        return structures(Path(path))
    return child_leaks(Path(path), int(rest[0]))


def run(size: str = "quick", runs: int = LEAK_RUNS, *, isolated: bool = True) -> Result:
    """Measure; ``isolated=False`` runs every step in this process (smoke tests: fast, but RSS is not clean)."""
    sizes = SIZES[size]
    step = _child if isolated else _in_process
    points: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="newsagg-bench-memory-") as scratch:
        for count in sizes:
            data_dir = Path(scratch) / f"n{count}"
            inserted = step("insert", str(data_dir), str(count))
            if count == sizes[0]:
                shutil.copytree(data_dir, Path(scratch) / "leak-template")
            measured = step("peak", str(data_dir))
            state = step("structures", str(data_dir))
            growth = measured["peak_rss"] - measured["base_rss"]
            points.append({"articles": count, "insert": inserted, **measured, "growth": growth,
                           "bytes_per_article": growth / count, "structures": state,
                           "structures_per_article": per_article(state)})
            shutil.rmtree(data_dir)
        leaks = step("leaks", str(Path(scratch) / "leak-template"), str(runs))
    # At most linear growth: the marginal cost per article (between consecutive sizes) does not
    # climb by more than 30% (+1 KiB). A fixed cost and the per-batch working set (clustering
    # reads 2,000 articles at a time) make the first sizes dearer per article; a leak or a
    # superlinear structure would make the marginal cost rise with N.
    first, last = points[0], points[-1]
    slopes = [
        (b["growth"] - a["growth"]) / (b["articles"] - a["articles"]) for a, b in zip(points, points[1:])
    ]
    linear = all(later <= 1.3 * earlier + 1024 for earlier, later in zip(slopes, slopes[1:]))
    after = leaks["rss_after_run"]
    leak_per_run = (after[-1] - after[1]) / max(1, len(after) - 2) if len(after) > 2 else after[-1] - after[0]
    no_leak = leak_per_run <= 0.05 * first["growth"] + 2 * MIB
    kept = last["structures_per_article"]
    return Result(
        stage="memory",
        measured=(
            f"peak RSS of cluster + stories + index (SQLite) over {', '.join(str(p['articles']) for p in points)} "
            f"inserted articles; {runs} runs in one process for leaks; kept per article at {last['articles']}: "
            f"store {kept['store_file'] / 1024:.1f} KiB (signatures {kept['signature_table']:.0f} B), "
            f"search index {kept['search_index'] / 1024:.1f} KiB, restored engine {kept['engine']:.0f} B "
            f"(LSH {kept['engine_lsh']:.0f} B)"
        ),
        ours=Side(f"peak RSS growth at {last['articles']} articles", last["growth"] / MIB,
                  f"MiB ({last['bytes_per_article'] / 1024:.1f} KiB/article)"),
        baseline=Side(f"at {first['articles']} articles", first["growth"] / MIB,
                      f"MiB ({first['bytes_per_article'] / 1024:.1f} KiB/article)"),
        ratio=last["growth"] / first["growth"] if first["growth"] else None,
        target=(
            f"reported; linear ({'yes' if linear else 'no'}: marginal "
            f"{', '.join(f'{s / 1024:.1f}' for s in slopes)} KiB/article); "
            f"no leak across runs ({'yes' if no_leak else 'no'}: "
            f"RSS after runs {', '.join(f'{a / MIB:.0f}' for a in after)} MiB)"
        ),
        met=linear and no_leak,
        versions=versions("datasketch", "numpy", "SQLAlchemy", "sqlite"),
        details={"points": points, "leaks": leaks, "marginal_bytes_per_article": slopes,
                 "leak_bytes_per_run": leak_per_run},
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memory")
    parser.add_argument("--size", choices=sorted(SIZES), default="quick")
    parser.add_argument("--runs", type=int, default=LEAK_RUNS)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_in_process(*args.child)))
        return
    result = run(args.size, args.runs)
    print(result.line())
    save(f"memory-{args.size}.json", result.as_dict())


if __name__ == "__main__":
    main()
