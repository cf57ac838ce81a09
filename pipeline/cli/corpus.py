"""Work on a corpus of pages: `newsagg extract`, `dedup`, and the WARC archive's `reextract` and `import-warc`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipeline.cli.base import (
    EXIT_FAILURE,
    EXIT_OK,
    _counted,
    _datetime_arg,
    _json_default,
    _open_output,
    _print_json,
    _progress,
    _reading,
    _settings,
    _until_arg,
)
from pipeline.errors import ConfigError


def _cmd_extract(args: argparse.Namespace) -> int:
    from pipeline.batch import extract_inputs
    from pipeline.pool import WorkerPool

    failures = 0
    settings = _settings(args)
    with WorkerPool(settings.workers) as pool:
        for record in extract_inputs(args.inputs, settings, url=args.url, pool=pool):
            if "error" in record:
                failures += 1
                print(f"newsagg: {record['source']}: {record['error']}", file=sys.stderr)
            else:
                print(json.dumps(record, ensure_ascii=False, default=_json_default))
    return EXIT_OK if failures == 0 else EXIT_FAILURE


def _cmd_dedup(args: argparse.Namespace) -> int:
    from pipeline.dedup import dedup_jsonl
    from pipeline.pool import WorkerPool

    settings = _settings(args)
    with _open_output(args.output) as out, WorkerPool(settings.workers) as pool:
        count, clusters = dedup_jsonl(args.input, out, settings.clustering, pool=pool, progress=_progress())
    print(f"{count} documents, {clusters} clusters", file=sys.stderr)
    return EXIT_OK


# -- the WARC archive: reextract and import-warc ------------------------------------------------


def _cmd_reextract(args: argparse.Namespace) -> int:
    from pipeline.backfill import reextract
    from pipeline.runner import Pipeline

    with Pipeline(_reading(args), progress=_progress()) as pipeline:
        report = reextract(pipeline, since=args.since, outlet=args.outlet, progress=_progress())
    if args.json:
        _print_json(report.as_dict())
    else:
        print(f"{report.examined} archived articles re-extracted · {report.changed} changed"
              f" ({report.unreadable} pages unreadable, {report.failed} without text now)"
              f" · clustered {report.settled.clustered} · stories {report.settled.stories_built} updated"
              f" · indexed {report.settled.indexed}")
    return EXIT_OK if report.settled.index_error is None else EXIT_FAILURE


def _cmd_import_warc(args: argparse.Namespace) -> int:
    import glob

    from pipeline.backfill import import_warc
    from pipeline.runner import Pipeline

    paths: list[Path] = []
    for pattern in args.files:
        found = [Path(p) for p in sorted(glob.glob(pattern)) or [pattern] if Path(p).is_file()]
        if not found:  # a directory is no WARC file either
            raise ConfigError(f"no WARC file matches {pattern}")
        paths.extend(found)
    with Pipeline(_settings(args), progress=_progress()) as pipeline:
        try:
            report = import_warc(pipeline, list(dict.fromkeys(paths)), since=args.since, until=args.until,
                                 language=args.language, progress=_progress())
        except OSError as exc:
            raise ConfigError(f"cannot read {exc.filename}: {exc.strerror}") from None
    if args.json:
        _print_json(report.as_dict())
    else:
        skipped = ", ".join(f"{n} {reason}" for reason, n in report.skipped.most_common()) or "none"
        print(f"{_counted(report.files, 'file')} ({report.files_done_before} imported before)"
              f" · {_counted(report.records, 'record')} · {_counted(report.pages, 'page')}"
              f" · articles +{report.articles_added} ({report.failed} without text)"
              f" · clustered {report.settled.clustered} · stories {report.settled.stories_built} updated"
              f" · indexed {report.settled.indexed}")
        print(f"  records skipped: {skipped}")
    for failure in report.files_failed:
        print(f"newsagg: not imported: {failure}", file=sys.stderr)
    return EXIT_OK if report.settled.index_error is None and not report.files_failed else EXIT_FAILURE


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    """Add `extract`, `dedup`, `reextract` and `import-warc` to the commands."""
    extract = commands.add_parser(
        "extract", parents=[common], help="extract article text and metadata from files or URLs, one JSON line each"
    )
    extract.add_argument("inputs", nargs="+", metavar="FILE_OR_URL")
    extract.add_argument("--url", help="the page's URL, for a file input (helps metadata and relative links)")
    extract.set_defaults(handler=_cmd_extract)

    dedup = commands.add_parser(
        "dedup", parents=[common], help="cluster near-duplicates in a JSONL file",
        description='Input lines {"id","title","text"[,"url","source","published"]}; '
        'output lines {"id","cluster_id"}, one per input id, in input order, written once the input is read '
        "(it is streamed: the texts are not kept in memory).",
    )
    dedup.add_argument("input", type=Path, metavar="INPUT.jsonl", help="'-' for standard input")
    dedup.add_argument("-o", "--output", type=Path, metavar="OUT.jsonl", help="default: standard output")
    dedup.set_defaults(handler=_cmd_dedup)

    reextract = commands.add_parser(
        "reextract", parents=[common], help="extract stored articles again from their archived pages (no network)",
        description="Runs extraction again over the archived page of every stored article (see the archive "
        "settings), stores the articles whose text changed, clusters, builds stories and indexes them again. "
        "Safe to kill and repeat: a second pass changes nothing. A page whose archive file is gone, cut short or "
        "damaged is counted unreadable and its article left as it was.",
    )
    reextract.add_argument("--since", type=_datetime_arg, metavar="DATE", help="only articles published (else fetched) since then")
    reextract.add_argument("--outlet", help="only this outlet's articles (its name in the feed list)")
    reextract.add_argument("--json", action="store_true", help="print the report as JSON")
    reextract.set_defaults(handler=_cmd_reextract)

    import_warc = commands.add_parser(
        "import-warc", parents=[common], help="store the HTML pages of WARC files as articles (e.g. CC-NEWS)",
        description="Reads WARC files (.warc or .warc.gz, e.g. Common Crawl's CC-NEWS) as a stream, stores an "
        "article for every 200 HTML response (its outlet: the URL's registrable domain), then clusters, builds "
        "stories and indexes. A killed import goes on where it stopped; a file imported to its end is skipped "
        "when imported again with the same --since, --until and --language, unless it has grown since (a download "
        "cut off, now whole): then it is read on from where the import stopped.",
    )
    import_warc.add_argument("files", nargs="+", metavar="FILE_OR_GLOB")
    import_warc.add_argument("--since", type=_datetime_arg, metavar="DATE", help="only pages fetched since then (WARC-Date)")
    import_warc.add_argument("--until", type=_until_arg, metavar="DATE", help="only pages fetched until then (WARC-Date)")
    import_warc.add_argument("--language", metavar="L", help='only articles in this language ("en")')
    import_warc.add_argument("--json", action="store_true", help="print the report as JSON")
    import_warc.set_defaults(handler=_cmd_import_warc)
