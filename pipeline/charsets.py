"""The encoding of text whose bytes declare none, guessed with charset-normalizer."""

from __future__ import annotations

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
