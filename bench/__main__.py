"""Run every benchmark, print each line and the results table.

    python -m bench --quick              CI-sized (a few minutes)
    python -m bench --full               the sizes the targets are stated for
    python -m bench --quick --only feeds,indexing
    python -m bench --full --table       the table again from the last saved results, measuring nothing

Each benchmark runs in its own process, bounded by a timeout. Results go to
bench/results/ (git-ignored): one JSON file per benchmark, bench-<mode>.json with all
of them, and table-<mode>.md, the table for the README.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from typing import Any

from bench.common import RESULTS, ROOT, Result, Side, load_average, machine, markdown_table, save
from pipeline.versions import versions

BENCHES = ("feeds", "extraction", "clustering", "indexing", "end_to_end", "import_warc", "memory", "web")
TIMEOUTS = {"tiny": 300, "quick": 900, "full": 5400}  # seconds per benchmark
DEDUP_SIZES = {"tiny": [200], "quick": [1000], "full": [10000, 100000]}


def _module(name: str, size: str, es_url: str | None, timeout: int) -> list[dict[str, Any]]:
    command = [sys.executable, "-m", f"bench.{name}", "--size", size]
    if es_url and name in ("indexing", "end_to_end"):
        command += ["--es-url", es_url]
    # Its lines are printed below with the others; its errors show as they happen.
    subprocess.run(command, cwd=ROOT, check=True, timeout=timeout, stdout=subprocess.DEVNULL)
    return _saved(name, size)


def _saved(name: str, size: str) -> list[dict[str, Any]]:
    """The rows a benchmark saved when it last ran at ``size``."""
    if name == "clustering":
        return _clustering_rows(size)
    data = json.loads((RESULTS / f"{name}-{size}.json").read_text(encoding="utf-8"))
    return data if isinstance(data, list) else [data]


def clustering(size: str, timeout: int) -> list[dict[str, Any]]:
    """The clustering issue's benchmark (bench/dedup), as result rows."""
    sizes = DEDUP_SIZES[size]
    # The smoke test's size checks fields, not times: one run of each system is enough there.
    repeat = "1" if size == "tiny" else "3"
    command = [sys.executable, "-m", "bench.dedup", "--sizes", ",".join(map(str, sizes)), "--repeat", repeat]
    subprocess.run(command, cwd=ROOT, check=True, timeout=timeout)
    return _clustering_rows(size)


def _clustering_rows(size: str) -> list[dict[str, Any]]:
    rows = []
    for n in DEDUP_SIZES[size]:
        report = json.loads((RESULTS / f"dedup-{n}.json").read_text(encoding="utf-8"))
        ours, textbook = report["systems"][0], report["systems"][1]
        rows.append(
            Result(
                stage="clustering",
                measured=(
                    f"{n} articles, {report['clusters']} true clusters (bench/dedup); "
                    f"F1 ours {ours['f1']:.4f}, textbook@0.5 {textbook['f1']:.4f}; against the textbook with "
                    f"per-shingle update: {report['throughput_ratio_vs_textbook_per_shingle@0.5']:.2f}x"
                ),
                ours=Side("newsagg dedup, whole process", float(ours["articles_per_second"]), "articles/s"),
                baseline=Side(
                    "textbook MinHash LSH @0.5 (MinHash.generator), whole process",
                    float(textbook["articles_per_second"]),
                    "articles/s",
                ),
                ratio=float(report["throughput_ratio_vs_textbook@0.5"]),
                target="as stated in the clustering issue (python -m bench.dedup)",
                met=None,
                versions=versions("datasketch", "numpy"),
                details={"report": f"bench/results/dedup-{n}.json", "f1": ours["f1"], "textbook_f1": textbook["f1"]},
            ).as_dict()
        )
    return rows


def _result(data: dict[str, Any]) -> Result:
    data = dict(data)
    data["ours"], data["baseline"] = Side(**data["ours"]), Side(**data["baseline"])
    return Result(**data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description="newsagg benchmarks")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="mode", action="store_const", const="quick", help="CI sizes (default)")
    mode.add_argument("--full", dest="mode", action="store_const", const="full", help="the full sizes")
    mode.add_argument("--tiny", dest="mode", action="store_const", const="tiny", help=argparse.SUPPRESS)  # smoke test
    parser.add_argument("--only", default=",".join(BENCHES), help=f"comma-separated subset of {', '.join(BENCHES)}")
    parser.add_argument("--es-url", default=None, help="Elasticsearch node (default: NEWSAGG_ES_URL or scripts/es-node)")
    parser.add_argument("--table", action="store_true", help="print the table of the last saved results, measure nothing")
    args = parser.parse_args(argv)
    size = args.mode or "quick"
    wanted = [b.strip() for b in args.only.split(",") if b.strip()]
    unknown = sorted(set(wanted) - set(BENCHES))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    command = "python -m bench " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    if args.table:
        saved = [_result(row) for name in BENCHES if name in wanted for row in _saved(name, size)]
        print(markdown_table(saved))
        return 0
    timeout = TIMEOUTS[size]
    es_url = args.es_url
    rows: list[dict[str, Any]] = []
    failures: list[str] = []
    started = time.time()
    for name in BENCHES:
        if name not in wanted:
            continue
        if es_url is None and name in ("indexing", "end_to_end"):
            from bench.common import es_url as ensure_es

            # Started once, when first needed (and stopped at exit if started here): an idle
            # JVM beside the two-core benchmarks before it took a few percent of their ratios.
            es_url = ensure_es()
        print(f"\n=== {name} ({size}), load average {load_average():.1f} ===", flush=True)
        try:
            found = clustering(size, timeout) if name == "clustering" else _module(name, size, es_url, timeout)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError, ValueError) as exc:
            failures.append(f"{name}: {exc}")
            print(f"{name} failed: {exc}", file=sys.stderr)
            continue
        for data in found:
            print(_result(data).line(), flush=True)
        rows.extend(found)
    results = [_result(r) for r in rows]
    table = markdown_table(results)
    summary = {"mode": size, "command": command, "machine": machine(), "seconds": time.time() - started,
               "results": rows, "failures": failures}
    save(f"bench-{size}.json", summary)
    (RESULTS / f"table-{size}.md").write_text(f"`{command}` ({machine()['revision']})\n\n{table}\n", encoding="utf-8")
    print(f"\n{command}  ({time.time() - started:.0f} s)\n\n{table}")
    if failures:
        print("\nfailed: " + "; ".join(failures), file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
