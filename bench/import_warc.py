"""WARC import and the page archive: `import-warc` pages per second against extraction alone; archive bytes per page.

The pages are the scaled-up demo corpus (bench/extraction.py), written to a gzip-per-record
WARC file by the archive's own writer, as a run writes them; that also measures what the
archive costs a run (milliseconds per page written) and its size per 1,000 pages.

* ours: ``import_warc`` on that file into a fresh embedded store and search index: reading,
  extraction on the run's ``workers`` processes, storing, clustering, stories, indexing;
* baseline: ``extract_pages`` alone on the same pages in memory, with the same workers: the
  rate the import could reach if everything but extraction were free.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import Result, Side, load_average, save
from pipeline.versions import versions
from bench.extraction import pages

SIZES = {"tiny": 24, "quick": 400, "full": 2000}


def run(size: str = "quick") -> Result:
    from pipeline.archive import ArchiveWriter
    from pipeline.backfill import import_warc
    from pipeline.extraction import extract_pages
    from pipeline.models import Fetched, Validators
    from pipeline.runner import Pipeline
    from pipeline.settings import load_settings

    count = SIZES[size]
    items = pages(count)
    load = load_average()
    with tempfile.TemporaryDirectory(prefix="bench-warc-") as scratch:
        root = Path(scratch)
        writer = ArchiveWriter(root / "warc", max_file_bytes=1 << 40)
        now = datetime.now(UTC)
        started = time.perf_counter()
        for url, body in items:
            writer.write(Fetched(url, url, 200, body, "text/html; charset=utf-8", Validators(),
                                 {"content-type": "text/html; charset=utf-8"}), now)
        write_seconds = time.perf_counter() - started
        (path,) = (root / "warc").glob("*.warc.gz")
        archive_bytes = path.stat().st_size

        settings = load_settings(data_dir=root / "data", search_backend="sqlite")
        workers = settings.workers
        with Pipeline(settings) as pipeline:
            pipeline.pool.start()
            extract_pages(pages(96)[-48:], pipeline.pool)  # the pool started and warm, as for the import below
            started = time.perf_counter()
            extracted = extract_pages([(u, b, "text/html; charset=utf-8") for u, b in items], pipeline.pool)
            extract_seconds = time.perf_counter() - started
            started = time.perf_counter()
            report = import_warc(pipeline, [path])
            import_seconds = time.perf_counter() - started
    ours, baseline = count / import_seconds, count / extract_seconds
    return Result(
        stage="import-warc",
        measured=(
            f"{count} pages (10 outlet templates) in one gzip-per-record WARC file of the archive's writer, "
            f"{archive_bytes * 1000 / count / 1024:.0f} KiB per 1,000 pages; writing it took "
            f"{write_seconds * 1000 / count:.2f} ms per page"
        ),
        ours=Side(f"import_warc into an empty embedded store, {workers} processes", ours,
                  "pages/s (read, extract, store, cluster, index)"),
        baseline=Side(f"extract_pages alone, in memory, {workers} processes", baseline, "pages/s"),
        ratio=ours / baseline,
        target="reported: how close the import comes to extraction's own rate",
        met=None,
        versions=versions("warcio", "trafilatura"),
        details={
            "pages": count,
            "articles_added": report.articles_added,
            "extracted": sum(e is not None for e in extracted),
            "archive_bytes": archive_bytes,
            "archive_bytes_per_1000_pages": archive_bytes * 1000 // count,
            "html_bytes_per_1000_pages": sum(len(b) for _, b in items) * 1000 // count,
            "archive_write_ms_per_page": write_seconds * 1000 / count,
            "import_seconds": import_seconds,
            "extract_seconds": extract_seconds,
            "workers": workers,
            "load_average_before": load,
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.import_warc")
    parser.add_argument("--size", choices=sorted(SIZES), default="quick")
    args = parser.parse_args()
    result = run(args.size)
    print(result.line())
    save(f"import_warc-{args.size}.json", result.as_dict())


if __name__ == "__main__":
    main()
