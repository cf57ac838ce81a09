"""Text files replaced whole: what a reader of the file sees is the old one or the new one."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO


@contextmanager
def replacing(path: Path) -> Iterator[TextIO]:
    """A text file written beside ``path`` and moved over it when the block ends without an error.

    A block that fails or is stopped part way leaves ``path`` as it was and removes what it
    wrote. The file keeps its mode, and a new one gets the umask's (applied by the system as the
    file is made: reading the umask would set it for every thread of the process for a moment),
    not a temporary file's 0600: the file may be read by another user than the one writing it.

    Raises:
        OSError: the file cannot be made, written or moved into place.
    """
    kept = path.stat().st_mode & 0o7777 if path.exists() else None
    written = path.with_name(f".{path.name}.{secrets.token_hex(8)}.partial")
    descriptor = os.open(written, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if kept is not None else 0o666)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            yield handle
        if kept is not None:
            os.chmod(written, kept)
        os.replace(written, path)
    except BaseException:
        written.unlink(missing_ok=True)
        raise


__all__ = ["replacing"]
