"""Text from bytes: the encoding of text whose bytes declare none (guessed with
charset-normalizer), and JSON and XML that hold half a character."""

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


# A numeric character reference to a UTF-16 surrogate (U+D800 to U+DFFF, decimal 55296 to 57343): half a character.
_SURROGATE_REFERENCE = re.compile(
    rb"&#(?:[xX]0*[dD][89a-fA-F][0-9a-fA-F]{2}|0*(?:5529[6-9]|55[3-9][0-9]{2}|56[0-9]{3}|57[0-2][0-9]{2}|573[0-3][0-9]|5734[0-3]));"
)
# A JSON escape of a UTF-16 surrogate, the half of a character outside the BMP.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE_ESCAPE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def without_surrogate_references(document: bytes) -> bytes:
    """An XML document whose character references to half a character (``&#55357;``) are U+FFFD's (``&#xFFFD;``).

    XML forbids them: libxml2 stops reading at the first, and feedparser fails on the
    whole document when it encodes the half it made of one. HTML reads one as U+FFFD.
    """
    return _SURROGATE_REFERENCE.sub(b"&#xFFFD;", document)


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
