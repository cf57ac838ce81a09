"""Extraction: pages per second with our worker pool against a plain single-process trafilatura loop.

The pages are the scaled-up demo corpus (generated articles in the ten outlets' own
templates), held in memory: fetching is not part of this measurement.

* ours: ``extract_pages`` with ``extraction.workers`` processes, called in batches of
  ``extraction.batch_size`` pages as the runner calls it (a pool per batch);
* baseline: ``trafilatura.bare_extraction`` on each page in turn, with the options
  ``extract_page`` uses.

Both must give the same output: the same title, author and text (trafilatura's lines
joined into paragraphs as ``extract_page`` joins them) for every page. Each side runs
``repeats`` times, alternating, after a warm-up on other pages; the fastest run of each
counts (the least disturbed by other work on the machine).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from bench.common import Result, Side, cpu_seconds, load_average, save, versions
from bench.corpus import generate_articles, outlet_templates

SIZES = {"tiny": 24, "quick": 400, "full": 2000}
BASE = "http://127.0.0.1:8000"


def pages(count: int) -> list[tuple[str, bytes]]:
    """``count`` rendered article pages as (url, body), outlets in turn."""
    templates = outlet_templates()
    return [
        (f"{BASE}/{templates[a.outlet].page_path(a)}", templates[a.outlet].render_page(a).replace("{{BASE}}", BASE).encode())
        for a in generate_articles(count)
    ]


def _plain_loop(items: list[tuple[str, bytes]]) -> list[Any]:
    from trafilatura import bare_extraction

    from pipeline.extraction import _DATE_PARAMS

    return [
        bare_extraction(
            body,
            url=url,
            with_metadata=True,
            include_comments=False,
            include_tables=True,
            date_extraction_params=_DATE_PARAMS,
        )
        for url, body in items
    ]


def _ours(items: list[tuple[str, bytes]], workers: int, batch_size: int) -> list[Any]:
    from pipeline.extraction import extract_pages

    out: list[Any] = []
    for start in range(0, len(items), batch_size):
        out.extend(extract_pages(items[start : start + batch_size], workers))
    return out


def _workers_cpu() -> float:
    """CPU seconds used so far by this process's live children (the extraction pool's workers)."""
    import multiprocessing
    import os

    total = 0.0
    for child in multiprocessing.active_children():
        try:
            fields = Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _same(ours: Any, plain: Any) -> bool:
    from pipeline.extraction import _clean, _paragraphs

    if ours is None or plain is None:
        return ours is None and (plain is None or not _paragraphs(plain.text or ""))
    return bool(
        ours.text == _paragraphs(plain.text or "")
        and ours.title == _clean(plain.title)
        and ours.author == _clean(plain.author)
    )


def run(size: str = "quick", repeats: int = 3) -> Result:
    from pipeline.settings import ExtractionSettings

    settings = ExtractionSettings()
    items = pages(SIZES[size])
    # trafilatura builds tables and loads resources on first use: pay that before timing
    # either side (other pages, so no cache of trafilatura's sees the measured ones).
    _plain_loop(pages(SIZES["tiny"] + len(items))[len(items) :])
    load = load_average()
    timings: dict[str, list[float]] = {"ours": [], "plain": []}
    cpu: dict[str, float] = {}
    ours_out: list[Any] = []
    plain_out: list[Any] = []
    for _ in range(repeats):
        for side in ("plain", "ours"):
            started, cpu0, workers0 = time.perf_counter(), cpu_seconds(), _workers_cpu()
            if side == "ours":
                ours_out = _ours(items, settings.workers, settings.batch_size)
            else:
                plain_out = _plain_loop(items)
            timings[side].append(time.perf_counter() - started)
            # The pool outlives the call (its workers' CPU is read from /proc, not from os.times).
            cpu[side] = cpu_seconds() - cpu0 + max(0.0, _workers_cpu() - workers0)
    same = sum(_same(o, p) for o, p in zip(ours_out, plain_out, strict=True))
    extracted = sum(o is not None for o in ours_out)
    ours_rate = len(items) / min(timings["ours"])
    plain_rate = len(items) / min(timings["plain"])
    ratio = ours_rate / plain_rate
    return Result(
        stage="extraction",
        measured=f"{len(items)} pages (10 outlet templates), in memory",
        ours=Side(
            f"extract_pages, {settings.workers} processes, batches of {settings.batch_size}",
            ours_rate,
            f"pages/s ({cpu['ours'] * 1000 / len(items):.1f} ms CPU/page)",
        ),
        baseline=Side(
            "plain trafilatura loop, 1 process", plain_rate, f"pages/s ({cpu['plain'] * 1000 / len(items):.1f} ms CPU/page)"
        ),
        ratio=ratio,
        target=f">= 1.8x on 2 cores, same output ({same}/{len(items)} identical)",
        met=ratio >= 1.8 and same == len(items),
        versions=versions("trafilatura", "lxml"),
        details={
            "pages": len(items),
            "extracted": extracted,
            "identical_outputs": same,
            "seconds": timings,
            "cpu_seconds_last_run": cpu,  # ours: this process and the pool's workers
            "load_average_before": load,
            "workers": settings.workers,
            "batch_size": settings.batch_size,
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.extraction")
    parser.add_argument("--size", choices=sorted(SIZES), default="quick")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    result = run(args.size, args.repeats)
    print(result.line())
    save(f"extraction-{args.size}.json", result.as_dict())


if __name__ == "__main__":
    main()
