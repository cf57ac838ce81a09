"""Runner: generate the corpus, measure each system in its own process, print and save.

    python -m bench.dedup --sizes 1000,10000,100000
    python -m bench.dedup --quick            # 1k only
    python -m bench.dedup --sizes ''         # the multilingual corpus only
    python -m bench.dedup --sizes 100000,1000000 --ours-only --no-multilingual   # newsagg dedup alone

Ours is ``newsagg dedup`` as a user runs it, timed as a whole process, like
the textbook scripts. Corpora above 100,000 articles are written as they are
generated (``write_large``) and only ``newsagg dedup`` runs on them, as with
``--ours-only`` at any size. Then the multilingual corpus
(bench/dedup/multilingual: ten languages), scored per language. Writes bench/results/dedup-<size>.json and
dedup-multilingual.json (git-ignored).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.dedup import multilingual
from bench.dedup.corpus import generate, write_large
from bench.dedup.metrics import merged_apart, scores

RESULTS = Path(__file__).resolve().parent.parent / "results"
ROOT = Path(__file__).resolve().parent.parent.parent
# Above this size the corpus is written as it is generated (bench.dedup.corpus.write_large),
# unscored for must-stay-apart pairs, and only `newsagg dedup` runs.
STREAMED = 100_000


def _process(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    """Run a command to its end: (wall seconds, peak RSS in bytes of its largest process)."""
    started = time.perf_counter()
    child = subprocess.Popen(cmd, cwd=ROOT, env=env)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise subprocess.CalledProcessError(child.returncode, cmd)
    return seconds, usage.ru_maxrss * 1024  # Linux counts kilobytes


def _measure(system: str, corpus: Path, extra: list[str]) -> list[dict[str, object]]:
    """One system of bench/dedup/worker.py in its own process, timed whole by this one."""
    out = corpus.with_name(f"{corpus.stem}.{system}.out.json")
    cmd = [sys.executable, "-m", "bench.dedup.worker", "--system", system, "--corpus", str(corpus), "--out", str(out), *extra]
    seconds, peak = _process(cmd)
    results: list[dict[str, object]] = json.loads(out.read_text())
    out.unlink()
    for result in results:
        result["process_seconds"], result["process_peak_rss"] = seconds, peak
    return results


def _measure_dedup(corpus: Path, workers: int) -> dict[str, object]:
    """`newsagg dedup` as a user runs it: one process from start to exit, its output read back."""
    out = corpus.with_name(f"{corpus.stem}.dedup.out.jsonl")
    cmd = [sys.executable, "-m", "pipeline", "dedup", str(corpus), "-o", str(out)]
    seconds, peak = _process(cmd, env={**os.environ, "NEWSAGG_WORKERS": str(workers)})
    cluster_of: dict[str, str] = {}
    with out.open(encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            cluster_of[row["id"]] = row["cluster_id"]
    out.unlink()
    with corpus.open(encoding="utf-8") as lines:
        predicted = [cluster_of[json.loads(line)["id"]] for line in lines]
    return {"system": "ours", "process_seconds": seconds, "process_peak_rss": peak, "predicted": predicted}


def _truth(corpus: Path) -> list[str]:
    with corpus.open(encoding="utf-8") as lines:
        return [json.loads(line)["label"] for line in lines]


def _median_run(runs: list[dict[str, object]]) -> dict[str, object]:
    """The run of median wall time (the upper one of an even count), with every run's seconds beside it."""
    ordered = sorted(runs, key=lambda run: float(run["process_seconds"]))  # type: ignore[arg-type]
    return {**ordered[len(ordered) // 2], "runs_seconds": [run["process_seconds"] for run in runs]}


def _byte_compile() -> None:
    """Compile the package's modules, as ``pip install`` does, before any process is timed.

    An editable install has no bytecode; where PYTHONDONTWRITEBYTECODE is set (as on the
    machine these numbers come from) every ``newsagg dedup`` would compile them again,
    about 20 ms of each run that no installed copy spends. The baseline's libraries are
    installed, and compiled.
    """
    for package in ("pipeline", "bench"):
        compileall.compile_dir(ROOT / package, quiet=1)


def run_size(size: int, seed: int, workers: int, ours_only: bool = False, repeat: int = 1) -> dict[str, object]:
    corpus_path = RESULTS / f"corpus-{size}.jsonl"
    must_apart: list[tuple[str, str, str]] = []
    ours_only = ours_only or size > STREAMED
    if ours_only:
        write_large(corpus_path, size, seed)
    else:
        corpus = generate(size, seed)
        corpus.write(corpus_path)
        must_apart = corpus.must_apart
        del corpus
    started, load = time.time(), os.getloadavg()[0]
    # Ours and the baseline take turns, so that a change in the machine's load
    # falls on both; each is reported by its median run.
    ours_runs: list[dict[str, object]] = []
    textbook_runs: list[list[dict[str, object]]] = []
    for _ in range(repeat):
        ours_runs.append(_measure_dedup(corpus_path, workers))
        if not ours_only:
            textbook_runs.append(_measure("textbook", corpus_path, ["--thresholds", "0.5"]))
    systems = [_median_run(ours_runs)]
    if not ours_only:
        systems += _median_run([runs[0] for runs in textbook_runs]), *textbook_runs[0][1:]
        systems += _measure("textbook-per-shingle", corpus_path, ["--thresholds", "0.5"])
        # The two textbook variants feed the same shingles to the same hash: only the time may differ.
        if systems[1]["predicted"] != systems[2]["predicted"]:
            raise RuntimeError("the textbook's batch and per-shingle signatures clustered differently")
        # The engine alone, in-process, for what it holds per article (index bytes).
        systems += _measure("engine", corpus_path, ["--workers", str(workers)])
    truth = _truth(corpus_path)
    clusters = len(set(truth))
    rows: list[dict[str, object]] = []
    for result in systems:
        predicted = result.pop("predicted")
        assert isinstance(predicted, list)
        row: dict[str, object] = {**result, **scores(truth, predicted)}
        row["articles_per_second"] = size / float(result["process_seconds"])  # type: ignore[arg-type]
        row["peak_rss_per_article"] = float(result["process_peak_rss"]) / size  # type: ignore[arg-type]
        if "index_bytes" in result:
            row["index_bytes_per_article"] = float(result["index_bytes"]) / size  # type: ignore[arg-type]
        row["must_apart"] = merged_apart(truth, predicted, must_apart)
        rows.append(row)
    report: dict[str, object] = {
        "size": size,
        "seed": seed,
        "clusters": clusters,
        "must_apart_pairs": len(must_apart),
        "wall_seconds": time.time() - started,
        "load_average_at_start": load,
        "systems": rows,
    }
    if not ours_only:
        ours, baseline, per_shingle = rows[0], rows[1], rows[2]
        report["throughput_ratio_vs_textbook@0.5"] = (
            float(ours["articles_per_second"]) / float(baseline["articles_per_second"])  # type: ignore[arg-type]
        )
        report["throughput_ratio_vs_textbook_per_shingle@0.5"] = (
            float(ours["articles_per_second"]) / float(per_shingle["articles_per_second"])  # type: ignore[arg-type]
        )
    corpus_path.unlink()
    corpus_path.with_suffix(".apart.json").unlink()
    return report


def run_multilingual(workers: int) -> dict[str, object]:
    """Both systems on the multilingual corpus (all languages in one run), scored per language and overall."""
    corpus_path = RESULTS / "corpus-multilingual.jsonl"
    corpus = multilingual.generate()
    corpus.write(corpus_path)
    systems = [_measure_dedup(corpus_path, workers), *_measure("textbook", corpus_path, ["--thresholds", "0.5"])]
    groups: dict[str, list[int]] = {"all": list(range(len(corpus.docs)))}
    for i, doc in enumerate(corpus.docs):
        groups.setdefault(multilingual.language_of(doc), []).append(i)
    rows: list[dict[str, object]] = []
    for result in systems:
        predicted = result["predicted"]
        assert isinstance(predicted, list)
        for language, members in groups.items():
            truth = [corpus.docs[i].label for i in members]
            labels = set(truth)
            apart = [pair for pair in corpus.must_apart if pair[0] in labels and pair[1] in labels]
            picked = [predicted[i] for i in members]
            rows.append(
                {
                    "system": result["system"],
                    "language": language,
                    "articles": len(members),
                    "clusters": len(labels),
                    **scores(truth, picked),
                    "must_apart": merged_apart(truth, picked, apart),
                }
            )
    corpus_path.unlink()
    corpus_path.with_suffix(".apart.json").unlink()
    return {"size": "multilingual", "systems": rows}


def print_multilingual(report: dict[str, object]) -> None:
    print("\n== multilingual corpus (bench/dedup/multilingual), per language ==")
    print(f"{'system':<15}{'lang':<6}{'docs':>6}{'stories':>8}{'P':>8}{'R':>8}{'F1':>8}{'ARI':>8}  must-stay-apart merged")
    rows = report["systems"]
    assert isinstance(rows, list)
    for row in rows:
        apart = ", ".join(f"{case} {v['merged']}/{v['pairs']}" for case, v in sorted(row["must_apart"].items()))
        print(
            f"{row['system']:<15}{row['language']:<6}{row['articles']:>6}{row['clusters']:>8}{row['precision']:>8.4f}"
            f"{row['recall']:>8.4f}{row['f1']:>8.4f}{row['ari']:>8.4f}  {apart or '-'}"
        )


def print_table(report: dict[str, object]) -> None:
    print(
        f"\n== {report['size']} articles, {report['clusters']} true clusters, {report['must_apart_pairs']} must-stay-apart "
        f"pairs (load average {report.get('load_average_at_start', float('nan')):.1f} at the start) =="
    )
    print(
        f"{'system':<26}{'P':>8}{'R':>8}{'F1':>8}{'ARI':>8}{'seconds':>9}{'art/s':>8}{'inner s':>9}{'peak MB':>9}"
        f"{'index':>7}  must-stay-apart merged"
    )
    systems = report["systems"]
    assert isinstance(systems, list)

    for row in systems:
        apart = ", ".join(f"{case} {v['merged']}/{v['pairs']}" for case, v in sorted(row["must_apart"].items()))
        inner = f"{row['seconds']:.2f}" if "seconds" in row else "-"
        index = f"{row['index_bytes_per_article']:.0f}" if "index_bytes_per_article" in row else "-"
        print(
            f"{row['system']:<26}{row['precision']:>8.4f}{row['recall']:>8.4f}{row['f1']:>8.4f}{row['ari']:>8.4f}"
            f"{row['process_seconds']:>9.2f}{row['articles_per_second']:>8.0f}{inner:>9}"
            f"{row['process_peak_rss'] / 2**20:>9.0f}{index:>7}  {apart or '-'}"
        )
    print(
        "seconds and art/s: the process whole, start to exit (ours: `newsagg dedup IN -o OUT`); inner s: signatures "
        "and LSH only, corpus loaded; peak MB: peak RSS of the largest process; index: bytes per article the engine holds"
    )
    for row in systems:
        if len(row.get("runs_seconds", [])) > 1:
            runs = ", ".join(f"{seconds:.2f}" for seconds in row["runs_seconds"])
            print(f"{row['system']}: median of {len(row['runs_seconds'])} runs taking turns with the other ({runs} s)")
    if "throughput_ratio_vs_textbook@0.5" in report:
        print(f"throughput ours / textbook@0.5: {report['throughput_ratio_vs_textbook@0.5']:.2f}x (the baseline)")
        print(f"throughput ours / textbook per-shingle@0.5: {report['throughput_ratio_vs_textbook_per_shingle@0.5']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.dedup")
    parser.add_argument("--sizes", default="1000,10000,100000", help="comma-separated corpus sizes")
    parser.add_argument("--quick", action="store_true", help="1k articles only")
    parser.add_argument("--seed", type=int, default=20240930)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--show", action="store_true", help="print the saved results again, measure nothing")
    parser.add_argument("--no-multilingual", action="store_true", help="skip the multilingual corpus")
    parser.add_argument(
        "--ours-only", action="store_true", help="newsagg dedup alone, on a corpus written as it is made (any size)"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of ours and of the update_batch textbook, taking turns; medians reported"
    )
    args = parser.parse_args()
    sizes = [1000] if args.quick else [int(s) for s in args.sizes.split(",") if s]
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.show:
        for size in sizes:
            print_table(json.loads((RESULTS / f"dedup-{size}.json").read_text()))
        if not args.no_multilingual:
            print_multilingual(json.loads((RESULTS / "dedup-multilingual.json").read_text()))
        return
    _byte_compile()
    for size in sizes:
        report = run_size(size, args.seed, args.workers, args.ours_only, max(1, args.repeat))
        (RESULTS / f"dedup-{size}.json").write_text(json.dumps(report, indent=2))
        print_table(report)
    if args.no_multilingual:
        return
    report = run_multilingual(args.workers)
    (RESULTS / "dedup-multilingual.json").write_text(json.dumps(report, indent=2))
    print_multilingual(report)


if __name__ == "__main__":
    main()
