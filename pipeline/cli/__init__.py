"""`newsagg`: the command line. Parses, builds the pipeline, calls the library, maps errors to exit codes.

One module per group of commands, each with its handlers and its own part of the parser:
``run`` (run, demo), ``stories`` (search, clusters, articles, export), ``corpus`` (extract, dedup,
reextract, import-warc), ``feeds``, ``serve``, ``operations`` (runs, metrics, maintenance,
settings, db, outbox, es, kibana); ``base`` holds what they share. Heavy modules are imported inside the handlers, so
``newsagg --help`` stays fast.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

from pipeline import logs
from pipeline.cli import corpus, feeds, operations, run, serve, stories
from pipeline.cli.base import EXIT_FAILURE, EXIT_USAGE
from pipeline.cli.run import print_demo, print_demo_commands
from pipeline.errors import ConfigError, NewsaggError

__all__ = ["main", "print_demo", "print_demo_commands"]

#: What ``--version`` reports beside newsagg (for a bug report): extraction and its second extractor, feed
#: parsing, the store, the index. Dependencies of a plain install only: an extra may not be there.
_REPORTED_LIBRARIES = ("trafilatura", "readability-lxml", "feedparser", "SQLAlchemy", "elasticsearch")


class _OutputRefused(Exception):
    """Standard output refused a write (a full disk or device, a terminal gone); ``args[0]`` is its OSError."""


class _StandardOutput:
    """``sys.stdout`` during a command: a write it refuses is told apart from every other OSError.

    A command also writes files of its own (``-o``, the archive, the feed list), which say their
    own errors; only this stream's failures are "cannot write standard output". A reader gone
    (BrokenPipeError) stays what it is: the command stops quietly.
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return int(self._stream.write(text))
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise _OutputRefused(exc) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise _OutputRefused(exc) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _Stopped(KeyboardInterrupt):
    """SIGTERM (docker stop, systemd, kill): stop as an interrupt does, with the stores left consistent."""


#: Set once SIGTERM arrived: whatever then ends the command, it ends as a stop.
_stop_signalled = threading.Event()
#: Set once a stop is raised in the command; a stop being sent again (``_send_again``) is sent until then.
_stop_raised = threading.Event()
_sending_again = threading.Lock()


def _stop(signum: int, frame: FrameType | None) -> None:
    """SIGTERM (docker stop, systemd, kill) and SIGINT (Ctrl-C): raise the stop where the command is.

    Not inside ``sys.unraisablehook`` (``_stop_again``): raised there, it would be dropped like
    the exception the hook reports. It is sent again instead, to land once the hook is done.
    """
    if signum == signal.SIGTERM:
        _stop_signalled.set()
    if _in_unraisable_hook(frame):
        _send_again(signal.Signals(signum))
        return
    _stop_raised.set()
    raise _Stopped if signum == signal.SIGTERM else KeyboardInterrupt


