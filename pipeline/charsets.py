"""Text from bytes: the encoding of text whose bytes declare none (guessed with
charset-normalizer), and JSON whose strings hold half a character."""

from __future__ import annotations

import json
import re
from typing import Any

#: Bytes the detector reads at most: enough for a verdict, bounded on huge documents.
SAMPLE_BYTES = 65536

_NON_LATIN_LEGACY = frozenset(
    {"cp1251", "cp1253", "cp1255", "cp1256", "iso8859_5", "iso8859_6", "iso8859_7", "iso8859_8", "mac_cyrillic", "mac_greek"}
)


def guess_encoding(data: bytes) -> str:
    """The Python codec name of the most likely encoding of ``data`` (windows-1252 when unsure).

    Among the Latin code pages the detector often picks the wrong sibling (cp1250 for
    French); windows-1252 is the web's default for them. Other scripts keep the guess.
    """
    from charset_normalizer import from_bytes  # imported when needed: most text declares its encoding

    guess = from_bytes(data[:SAMPLE_BYTES]).best()
    encoding = guess.encoding if guess else "cp1252"
    if encoding.startswith(("cp125", "iso8859", "latin", "mac_")) and encoding not in _NON_LATIN_LEGACY:
        return "cp1252"
    return encoding


# A JSON escape of a UTF-16 surrogate, the half of a character outside the BMP.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE_ESCAPE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def parse_json(document: str | bytes) -> Any:
    """``json.loads``, with each lone surrogate escape (``\\ud83d``: half a character) read as U+FFFD.

    JavaScript's ``substring`` can cut an emoji's surrogate pair in two, and ``JSON.stringify``
    then writes the half as an escape. Python keeps it in the string it returns, where UTF-8
    cannot encode it, so the store and the search backends would refuse the text; browsers
    show U+FFFD. A whole pair is one character once decoded and stays as it is.

    Raises:
        ValueError: not JSON (``json.JSONDecodeError``, or ``UnicodeDecodeError`` for bytes).
        RecursionError: nested too deep.
    """
    value = json.loads(document)
    found = (
        _SURROGATE_ESCAPE_BYTES.search(document) if isinstance(document, bytes) else _SURROGATE_ESCAPE.search(document)
    )
    return _without_surrogates(value) if found else value


def _without_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_without_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {_without_surrogates(key): _without_surrogates(item) for key, item in value.items()}
    return value
