"""Feeds: N feeds fetched over loopback HTTP and parsed, then polled again unchanged.

Pass 1 polls every feed with ``Pipeline.poll_feeds`` (ours) and, on a fresh store, with
one ``Pipeline.poll_feed`` after another (the baseline: no concurrency). The feeds are
served by ``CorpusServer`` in a child process, the publishers' side of the wire; "cores
busy" is the CPU time of both processes (ours with its children) over the wall time,
against the two cores of the machine.

Pass 2 polls the same, unchanged feeds again: every answer must be a 304 to our
conditional GET, with no feed parsed and no entry queued for extraction.

All feeds are on one loopback host standing in for many publishers, so the per-domain
limit is raised to the overall one (``fetch.concurrency``, at its default) and the
politeness delay is zero. Every response is delayed by ``LATENCY`` (a publisher's round
trip and think time): over bare loopback, waiting on the network would cost nothing and
concurrency could not show.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

from bench.common import Result, Side, measure, save
from pipeline.versions import versions
from bench.corpus import build, generate_articles, served

SIZES = {"tiny": (10, 5), "quick": (100, 20), "full": (500, 100)}  # (feeds, entries per feed)
LATENCY = 0.05  # seconds per response


def _settings(base_url: str, data_dir: Path, feeds_file: Path) -> Any:
    from pipeline.demo.run import demo_settings
    from pipeline.settings import FetchSettings

    concurrency = FetchSettings().concurrency
    return demo_settings(base_url, data_dir, feeds_file, fetch={"per_domain_concurrency": concurrency})


def run(size: str = "quick", workdir: Path | None = None) -> Result:
    import pipeline.runner.articles
    import pipeline.runner.feeds
    from pipeline.runner import Pipeline

    feed_count, entries = SIZES[size]
    with tempfile.TemporaryDirectory(prefix="newsagg-bench-feeds-", dir=workdir) as scratch:
        root = Path(scratch)
        corpus = build(root / "corpus", generate_articles(feed_count * entries), entries_per_feed=entries, pages=False)
        with served(corpus.root, latency=LATENCY) as server:
            feeds_file = corpus.write_feed_list(server.base_url, root / "feeds.yaml")

            def poll(data_dir: str, concurrent: bool) -> tuple[Any, float, list[Any], Pipeline]:
                pipe = Pipeline(_settings(server.base_url, root / data_dir, feeds_file))
                sources = pipe.load_feeds()
                server_cpu = server.cpu_seconds()
                with measure() as span:
                    if concurrent:
                        outcomes = pipe.poll_feeds(sources)
                    else:
                        outcomes = [pipe.poll_feed(f.id) for f in sources]
                return span, server.cpu_seconds() - server_cpu, outcomes, pipe

            seq_span, seq_server, seq_outcomes, seq_pipe = poll("sequential", concurrent=False)
            seq_pipe.close()
            span, server_cpu, outcomes, pipe = poll("ours", concurrent=True)
            try:
                # Pass 2: the same feeds, unchanged. Count what would mean wasted work.
                parses = mock.Mock(wraps=pipeline.runner.feeds.parse_feed)
                extractions = mock.Mock(wraps=pipeline.runner.articles.PageBatch)
                with mock.patch.object(pipeline.runner.feeds, "parse_feed", parses), mock.patch.object(
                    pipeline.runner.articles, "PageBatch", extractions
                ):
                    second_server = server.cpu_seconds()
                    with measure() as second:
                        again = pipe.poll_feeds(pipe.load_feeds())
                    second_server = server.cpu_seconds() - second_server
                pending = pipe.store.entry_counts().get("pending", 0)
            finally:
                pipe.close()

    feeds_n = len(corpus.feeds)
    ok = sum(o.status == "ok" for o in outcomes)
    new_entries = sum(o.new_entries for o in outcomes)
    busy = (span.cpu + server_cpu) / span.wall
    seq_busy = (seq_span.cpu + seq_server) / seq_span.wall
    not_modified = sum(o.status == "not_modified" for o in again)
    second_new = sum(o.new_entries for o in again)
    pass2_clean = not_modified == feeds_n and parses.call_count == 0 and extractions.call_count == 0 and second_new == 0
    ratio = seq_span.wall / span.wall
    details = {
        "feeds": feeds_n,
        "entries_per_feed": entries,
        "pass1": {
            "ok": ok,
            "latency_seconds": LATENCY,
            "new_entries": new_entries,
            "seconds": span.wall,
            "feeds_per_second": feeds_n / span.wall,
            "client_cpu_seconds": span.cpu,
            "server_cpu_seconds": server_cpu,
            "cores_busy": busy,
        },
        "pass1_sequential": {
            "ok": sum(o.status == "ok" for o in seq_outcomes),
            "seconds": seq_span.wall,
            "feeds_per_second": feeds_n / seq_span.wall,
            "cores_busy": seq_busy,
        },
        "pass2": {
            "not_modified": not_modified,
            "parse_calls": parses.call_count,
            "extract_calls": extractions.call_count,
            "new_entries": second_new,
            "pending_entries_left_from_pass1": pending,
            "seconds": second.wall,
            "feeds_per_second": feeds_n / second.wall,
            "cores_busy": (second.cpu + second_server) / second.wall,
        },
    }
    return Result(
        stage="feeds",
        measured=(
            f"{feeds_n} feeds x {entries} entries fetched + parsed over loopback "
            f"(+{LATENCY * 1000:.0f} ms per response); pass 2 unchanged"
        ),
        ours=Side("poll_feeds", feeds_n / span.wall, f"feeds/s ({busy:.2f} of 2 cores busy)"),
        baseline=Side("one feed after another", feeds_n / seq_span.wall, f"feeds/s ({seq_busy:.2f} cores busy)"),
        ratio=ratio,
        target=(
            f"pass 2: 0 parses, 0 extractions (got {parses.call_count}, {extractions.call_count}, "
            f"{not_modified}/{feeds_n} 304); pass 1 >= 1.6 of 2 cores busy"
        ),
        met=pass2_clean and busy >= 1.6 and ok == feeds_n,
        versions=versions("feedparser", "httpx", "sqlite"),
        details=details,
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.feeds")
    parser.add_argument("--size", choices=sorted(SIZES), default="quick")
    args = parser.parse_args()
    result = run(args.size)
    print(result.line())
    save(f"feeds-{args.size}.json", result.as_dict())


if __name__ == "__main__":
    main()
