"""The language of an article's text, for articles whose page and feed declare none.

Detection uses CLD2, Chromium's compact language detector, through pycld2: its tables
are compiled into the extension (no download, no model file, about 3 MB of memory), it
detects 165 languages in about 0.01 ms a text and finds none in a text too short to
tell. On our own fixtures (tests/data/languages.json: 14 languages, headlines and
paragraphs) it names 55 of 56 texts and finds no language in one headline, naming none
wrongly; see README.md, "Search in many languages", for the comparison with the others.
"""

from __future__ import annotations

import re

import pycld2

SAMPLE_CHARS = 2000  # the opening of a long text says its language as well as all of it
MIN_PERCENT = 50  # of the text in the language named, when CLD2 calls its guess unreliable
# CLD2 still says "iw" and "jw", the ISO 639-1 codes withdrawn in 1989.
_RENAMED = {"iw": "he", "jw": "jv"}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # CLD2 refuses a whole text for one


def detect_language(text: str) -> str | None:
    """The ISO 639-1 code of the text's language, or None when the detector is unsure."""
    sample = _CONTROL.sub(" ", text[:SAMPLE_CHARS])
    try:
        reliable, _, found = pycld2.detect(sample, isPlainText=True)
    except (pycld2.error, UnicodeError):  # a lone surrogate: not UTF-8
        return None
    _, code, percent, _ = found[0]
    code = str(code).split("-")[0]  # "zh-Hant" is Chinese
    # CLD2 calls a text unreliable when other languages' words blur its guess, and finds
    # none ("un") in a text too short to tell. Its guess for most of a text is still right
    # (our Russian fixture paragraph, 66%), and better for search than no language.
    if not (reliable or percent >= MIN_PERCENT) or code == "un" or len(code) != 2:  # "xx-Qaai": a script
        return None
    return _RENAMED.get(code, code)
