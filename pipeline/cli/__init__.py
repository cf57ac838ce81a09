"""`newsagg`: the command line. Parses, builds the pipeline, calls the library, maps errors to exit codes.

One module per group of commands, each with its handlers and its own part of the parser:
``run`` (run, demo), ``stories`` (search, clusters, articles, export), ``corpus`` (extract, dedup,
reextract, import-warc), ``feeds``, ``serve``, ``operations`` (runs, metrics, db, outbox, es,
kibana); ``base`` holds what they share. Heavy modules are imported inside the handlers, so
``newsagg --help`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pipeline import logs
from pipeline.cli import corpus, feeds, operations, run, serve, stories
from pipeline.cli.base import EXIT_FAILURE, EXIT_USAGE
from pipeline.cli.run import print_demo, print_demo_commands
from pipeline.errors import ConfigError, NewsaggError

__all__ = ["main", "print_demo", "print_demo_commands"]


class _Stopped(KeyboardInterrupt):
    """SIGTERM (docker stop, systemd, kill): stop as an interrupt does, with the stores left consistent."""


def _stop(_signum: int, _frame: Any) -> None:
    raise _Stopped


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logs.configure(logging.DEBUG if args.verbose else logging.WARNING, json_lines=False)  # until the settings are read
    stopping = signal.signal(signal.SIGTERM, _stop) if threading.current_thread() is threading.main_thread() else None
    try:
        handler: Callable[[argparse.Namespace], int] = args.handler
        return handler(args)
    except ConfigError as exc:
        print(f"newsagg: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except NewsaggError as exc:
        print(f"newsagg: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except _Stopped:
        print("newsagg: stopped (SIGTERM); run again to resume where it stopped", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("newsagg: interrupted; run again to resume where it stopped", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`newsagg export articles | head`): stop quietly, and keep Python
        # from failing again on flushing standard output at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    finally:
        if stopping is not None:
            signal.signal(signal.SIGTERM, stopping)


def _common_options(parser: argparse.ArgumentParser, *, defaults: bool) -> argparse.ArgumentParser:
    def default(value: Any) -> Any:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument("--config", type=Path, default=default(None), help="YAML settings file (also NEWSAGG_CONFIG)")
    parser.add_argument(
        "--data-dir", type=Path, default=default(None),
        help="where the embedded store and index live (NEWSAGG_DATA_DIR)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", default=default(False), help="log what each stage does")
    return parser


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="newsagg",
        description="Fetch news feeds, cluster syndicated copies of the same story, search the merged stories.",
        parents=[_common_options(argparse.ArgumentParser(add_help=False), defaults=True)],
    )
    # Subcommands accept the same options; SUPPRESS keeps them from resetting a value
    # given before the subcommand (`newsagg --data-dir D clusters list`).
    common = _common_options(argparse.ArgumentParser(add_help=False), defaults=False)
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    for group in (run, stories, corpus, feeds, serve, operations):
        group.register(commands, common)
    return parser
