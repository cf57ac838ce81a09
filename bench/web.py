"""Web interface latency: p95 of `/`, `/search` and `/stories/{id}` over loopback HTTP on a store of N articles.

The generated articles (``bench.corpus``) are inserted straight into a fresh SQLite store
and clustered, merged and indexed (embedded SQLite FTS5) as ``bench.memory`` does; then
`newsagg serve`'s application runs under uvicorn in this process, on 127.0.0.1, and one
client asks for each page ``requests`` times, one request at a time: the river's first page
and pages further down (by cursor), searches for words of the stories' titles, and story
pages of the largest stories (the most copies to compare) and of others. The issue's target:
p95 under 100 ms for each at 100k articles.
"""

from __future__ import annotations

import argparse
import random
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from bench.common import Result, Side, save
from pipeline.versions import versions
from bench.memory import _settings, insert, stages

SIZES = {"tiny": 300, "quick": 10_000, "full": 100_000}
REQUESTS = {"tiny": 20, "quick": 200, "full": 300}
TARGET_MS = 100.0


@contextmanager
def serving(data_dir: Path) -> Iterator[str]:
    """The web application over the store in ``data_dir``, under uvicorn on a free loopback port."""
    import uvicorn

    from pipeline.web import create_app

    listening = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(_settings(data_dir)), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the web server did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{listening.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        listening.close()


def latencies(client: httpx.Client, paths: list[str]) -> list[float]:
    """Milliseconds per request, each path once, in order."""
    out = []
    for path in paths:
        started = time.perf_counter()
        response = client.get(path)
        out.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return out


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def workload(client: httpx.Client, count: int, seed: int = 7) -> dict[str, list[str]]:
    """The paths to ask for: river pages, searches and story pages, ``count`` of each."""
    rng = random.Random(seed)
    river = ["/"]
    after: str | None = None
    while len(river) < count:
        page = client.get("/api/stories", params={"limit": 30, **({"after": after} if after else {})}).json()
        after = page["next"]
        if after is None:
            break
        river.append(f"/?after={after}")
    stories = client.get("/api/stories", params={"limit": 100}).json()["stories"]
    words = [w for s in stories for w in s["title"].split() if len(w) > 4 and w.isalpha()]
    searches = [f"/search?q={' '.join(rng.sample(words, k=rng.choice((1, 2))))}" for _ in range(count)]
    largest = sorted(stories, key=lambda s: -len(s["sources"]))[: max(1, count // 4)]
    story_ids = [s["id"] for s in largest] + [s["id"] for s in stories]
    return {
        "/": [river[n % len(river)] for n in range(count)],
        "/search": searches,
        "/stories/{id}": [f"/stories/{story_ids[n % len(story_ids)]}" for n in range(count)],
    }


def run(size: str = "quick", *, requests: int | None = None, progress: Callable[[str], None] = print) -> list[Result]:
    count, asked = SIZES[size], requests or REQUESTS[size]
    with tempfile.TemporaryDirectory(prefix="newsagg-bench-web-") as scratch:
        data_dir = Path(scratch) / "data"
        inserted = insert(data_dir, count)
        progress(f"inserted {count} articles in {inserted['seconds']:.0f} s; clustering, merging, indexing ...")
        built = stages(data_dir)
        progress(f"stages: {', '.join(f'{k} {v:.0f} s' for k, v in built['seconds'].items())}")
        with serving(data_dir) as url, httpx.Client(base_url=url, timeout=60) as client:
            paths = workload(client, asked)
            for page in paths.values():  # warm: the first request of each kind opens and caches
                latencies(client, page[:3])
            measured = {page: latencies(client, list_) for page, list_ in paths.items()}
    results = []
    for page, values in measured.items():
        p50, p95 = percentile(values, 0.5), percentile(values, 0.95)
        results.append(Result(
            stage=f"web {page}",
            measured=(f"`newsagg serve` over loopback HTTP, {len(values)} sequential requests of {page} on a store "
                      f"of {count} articles ({built['counts']['build_stories']} stories), SQLite store and FTS5 index"),
            ours=Side("p95", p95, f"ms (p50 {p50:.1f} ms, max {max(values):.1f} ms)"),
            baseline=Side("target p95", TARGET_MS, "ms"),
            ratio=p95 / TARGET_MS,
            target=f"p95 < {TARGET_MS:.0f} ms at 100k articles" + ("" if size == "full" else f" (measured at {count})"),
            met=p95 < TARGET_MS,
            versions=versions("fastapi", "uvicorn", "Jinja2", "SQLAlchemy", "sqlite"),
            details={"articles": count, "requests": len(values), "p50_ms": p50, "p95_ms": p95,
                     "max_ms": max(values), "stages_seconds": built["seconds"], "insert_seconds": inserted["seconds"]},
        ))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.web")
    parser.add_argument("--size", choices=sorted(SIZES), default="quick")
    parser.add_argument("--articles", type=int, help="another store size than the size's")
    parser.add_argument("--requests", type=int, help="requests per page (default: by size)")
    args = parser.parse_args()
    if args.articles:
        SIZES[args.size] = args.articles
    results = run(args.size, requests=args.requests)
    for result in results:
        print(result.line())
    save(f"web-{args.size}.json", [r.as_dict() for r in results])


if __name__ == "__main__":
    main()
