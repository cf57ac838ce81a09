"""Where the command line's log lines go, and in which form: text for a terminal, JSON lines for a log shipper."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

_HANDLER = "newsagg"  # the name of our handler on the root logger, replaced when logging is set up again
# The least severe record each library may log unless debugging: trafilatura and the Elasticsearch
# transport log every refused page or connection retry with a traceback (our own messages already
# say what happened, in one line); httpx logs every request and Alembic its plugins at INFO.
_LIBRARY_LEVELS = {"trafilatura": logging.ERROR, "elastic_transport": logging.ERROR, "httpx": logging.WARNING,
                   "alembic": logging.WARNING}


class JsonLines(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, and the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure(level: int, json_lines: bool) -> None:
    """Send the log records of ``level`` and above to standard error, as text or as JSON lines.

    As with ``logging.basicConfig``, a process whose logging someone else set up (an
    application calling ``main``, a test harness) keeps its handlers and level.
    """
    for library, least in _LIBRARY_LEVELS.items():
        logging.getLogger(library).setLevel(least if level > logging.DEBUG else logging.NOTSET)
    root = logging.getLogger()
    ours = [h for h in root.handlers if h.get_name() == _HANDLER]
    if len(ours) < len(root.handlers):
        return
    for handler in ours:
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER)
    handler.setFormatter(JsonLines() if json_lines else logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
