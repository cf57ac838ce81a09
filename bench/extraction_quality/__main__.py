"""Score the extractors on the development sets and print the table.

    python -m bench.extraction_quality                         every configured set
    python -m bench.extraction_quality --set wcxb --limit 100  the first 100 pages of one set

Results go to bench/results/extraction-quality-<set>.json (every page's score by every
extractor, for finding where ours loses) and the table to extraction-quality.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from itertools import islice
from pathlib import Path
from typing import Any

from bench.common import RESULTS, machine
from pipeline.versions import versions
from bench.extraction_quality.datasets import ENV, MissingSet, Page, pages
from bench.extraction_quality.extractors import EXTRACTORS
from bench.extraction_quality.metrics import rouge_lsum_f1, snippet_counts, word_f1

SETS = tuple(ENV)
METRIC = {"trafilatura": "snippet F1 (over all snippets)", "fundus": "ROUGE-LSum F1 (mean)", "wcxb": "word F1 (mean)"}


def score_page(page: Page, names: tuple[str, ...] = tuple(EXTRACTORS)) -> dict[str, Any]:
    """Every extractor's score on one page (a crash or no text scores as empty text)."""
    row: dict[str, Any] = {"id": page.id, "kind": page.kind, "url": page.url}
    for name in names:
        try:
            text = EXTRACTORS[name](page.html, page.url)
        except Exception as exc:  # a competitor failing costs its score on this page, not the run
            print(f"{name} failed on {page.set}/{page.id}: {type(exc).__name__}: {exc}", file=sys.stderr)
            text = None
        if page.set == "trafilatura":
            row[name] = snippet_counts(text, page.expected["with"], page.expected["without"])
        elif page.set == "fundus":
            row[name] = rouge_lsum_f1(text, page.expected["body"])
        else:
            row[name] = word_f1(text, page.expected["main_content"])
        row[f"{name}_chars"] = len(text or "")
    return row


def summarise(name: str, rows: list[dict[str, Any]], names: tuple[str, ...]) -> list[dict[str, Any]]:
    """Table lines of one set: one per subset (WCXB: all pages, then articles)."""
    subsets = {"all pages": rows}
    if name == "wcxb":
        subsets["articles"] = [r for r in rows if r["kind"] == "article"]
    lines = []
    for subset, chosen in subsets.items():
        scores: dict[str, float] = {}
        for extractor in names:
            if name == "trafilatura":
                tp = sum(r[extractor][0] for r in chosen)
                fp = sum(r[extractor][1] for r in chosen)
                fn = sum(r[extractor][2] for r in chosen)
                scores[extractor] = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
            else:
                scores[extractor] = sum(r[extractor] for r in chosen) / len(chosen) if chosen else 0.0
        lines.append({"set": name, "subset": subset, "pages": len(chosen), "metric": METRIC[name], "scores": scores})
    return lines


def by_kind(rows: list[dict[str, Any]], names: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """WCXB's mean F1 per page type and extractor."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[row["kind"]].append(row)
    return {kind: {n: round(sum(r[n] for r in g) / len(g), 4) for n in names} | {"pages": len(g)}
            for kind, g in sorted(groups.items())}


def table(lines: list[dict[str, Any]], names: tuple[str, ...]) -> str:
    head = "| set | pages | metric | " + " | ".join(names) + " |"
    out = [head, "|" + "---|" * (3 + len(names))]
    for line in lines:
        best = max(line["scores"].values())
        cells = [f"**{line['scores'][n]:.4f}**" if line["scores"][n] == best else f"{line['scores'][n]:.4f}" for n in names]
        out.append(f"| {line['set']} ({line['subset']}) | {line['pages']} | {line['metric']} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def run(name: str, limit: int | None, workers: int, names: tuple[str, ...]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    chosen = list(islice(pages(name), limit))
    if workers <= 1:
        rows = [score_page(p, names) for p in chosen]
    else:
        with ProcessPoolExecutor(workers) as pool:
            rows = list(pool.map(score_page, chosen, [names] * len(chosen), chunksize=2))
    return rows, summarise(name, rows, names)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.extraction_quality", description=__doc__.split("\n")[0])
    parser.add_argument("--set", choices=SETS, action="append", help="a set to score (repeatable; default: every configured one)")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N pages of each set")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: all cores)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where results go (default: bench/results)")
    parser.add_argument("--extractors", default=",".join(EXTRACTORS), help=f"comma-separated subset of {', '.join(EXTRACTORS)}")
    args = parser.parse_args(argv)
    names = tuple(n.strip() for n in args.extractors.split(",") if n.strip())
    if unknown := sorted(set(names) - set(EXTRACTORS)):
        parser.error(f"unknown extractor(s): {', '.join(unknown)}")
    wanted = args.set or [s for s in SETS if os.environ.get(ENV[s])]
    if not wanted:
        parser.error("no set configured: set " + ", ".join(ENV.values()) + " (see bench/README.md)")
    lines: list[dict[str, Any]] = []
    for name in wanted:
        started = time.time()
        try:
            rows, found = run(name, args.limit, args.workers, names)
        except MissingSet as exc:
            parser.error(str(exc))
        lines += found
        details: dict[str, Any] = {"set": name, "limit": args.limit, "seconds": round(time.time() - started, 1),
                                   "lines": found, "machine": machine(), "versions": versions("trafilatura", "justext", "readability-lxml", "lxml"),
                                   "pages": rows}
        if name == "wcxb":
            details["by_kind"] = by_kind(rows, names)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"extraction-quality-{name}.json").write_text(json.dumps(details, indent=1, default=str) + "\n", encoding="utf-8")
        print(f"{name}: {len(rows)} pages in {time.time() - started:.0f} s", file=sys.stderr)
    text = table(lines, names)
    (args.out / "extraction-quality.md").write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
