"""What the commands share: exit codes, settings and store, output, argument types."""

from __future__ import annotations

import argparse
import errno
import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import asdict, is_dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from pipeline import files, logs
from pipeline.dates import parse_moment, until
from pipeline.errors import ConfigError, NewsaggError
from pipeline.settings import Settings, load_settings

if TYPE_CHECKING:
    from pipeline.storage import Store

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


# -- settings and store -----------------------------------------------------------------------


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the command line gives (``--data-dir``)."""
    return {} if args.data_dir is None else {"data_dir": args.data_dir}


def _settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    settings = load_settings(args.config, **{**overrides, **_options(args)})
    level = logging.DEBUG if args.verbose else logging.getLevelNamesMapping()[settings.log_level.upper()]
    logs.configure(level, json_lines=settings.log_format == "json")
    return settings


def _reading(args: argparse.Namespace) -> Settings:
    """The settings of a command that reads the store or works only on what it holds, which must exist (see ``_existing``)."""
    return _existing(_settings(args))


def _store_made(settings: Settings) -> bool:
    """Whether the store the settings name is there: its SQLite file exists, or it is a server's."""
    return settings.store_file is None or settings.store_file.exists()


def _existing(settings: Settings) -> Settings:
    """``settings``, once the SQLite store they name is there: a command that only reads or works
    on what is stored must not make an empty one in a mistyped data dir or store URL, which would
    then look like an empty store."""
    if _store_made(settings):
        return settings
    if settings.store_url is None:
        raise ConfigError(f"no store in {settings.data_dir}: nothing has run there (check --data-dir, "
                          "NEWSAGG_DATA_DIR or the settings file; `newsagg run` makes one)")
    raise ConfigError(f"no store at {settings.store_file}: nothing has run there (check store_url: NEWSAGG_STORE_URL "
                      "or the settings file; `newsagg run` makes one)")


def _store(settings: Settings) -> closing[Store]:
    """The store the settings name, closed when the command is done."""
    from pipeline.storage import Store

    return closing(Store(settings.resolved_store_url))


def _progress() -> bool:
    return sys.stderr.isatty()


# -- output ----------------------------------------------------------------------------------


@contextmanager
def _open_output(path: Path | None) -> Iterator[TextIO]:
    """Standard output, or ``path`` written whole or not at all.

    A file is written beside itself and moved into place once the command is done, so a
    command that fails or is stopped part way leaves the file as it was (an earlier result
    stays, no half of a new one looks whole); it keeps its mode. Anything else is written as
    it goes: a pipe, a device, and a symbolic link (/dev/stdout is one, to whatever standard
    output is), which must not be replaced.
    """
    if path is None:
        yield sys.stdout
        return
    if path.is_symlink() or (path.exists() and not path.is_file()):
        try:
            stream = path.open("w", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
        with stream:
            yield stream
        return
    _new_file(path)
    try:
        with ExitStack() as stack:
            try:
                handle = stack.enter_context(files.replacing(path))
            except OSError as exc:
                raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
            yield handle
    except OSError as exc:
        if not disk_refused(exc):
            raise
        raise NewsaggError(f"cannot write {path}: {exc.strerror}") from None


def disk_refused(exc: OSError) -> bool:
    """Whether a write to an open file failed because the disk is full (or a quota or file-size limit is reached)."""
    return exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) and exc.filename is None


def _new_file(path: Path) -> Path:
    """``path``, once its directory is there: a mistyped directory is said so, not made."""
    if not path.parent.is_dir():
        raise ConfigError(f"cannot write {path}: no directory {path.parent}")
    return path


def _counted(count: int, noun: str) -> str:
    """``1 article``, ``2 articles``."""
    return f"{count} {noun if count == 1 else noun + 's'}"


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if value else "-"


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if is_dataclass(value) and not isinstance(value, type):
        data = asdict(value)
        for name in ("outlets", "article_count", "outlet_count"):  # derived properties of Story
            if hasattr(value, name) and name not in data:
                data[name] = getattr(value, name)
        return data
    if hasattr(value, "value"):  # enums
        return value.value
    raise TypeError(f"cannot encode {type(value).__name__}")


def _print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2, default=_json_default))


# -- argument types ----------------------------------------------------------------------------


def _datetime_arg(text: str) -> datetime:
    parsed = parse_moment(text)
    if parsed is None:
        raise argparse.ArgumentTypeError(f"not an ISO date or datetime: {text!r}")
    return parsed


def _whole_number_arg(least: int, meaning: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = least - 1
        if value < least:
            raise argparse.ArgumentTypeError(f"not {meaning}: {text!r}")
        return value

    return parse


_count_arg = _whole_number_arg(1, "a positive whole number")
_offset_arg = _whole_number_arg(0, "a whole number of hits to skip")


def _until_arg(text: str) -> datetime:
    """Like ``_datetime_arg``, but a date alone means the end of that day: ``--until`` includes it."""
    return until(text, _datetime_arg(text))

