"""Extraction: pages per second with our worker pool against a plain single-process trafilatura loop.

The pages are the scaled-up demo corpus (generated articles in the ten outlets' own
templates), held in memory: fetching is not part of this measurement.

* ours: ``extract_pages`` on a ``WorkerPool`` of ``workers`` processes (the CPUs), called in batches of
  ``extraction.batch_size`` pages as the runner calls it (the pool kept between batches);
* baseline: ``trafilatura.bare_extraction`` on each page in turn, with the options
  ``extract_page`` uses, in a process of its own.

Both must give the same output: the same title, author and text (trafilatura's lines
joined into paragraphs as ``extract_page`` joins them, less what our rules cut: a repeated
headline, page furniture, the author's biography) for every page; how many texts our
rules cut is reported beside it. Both sides are
warmed up on the same other pages first, a round's worth (trafilatura's tables, resources
and memos of the templates' boilerplate, our pool's start). Then each of ``repeats`` rounds gives both sides the same new pages, in
alternating order; the fastest round of each side counts (the least disturbed by other
work on the machine). No process sees a measured page twice: trafilatura memoises lines
it has cleaned, so a page seen before extracts faster than a new one, which is not what
a pipeline meets.
"""

from __future__ import annotations

import argparse
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, NamedTuple

from bench.common import Result, Side, cpu_seconds, load_average, save
from pipeline.versions import versions
from bench.corpus import generate_articles, outlet_templates

SIZES = {"tiny": 24, "quick": 400, "full": 2000}
BASE = "http://127.0.0.1:8000"


class Plain(NamedTuple):
    """What the baseline's process sends back of each trafilatura document."""

    title: str | None
    author: str | None
    text: str | None


def pages(count: int) -> list[tuple[str, bytes]]:
    """``count`` rendered article pages as (url, body), outlets in turn."""
    templates = outlet_templates()
    return [
        (f"{BASE}/{templates[a.outlet].page_path(a)}", templates[a.outlet].render_page(a).replace("{{BASE}}", BASE).encode())
        for a in generate_articles(count)
    ]


def _plain_loop(items: list[tuple[str, bytes]]) -> list[Plain | None]:
    """trafilatura on each page in turn, keeping what is compared (as ours keeps small records)."""
    from trafilatura import bare_extraction

    from pipeline.extraction import TRAFILATURA_OPTIONS

    kept: list[Plain | None] = []
    for url, body in items:
        document = bare_extraction(body, url=url, **TRAFILATURA_OPTIONS)
        # The document holds its lxml trees: a thousand of them kept would slow this side down.
        kept.append(None if document is None else Plain(document.title, document.author, document.text))
    return kept


def _plain_process(conn: Connection) -> None:
    """A baseline process: runs the plain loop on each batch it is sent, until None."""
    while (items := conn.recv()) is not None:
        started, cpu0 = time.perf_counter(), time.process_time()
        kept = _plain_loop(items)
        # perf_counter is the system's monotonic clock: comparable between processes.
        conn.send((started, time.perf_counter(), time.process_time() - cpu0, kept))


class _PlainProcess:
    """A spawned process running the plain loop, with its own memos, as a separate program would."""

    def __init__(self) -> None:
        import multiprocessing

        self._conn, child_end = multiprocessing.Pipe()
        self.process = multiprocessing.get_context("spawn").Process(target=_plain_process, args=(child_end,), daemon=True)
        self.process.start()

    def send(self, items: list[tuple[str, bytes]]) -> None:
        self._conn.send(items)

    def result(self) -> tuple[float, float, float, list[Plain | None]]:
        """(started, ended, CPU seconds, what was kept) of the last batch sent."""
        return self._conn.recv()  # type: ignore[no-any-return]

    def close(self) -> None:
        self._conn.send(None)
        self.process.join(timeout=30)


def _ours(items: list[tuple[str, bytes]], pool: Any, batch_size: int) -> list[Any]:
    from pipeline.extraction import extract_pages

    out: list[Any] = []
    for start in range(0, len(items), batch_size):
        out.extend(extract_pages(items[start : start + batch_size], pool))
    return out


def _workers_cpu(besides: set[int]) -> float:
    """CPU seconds used so far by this process's live children but ``besides`` (the pool's workers)."""
    import multiprocessing
    import os

    total = 0.0
    for child in multiprocessing.active_children():
        if child.pid in besides:
            continue
        try:
            fields = Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _same(ours: Any, plain: Any, body: bytes) -> bool:
    """Whether ours is plain trafilatura's output, its text cut by our rules (pipeline.candidates)."""
    import lxml.html

    from pipeline.candidates import headlines, json_ld, paragraphs, trimmed
    from pipeline.extraction import _clean

    if ours is None or plain is None:
        return ours is None and (plain is None or not paragraphs(plain.text or ""))
    tree = lxml.html.document_fromstring(body)  # a news page's <h1> repeated in the text is cut too
    text = trimmed(paragraphs(plain.text or ""), plain.title, plain.author, headlines(tree, json_ld(tree)))
    return bool(ours.text == text and ours.title == _clean(plain.title) and ours.author == _clean(plain.author))


