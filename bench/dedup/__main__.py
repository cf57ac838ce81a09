"""Runner: generate the corpus, measure each system in its own process, print and save.

    python -m bench.dedup --sizes 1000,10000,100000
    python -m bench.dedup --quick            # 1k only
    python -m bench.dedup --sizes ''         # the multilingual corpus only

Then the multilingual corpus (bench/dedup/multilingual: ten languages), scored
per language. Writes bench/results/dedup-<size>.json and
dedup-multilingual.json (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from bench.dedup import multilingual
from bench.dedup.corpus import generate
from bench.dedup.metrics import merged_apart, scores

RESULTS = Path(__file__).resolve().parent.parent / "results"


def _measure(system: str, corpus: Path, extra: list[str]) -> list[dict[str, object]]:
    out = corpus.with_name(f"{corpus.stem}.{system}.out.json")
    cmd = [sys.executable, "-m", "bench.dedup.worker", "--system", system, "--corpus", str(corpus), "--out", str(out), *extra]
    subprocess.run(cmd, check=True, cwd=Path(__file__).resolve().parent.parent.parent)
    results: list[dict[str, object]] = json.loads(out.read_text())
    out.unlink()
    return results


def run_size(size: int, seed: int, workers: int) -> dict[str, object]:
    corpus_path = RESULTS / f"corpus-{size}.jsonl"
    corpus = generate(size, seed)
    corpus.write(corpus_path)
    truth = [d.label for d in corpus.docs]
    started = time.time()
    systems = (
        _measure("ours", corpus_path, ["--workers", str(workers)])
        + _measure("textbook", corpus_path, [])
        + _measure("textbook-per-shingle", corpus_path, ["--thresholds", "0.5"])
    )
    # The two textbook variants feed the same shingles to the same hash: only the time may differ.
    if systems[1]["predicted"] != systems[3]["predicted"]:
        raise RuntimeError("the textbook's batch and per-shingle signatures clustered differently")
    rows: list[dict[str, object]] = []
    for result in systems:
        predicted = result.pop("predicted")
        assert isinstance(predicted, list)
        row: dict[str, object] = {**result, **scores(truth, predicted)}
        row["articles_per_second"] = size / float(result["seconds"])  # type: ignore[arg-type]
        row["peak_rss_per_article"] = float(result["peak_rss_growth"]) / size  # type: ignore[arg-type]
        row["retained_rss_per_article"] = float(result["retained_rss_growth"]) / size  # type: ignore[arg-type]
        if "index_bytes" in result:
            row["index_bytes_per_article"] = float(result["index_bytes"]) / size  # type: ignore[arg-type]
        row["must_apart"] = merged_apart(truth, predicted, corpus.must_apart)
        rows.append(row)
    ours, baseline, per_shingle = rows[0], rows[1], rows[3]
    report: dict[str, object] = {
        "size": size,
        "seed": seed,
        "clusters": len(set(truth)),
        "must_apart_pairs": len(corpus.must_apart),
        "wall_seconds": time.time() - started,
        "systems": rows,
        "throughput_ratio_vs_textbook@0.5": float(ours["articles_per_second"]) / float(baseline["articles_per_second"]),  # type: ignore[arg-type]
        "throughput_ratio_vs_textbook_per_shingle@0.5": (
            float(ours["articles_per_second"]) / float(per_shingle["articles_per_second"])  # type: ignore[arg-type]
        ),
    }
    corpus_path.unlink()
    corpus_path.with_suffix(".apart.json").unlink()
    return report


def run_multilingual(workers: int) -> dict[str, object]:
    """Both systems on the multilingual corpus (all languages in one run), scored per language and overall."""
    corpus_path = RESULTS / "corpus-multilingual.jsonl"
    corpus = multilingual.generate()
    corpus.write(corpus_path)
    systems = _measure("ours", corpus_path, ["--workers", str(workers)]) + _measure(
        "textbook", corpus_path, ["--thresholds", "0.5"]
    )
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
    print(f"\n== {report['size']} articles, {report['clusters']} true clusters, {report['must_apart_pairs']} must-stay-apart pairs ==")
    print(
        f"{'system':<26}{'P':>8}{'R':>8}{'F1':>8}{'ARI':>8}{'art/s':>10}{'index':>8}{'RSS kept':>10}{'RSS peak':>10}"
        "  must-stay-apart merged"
    )
    systems = report["systems"]
    assert isinstance(systems, list)

    def per_article(row: dict[str, object], key: str) -> str:
        value = row.get(key)
        return f"{value:.0f}" if isinstance(value, float) else "-"

    for row in systems:
        apart = ", ".join(f"{case} {v['merged']}/{v['pairs']}" for case, v in sorted(row["must_apart"].items()))
        print(
            f"{row['system']:<26}{row['precision']:>8.4f}{row['recall']:>8.4f}{row['f1']:>8.4f}{row['ari']:>8.4f}"
            f"{row['articles_per_second']:>10.0f}{per_article(row, 'index_bytes_per_article'):>8}"
            f"{per_article(row, 'retained_rss_per_article'):>10}{per_article(row, 'peak_rss_per_article'):>10}  {apart}"
        )
    print("bytes per article: index = the engine's own count (arrays, LSH, ids, clusters); RSS = process growth")
    print(f"throughput ours / textbook@0.5: {report['throughput_ratio_vs_textbook@0.5']:.2f}x (the baseline)")
    print(f"throughput ours / textbook per-shingle@0.5: {report['throughput_ratio_vs_textbook_per_shingle@0.5']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.dedup")
    parser.add_argument("--sizes", default="1000,10000,100000", help="comma-separated corpus sizes")
    parser.add_argument("--quick", action="store_true", help="1k articles only")
    parser.add_argument("--seed", type=int, default=20240930)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--show", action="store_true", help="print the saved results again, measure nothing")
    args = parser.parse_args()
    sizes = [1000] if args.quick else [int(s) for s in args.sizes.split(",") if s]
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.show:
        for size in sizes:
            print_table(json.loads((RESULTS / f"dedup-{size}.json").read_text()))
        print_multilingual(json.loads((RESULTS / "dedup-multilingual.json").read_text()))
        return
    for size in sizes:
        report = run_size(size, args.seed, args.workers)
        (RESULTS / f"dedup-{size}.json").write_text(json.dumps(report, indent=2))
        print_table(report)
    report = run_multilingual(args.workers)
    (RESULTS / "dedup-multilingual.json").write_text(json.dumps(report, indent=2))
    print_multilingual(report)


if __name__ == "__main__":
    main()
