"""`newsagg run` and `newsagg demo`: the pipeline over the configured feeds, or over the bundled demo corpus."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from pipeline.cli.base import EXIT_FAILURE, EXIT_OK, _print_json, _progress, _settings
from pipeline.cli.stories import print_search_results

if TYPE_CHECKING:
    from pipeline.demo.run import DemoResult


def _cmd_run(args: argparse.Namespace) -> int:
    from pipeline.feeds import load_feed_list
    from pipeline.runner import Pipeline

    settings = _settings(args)
    if settings.embedded_store is not None and not settings.embedded_store.exists():
        # A first run: a missing or broken feed list is an error before the store is made, or a
        # mistyped data dir would keep an empty store that later commands read as one. (In a
        # store that exists, the failed run is recorded.)
        load_feed_list(args.feeds or settings.resolved_feeds_file)
    with Pipeline(settings, progress=_progress()) as pipeline:
        report = pipeline.run(args.feeds, force=args.force)
    if args.json:
        _print_json(report.as_dict())
    else:
        ok = sum(1 for f in report.feeds if f.status in ("ok", "not_modified"))
        print(
            f"feeds {ok}/{len(report.feeds)} ok · articles +{report.articles_added}"
            f" ({report.articles_failed} failed, {report.pages_deferred} deferred)"
            f" · clustered {report.clustered} ({report.clusters_merged} merges)"
            f" · stories {report.stories_built} updated · indexed {report.indexed}"
        )
    # An unavailable index is the one error line the run logged (for Airflow's task log too).
    return EXIT_OK if report.index_error is None else EXIT_FAILURE


def _cmd_demo(args: argparse.Namespace) -> int:
    from pipeline.demo.run import run_demo

    demo = run_demo(args.data_dir, config_file=args.config, progress=_progress())
    if args.json:
        _print_json({"report": demo.report.as_dict(), "stories": demo.stories, "query": demo.query,
                     "search": demo.results})
        return EXIT_OK
    print_demo(demo, sys.stdout)
    if args.data_dir is not None:
        print(f"\nData kept in {args.data_dir}. Look at it with:")
        print_demo_commands(args.data_dir, demo.query, sys.stdout)
    return EXIT_OK


def print_demo_commands(data_dir: Path, query: str, out: TextIO) -> None:
    """The exact commands that show a demo's data (also used by scripts/airflow-demo)."""
    def shown(path: Path) -> str:  # relative to where the user is, when inside it
        relative = os.path.relpath(path.resolve())
        return shlex.quote(str(path.resolve()) if relative.startswith("..") else relative)

    installed = Path(sys.executable).parent / "newsagg"  # this environment's newsagg, on PATH or not
    newsagg = f"{shown(installed)} --data-dir {shown(data_dir)}" if installed.exists() else f"newsagg --data-dir {shown(data_dir)}"
    print(f"  {newsagg} clusters list", file=out)
    print(f"  {newsagg} search {shlex.quote(query)}", file=out)
    print(f"  {newsagg} export stories", file=out)
    print(f"  {newsagg} serve    # then open http://127.0.0.1:8000/", file=out)


def print_demo(demo: DemoResult, out: TextIO) -> None:
    """The demo's stories, with the outlets of each, and its example search (also used by scripts/airflow-demo)."""
    report = demo.report
    print(f"Demo run: {len(report.feeds)} feeds, {report.articles_added} articles, {report.clustered} clustered "
          f"into {len(demo.stories)} stories, {report.indexed} documents indexed.", file=out)
    merged = [s for s in demo.stories if s.article_count > 1]
    print(f"\n{len(merged)} stories ran in more than one outlet:", file=out)
    for story in merged:
        wire = f" · wire: {story.agency}" if story.agency else ""
        print(f"\n  {story.title}  [{story.id}]{wire}", file=out)
        for source in story.sources:
            print(f"    - {source.outlet}: {source.title}", file=out)
    print(f"\n…and {len(demo.stories) - len(merged)} stories from a single outlet.", file=out)
    print(f'\nExample search: newsagg search "{demo.query}"', file=out)
    print_search_results(demo.results, out)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    """Add `demo` and `run` to the commands."""
    demo = commands.add_parser(
        "demo", parents=[common],
        help="run the whole pipeline on the bundled demo corpus (served on 127.0.0.1)",
        description="Serve the bundled demo corpus on a loopback HTTP server, run the pipeline on embedded "
        "defaults into a fresh data directory (a temporary one unless --data-dir), print the merged stories "
        "and an example search; with --data-dir, then the commands that look at the data kept there.",
    )
    demo.add_argument("--json", action="store_true", help="machine-readable output")
    demo.set_defaults(handler=_cmd_demo)

    run = commands.add_parser(
        "run", parents=[common], help="one pass of the pipeline over the configured feeds",
        description="Poll the feeds of the feed list that are due, fetch and extract their new articles, "
        "cluster them, build the stories and index them; then print the run's counts. A feed that fails "
        "is recorded against it (`newsagg feeds status`) and the run goes on. Exit status 1 when the "
        "search index could not be written (its documents wait in the outbox for the next run).",
    )
    run.add_argument("--feeds", type=Path, help="feed list, YAML or OPML (default: settings feeds_file, else feeds.yaml in the data dir)")
    run.add_argument("--force", action="store_true", help="poll every feed now, retired ones too, even if its next poll is not due")
    run.add_argument("--json", action="store_true", help="print the run report as JSON")
    run.set_defaults(handler=_cmd_run)
