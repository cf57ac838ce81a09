"""One measured system in its own process: load the corpus, cluster it, report.

The runner times the process whole (start to exit, as a user's script runs);
``seconds`` here covers signatures + LSH (+ verification) alone, corpus
loading excluded. ``engine`` is ``ClusterEngine`` in-process, measured for
what it holds per article; ``newsagg dedup`` itself is run by the runner.

Memory, three ways, each from just before clustering (the corpus is loaded):

* index bytes (ours only): what the engine holds for its window, counted by
  ``ClusterEngine.nbytes`` (arrays as allocated, LSH buckets, ids, clusters,
  short-text sets). This is the figure the 1 KiB/article target is about.
* retained RSS: the resident set once clustering is done and garbage is
  collected. On top of the index it holds what the allocator keeps after
  freeing the batches' transients (glibc does not hand fragmented heap back;
  ``malloc_trim`` would return much of it) and the signing pool's plumbing.
* peak RSS: the highest resident set while clustering (the peak counter is
  reset first): the retained set plus one batch's transients (its texts sent
  to the pool, sketches, candidate pairs, the assignments returned).
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from datetime import datetime
from pathlib import Path


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _reset_peak() -> int:
    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (Linux >= 4.0)
    except OSError:
        pass
    return _status("VmRSS")


def _load(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def run_ours(docs: list[dict[str, str]], chunk: int, workers: int) -> dict[str, object]:
    from pipeline.clustering import ClusterEngine
    from pipeline.models import Article, TextSource
    from pipeline.pool import WorkerPool
    from pipeline.settings import ClusteringSettings

    articles = [
        Article(
            id=d["id"],
            url=f"https://example.invalid/{d['id']}",
            outlet=d["source"],
            title=d["title"],
            text=d["text"],
            published=datetime.fromisoformat(d["published"]),
            fetched_at=datetime.fromisoformat(d["published"]),
            text_source=TextSource.INPUT,
        )
        for d in docs
    ]
    articles.sort(key=lambda a: a.arrival_key)
    settings = ClusteringSettings()
    # Warm up imports (datasketch pulls in scipy; a pool, multiprocessing) so
    # they are not counted as index memory. The measured engine starts its own
    # pool, in the measured time.
    warm = ClusterEngine(settings.model_copy(update={"pool_min_batch": 1}))
    warm.add_many(articles[:2])
    del warm
    base = _reset_peak()
    t0 = time.perf_counter()
    pool = WorkerPool(workers)
    engine = ClusterEngine(settings, pool)
    for i in range(0, len(articles), chunk):
        # Like incremental runs: assignments are handed on, not kept.
        engine.add_many(articles[i : i + chunk])
    elapsed = time.perf_counter() - t0
    peak = _status("VmHWM")
    gc.collect()
    retained = _status("VmRSS")
    clusters = {a.id: engine.cluster_of(a.id) for a in articles}
    pool.close()
    return {
        "system": "engine in-process",
        "seconds": elapsed,
        "peak_rss_growth": peak - base,
        "retained_rss_growth": retained - base,
        "index_bytes": engine.nbytes(),
        "bands": engine.bands,
        "rows": engine.rows,
        "predicted": [clusters[d["id"]] for d in docs],
    }


def run_textbook(docs: list[dict[str, str]], thresholds: list[float], per_shingle: bool) -> list[dict[str, object]]:
    from bench.dedup import textbook

    ids = [d["id"] for d in sorted(docs, key=lambda d: (d["published"], d["id"]))]
    by_id = {d["id"]: d for d in docs}
    name = "textbook per-shingle" if per_shingle else "textbook"
    base = _reset_peak()
    t0 = time.perf_counter()
    # Kept for the second threshold: part of what the first one measures.
    minhashes = list(textbook.signatures((by_id[x]["text"] for x in ids), per_shingle=per_shingle))
    sig_seconds = time.perf_counter() - t0
    out: list[dict[str, object]] = []
    for n, threshold in enumerate(thresholds):
        if n:
            base = _reset_peak()
        t1 = time.perf_counter()
        roots, lsh = textbook.cluster(ids, minhashes, threshold)
        lsh_seconds = time.perf_counter() - t1
        peak = _status("VmHWM")
        gc.collect()
        retained = _status("VmRSS")
        del lsh
        root_of = dict(zip(ids, roots))
        out.append(
            {
                "system": f"{name}@{threshold}",
                "seconds": sig_seconds + lsh_seconds,
                "signature_seconds": sig_seconds,
                "peak_rss_growth": peak - base,
                "retained_rss_growth": retained - base,
                "predicted": [root_of[d["id"]] for d in docs],
            }
        )
        del roots, root_of
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--system", choices=["engine", "textbook", "textbook-per-shingle"], required=True)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--chunk", type=int, default=10000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--thresholds", default="0.5,0.3")
    args = parser.parse_args()
    docs = _load(args.corpus)
    if args.system == "engine":
        results: list[dict[str, object]] = [run_ours(docs, args.chunk, args.workers)]
    else:
        thresholds = [float(t) for t in args.thresholds.split(",")]
        results = run_textbook(docs, thresholds, per_shingle=args.system == "textbook-per-shingle")
    args.out.write_text(json.dumps(results))


if __name__ == "__main__":
    main()