def _cut(ours: Any, plain: Any) -> bool:
    """Whether our rules cut something from plain trafilatura's text."""
    from pipeline.candidates import paragraphs

    return ours is not None and plain is not None and ours.text != paragraphs(plain.text or "")


def run(size: str = "quick", repeats: int = 5) -> Result:
    from pipeline.pool import WorkerPool
    from pipeline.settings import ExtractionSettings

    settings = ExtractionSettings()
    pool = WorkerPool()
    count = SIZES[size]
    # A round's worth: fewer left our pool's first round 5-10% slower than its later ones.
    warm_up_pages = max(count, 96)
    everything = pages(count * repeats + warm_up_pages)
    rounds = [everything[r * count : (r + 1) * count] for r in range(repeats)]
    warm_up = everything[count * repeats :]
    # Our pool first, forked from a single-threaded process as in `newsagg run`; the
    # baseline's processes are spawned after it (this process has threads by then).
    _ours(warm_up, pool, settings.batch_size)
    plains = [_PlainProcess(), _PlainProcess()]
    for plain in plains:
        plain.send(warm_up)
    for plain in plains:
        plain.result()
    others = {plain.process.pid or 0 for plain in plains}
    load = load_average()
    timings: dict[str, list[float]] = {"ours": [], "plain": [], "pair": []}
    cpu: dict[str, float] = {}
    same = cut = extracted = 0
    round_ratios: list[float] = []
    try:
        for round_number, items in enumerate(rounds):
            sides = ("plain", "ours", "pair")
            for side in sides[round_number % 3 :] + sides[: round_number % 3]:
                if side == "ours":
                    started, cpu0, workers0 = time.perf_counter(), cpu_seconds(), _workers_cpu(besides=others)
                    ours_out = _ours(items, pool, settings.batch_size)
                    timings["ours"].append(time.perf_counter() - started)
                    # The pool outlives the call (its workers' CPU is read from /proc, not from os.times).
                    cpu["ours"] = cpu_seconds() - cpu0 + max(0.0, _workers_cpu(besides=others) - workers0)
                elif side == "plain":
                    plains[0].send(items)
                    started, ended, cpu["plain"], plain_out = plains[0].result()
                    timings["plain"].append(ended - started)
                else:  # two plain processes side by side, half the pages each: what the machine allows
                    half = len(items) // 2
                    plains[0].send(items[:half])
                    plains[1].send(items[half:])
                    spans = [plain.result()[:2] for plain in plains]
                    timings["pair"].append(max(end for _, end in spans) - min(start for start, _ in spans))
            round_ratios.append(timings["plain"][-1] / timings["ours"][-1])
            same += sum(_same(o, p, body) for o, p, (_, body) in zip(ours_out, plain_out, items, strict=True))
            cut += sum(_cut(o, p) for o, p in zip(ours_out, plain_out, strict=True))
            extracted += sum(o is not None for o in ours_out)
    finally:
        for plain in plains:
            plain.close()
        pool.close()
    ours_rate = count / min(timings["ours"])
    plain_rate = count / min(timings["plain"])
    ratio = ours_rate / plain_rate
    machine = count / min(timings["pair"]) / plain_rate
    return Result(
        stage="extraction",
        measured=(
            f"{count} pages (10 outlet templates), in memory, new pages in each of {repeats} rounds; "
            f"two plain loops side by side on half the pages each: {machine:.2f}x (the machine's own limit)"
        ),
        ours=Side(
            f"extract_pages, {pool.workers} worker processes, batches of {settings.batch_size}",
            ours_rate,
            f"pages/s ({cpu['ours'] * 1000 / count:.1f} ms CPU/page)",
        ),
        baseline=Side(
            "plain trafilatura loop, 1 process", plain_rate, f"pages/s ({cpu['plain'] * 1000 / count:.1f} ms CPU/page)"
        ),
        ratio=ratio,
        target=f">= 1.8x on 2 cores, same output ({same}/{count * repeats} identical, {cut} cut by our rules)",
        met=ratio >= 1.8 and same == count * repeats,
        versions=versions("trafilatura", "lxml"),
        details={
            "pages": count,
            "rounds": repeats,
            "extracted": extracted,
            "identical_outputs": same,
            "texts_cut_by_our_rules": cut,
            "seconds": timings,
            "ratio_per_round": [round(r, 3) for r in round_ratios],
            "two_plain_processes_ratio": machine,
            "ours_of_two_plain_processes": ours_rate / (count / min(timings["pair"])),
            "warm_up_pages": warm_up_pages,
            "cpu_seconds_last_run": cpu,  # ours: this process and the pool's workers
            "load_average_before": load,
            "workers": pool.workers,
            "batch_size": settings.batch_size,
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.extraction")
    parser.add_argument("--size", choices=sorted(SIZES), default="quick")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    result = run(args.size, args.repeats)
    print(result.line())
    save(f"extraction-{args.size}.json", result.as_dict())


if __name__ == "__main__":
    main()