def _in_unraisable_hook(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code is _stop_again.__code__:
            return True
        frame = frame.f_back
    return False


def _stop_again(otherwise: Callable[[Any], object], unraisable: Any) -> None:
    """``sys.unraisablehook``: a stop that a finaliser swallowed is sent again; anything else goes to ``otherwise``.

    Python cannot raise out of a ``__del__`` (psycopg closes connections in one), so the
    stop raised there was dropped and the command carried on.
    """
    if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
        _send_again(signal.SIGTERM if issubclass(unraisable.exc_type, _Stopped) else signal.SIGINT)
        return
    otherwise(unraisable)


def _send_again(stop: signal.Signals) -> None:
    """Send ``stop`` to the main thread from another thread, every 10 ms until its handler has raised it.

    Once is not enough: the main thread may still be in the hook when it arrives (``_stop``
    leaves it for the next one), however long the first is delayed.
    """
    if not _sending_again.acquire(blocking=False):
        return  # being sent already
    _stop_raised.clear()
    main_thread = threading.main_thread().ident
    assert main_thread is not None

    def send() -> None:
        try:
            while not _stop_raised.is_set():
                signal.pthread_kill(main_thread, stop)
                _stop_raised.wait(0.01)
        finally:
            _sending_again.release()

    threading.Thread(target=send, name="newsagg-stop-again", daemon=True).start()


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logs.configure(logging.DEBUG if args.verbose else logging.WARNING, json_lines=False)  # until the settings are read
    handlers = (
        {stop: signal.signal(stop, _stop) for stop in (signal.SIGTERM, signal.SIGINT)}
        if threading.current_thread() is threading.main_thread() else {}
    )
    unraisable_hook = sys.unraisablehook
    if handlers:
        sys.unraisablehook = partial(_stop_again, unraisable_hook)
    _stop_signalled.clear()
    _stop_raised.clear()
    stdout = sys.stdout
    sys.stdout = _StandardOutput(stdout)
    try:
        handler: Callable[[argparse.Namespace], int] = args.handler
        code = handler(args)
        # What waits in the buffer is written now, where its failure is handled, not at exit.
        sys.stdout.flush()
        return code
    except Exception as exc:
        # What the stop interrupted may fail on its way out (a database driver left in the middle
        # of a statement): that error follows from the stop, which is what ended the command.
        if _stop_signalled.is_set():
            return _stopped()
        if isinstance(exc, ConfigError):
            print(f"newsagg: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        if isinstance(exc, NewsaggError):
            print(f"newsagg: error: {exc}", file=sys.stderr)
            return EXIT_FAILURE
        if isinstance(exc, BrokenPipeError):
            # The reader went away (`newsagg export articles | head`): stop quietly, and keep Python
            # from failing again on flushing standard output at exit.
            _drop_output()
            return EXIT_FAILURE
        if isinstance(exc, _OutputRefused):
            # `newsagg export articles > all.jsonl` on a full disk, or to /dev/full, or a terminal gone.
            print(f"newsagg: error: cannot write standard output: {exc.args[0].strerror}", file=sys.stderr)
            _drop_output()
            return EXIT_FAILURE
        raise
    except _Stopped:
        return _stopped()
    except KeyboardInterrupt:
        print("newsagg: interrupted; run again to resume where it stopped", file=sys.stderr)
        return 130
    finally:
        sys.stdout = stdout
        _stop_raised.set()  # the command is over: nothing is sent again now
        sys.unraisablehook = unraisable_hook
        for stop, previous in handlers.items():
            signal.signal(stop, previous)


def _drop_output() -> None:
    """Standard output goes nowhere from now on, so Python's flush at exit does not fail again."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def console() -> int:
    """The ``newsagg`` program (and ``python -m pipeline``): ``main`` on the command line, then the process ends.

    The objects made so far are frozen first, so the garbage collector's passes at interpreter
    exit skip them: walking every object the imports made (pydantic's schemas, numpy,
    SQLAlchemy) was a measurable share of a short command's time (bench/README.md). Only
    here, where the process ends: ``main`` called in a longer-lived process must not freeze.
    """
    code = main()
    gc.freeze()
    return code


def _stopped() -> int:
    print("newsagg: stopped (SIGTERM); run again to resume where it stopped", file=sys.stderr)
    return 128 + signal.SIGTERM


def _common_options(parser: argparse.ArgumentParser, *, defaults: bool) -> argparse.ArgumentParser:
    def default(value: Any) -> Any:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument("--config", type=Path, default=default(None), help="YAML settings file (also NEWSAGG_CONFIG)")
    parser.add_argument(
        "--data-dir", type=Path, default=default(None),
        help="where the embedded store, search index, feed list and archive live by default (NEWSAGG_DATA_DIR)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", default=default(False), help="log what each stage does")
    return parser


def _version() -> str:
    """newsagg's version, Python's and its main libraries' (for a bug report)."""
    from pipeline.versions import versions

    found = versions("newsagg", *_REPORTED_LIBRARIES)
    libraries = ", ".join(f"{name} {found[name]}" for name in _REPORTED_LIBRARIES)
    return f"newsagg {found['newsagg']} (Python {found['python']}; {libraries})"


class _PrintVersion(argparse.Action):
    """``--version``: the versions on one line, unwrapped (argparse's own action wraps it to the terminal)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        print(_version())
        parser.exit()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="newsagg",
        description="Fetch news feeds, cluster syndicated copies of the same story, search the merged stories.",
        parents=[_common_options(argparse.ArgumentParser(add_help=False), defaults=True)],
    )
    parser.add_argument("--version", action=_PrintVersion,
                        help="show the versions of newsagg, Python and its main libraries, and exit")
    # Subcommands accept the same options; SUPPRESS keeps them from resetting a value
    # given before the subcommand (`newsagg --data-dir D clusters list`).
    common = _common_options(argparse.ArgumentParser(add_help=False), defaults=False)
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    for group in (run, stories, corpus, feeds, serve, operations):
        group.register(commands, common)
    return parser
