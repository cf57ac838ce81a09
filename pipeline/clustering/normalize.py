"""Text normalisation for matching, kept apart from the text we display and index.

Syndicated copies of one agency story differ in ways a reader ignores: a dateline
("KYIV, Sept 30 (Reuters) -"), credit lines ("(With inputs from agencies)"),
photo captions, "Also read:" teasers, copyright footers, curly or straight quotes,
accents, case, paragraph breaks and "said" versus "says". None of that may count
as a difference when we compare two texts, so it is removed or folded here
before shingling. The result is a list of word tokens; nothing here is ever
shown to a user.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass

logger = logging.getLogger(__name__)

# Agencies whose names appear in datelines and credit lines. Kept broad on
# purpose: a credit to a national agency is as much noise for matching as one
# to Reuters.
_AGENCY = (
    r"(?:AP|A\.P\.|Associated\s+Press|AFP|Agence\s+France[- ]Presse|Reuters|dpa|DPA|"
    r"agencies|Agencies|IANS|PTI|ANI|ANSA|EFE|Xinhua|Kyodo|Yonhap|UPI|Bloomberg|TASS|"
    r"Interfax|Ukrinform|AAP|CP|KNA|epd|APA|Belga|Lusa|NTB|TT|RIA(?:\s+Novosti)?)"
)

_QUOTES = str.maketrans(
    {
        "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
        "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
        "\u00ab": '"', "\u00bb": '"', "\u2039": "'", "\u203a": "'",
        "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-",
        "\u2015": "-", "\u2212": "-",
        "\u00a0": " ", "\u2007": " ", "\u202f": " ",
        "\u00ad": None, "\u200b": None, "\u200c": None, "\u200d": None, "\ufeff": None,
    }
)

# A dateline opens a paragraph: a place in capitals or title case, an optional
# date, the agency in parentheses and a dash. Requiring the parenthesised agency
# keeps ordinary sentences that start with a capitalised place intact.
_DATELINE_AGENCY = re.compile(
    r"^\s*(?:[A-Z][\w.'/-]*(?:[ ,]+[A-Z][\w.'/-]*){0,4}\s*,?\s*"
    r"(?:[\w.]+\.?\s+\d{1,2}|\d{1,2}\.?\s+[\w.]+|\d{1,2}/\d{1,2})?\s*)?"
    r"\(\s*" + _AGENCY + r"\s*\)\s*[-:|]*\s*"
)
# All-caps place + date + dash without an agency ("KYIV, Sept 30 -").
_DATELINE_CAPS = re.compile(
    r"^\s*[A-Z]{3,}(?:[ -][A-Z]{2,}){0,3}\s*,\s*(?:[A-Z][a-z]{2,9}\.?\s+\d{1,2}|\d{1,2}\.?\s+[A-Z][a-z]{2,9})\s*[-:]+\s+"
)
# Punctuation around it disappears with tokenisation, so only the words go.
_INLINE_CREDIT = re.compile(
    r"\b" + _AGENCY + r"\s+(?:reported|reports|said|says|wrote|added)\b\.?"
    r"|\(\s*" + _AGENCY + r"\s*\)"
)

# A cheap test for the agency names before the costly credit pattern.
_MAYBE_CREDIT = re.compile(r"\b(?:AP|A\.P|AFP|Reuters|dpa|DPA|agencies|Agencies|IANS|PTI|ANI|ANSA|EFE|Xinhua|Kyodo|"
                           r"Yonhap|UPI|Bloomberg|TASS|Interfax|Ukrinform|AAP|CP|KNA|epd|APA|Belga|Lusa|NTB|TT|RIA|"
                           r"Associated|Agence)\b")

# Whole lines that are never part of the story itself.
_DROP_LINE = re.compile(
    r"""^(?:
        \(?\s*with\s+(?:inputs?|reporting|additional\s+reporting|agency\s+inputs?)\s+from\b.*
      | \(?\s*(?:additional\s+)?(?:reporting|writing|editing|compiled|translated|edited)\s+by\b.*
      | (?:also\s+read|read\s+also|read\s+more|more\s+on\s+this|related(?:\s+stories?)?|see\s+also|watch|
           recommended|don't\s+miss|must\s+read|latest|trending)\s*[:|>-].*
      | (?:photo|image|picture|file\s+photo|caption|credit|video|graphic)s?\s*(?:[:|/]|by\b).*
      | (?:follow\s+us|sign\s+up|subscribe|click\s+here|download\s+(?:the|our)\s+app|share\s+this|
           get\s+the\s+latest|join\s+our|advertisement).*
      | [-(\s\u2013\u2014]*""" + _AGENCY + r"""(?:\s+(?:reported|reports|contributed\s+to\s+this\s+report))?[)\s.]*
    )$""",
    re.IGNORECASE | re.VERBOSE,
)
# A caption: a short line credited to a photographer or agency at its end.
_CAPTION_TAIL = re.compile(
    r"(?:\((?:AP|AFP|Reuters|dpa|EPA|Getty)?\s*Photo[^)]*\)|[/|]\s*(?:AFP|AP|Reuters|dpa|EPA|Getty\s+Images|"
    r"Shutterstock|Bloomberg|Xinhua|Anadolu)[^.]{0,40})\s*\.?$",
    re.IGNORECASE,
)
_CAPTION_MAX_WORDS = 30
_BOILERPLATE_MAX_WORDS = 45
_FOOTER_MARKERS = ("\u00a9", "copyright", "all rights reserved", "may not be published, broadcast")

_WORD = re.compile(r"\w+")
_PER_CENT = re.compile(r"\bper\s+cent\b")
_COMBINING = re.compile(r"[\u0300-\u036f]")

# Light copy edits fold to one form: outlets switch "said" to "says" or
# "told" to "tells" when they rewrite tense; a difference of tense is not a
# different story.
_CANONICAL = {
    "said": "say", "says": "say", "saying": "say",
    "told": "tell", "tells": "tell", "telling": "tell",
    "added": "add", "adds": "add", "adding": "add",
    "stated": "state", "states": "state",
    "reported": "report", "reports": "report",
    "noted": "note", "notes": "note",
    "explained": "explain", "explains": "explain",
    "warned": "warn", "warns": "warn",
    "announced": "announce", "announces": "announce",
    "percent": "pct",
}


@dataclass(frozen=True, slots=True)
class MatchText:
    """What we compare: folded word tokens of the title and of the body."""

    title: tuple[str, ...]
    body: tuple[str, ...]


def fold(text: str) -> str:
    """Unicode-normalise, straighten quotes and dashes, drop accents and invisible characters."""
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    # Accents are inconsistent between outlets (and lost by some CMSes);
    # decompose and drop the combining marks only.
    decomposed = unicodedata.normalize("NFD", text)
    if decomposed != text:
        text = unicodedata.normalize("NFC", _COMBINING.sub("", decomposed))
    return text


def is_boilerplate_line(line: str) -> bool:
    """Whether a line is a credit, caption, teaser or footer rather than story text."""
    stripped = line.strip()
    if not stripped:
        return True
    words = stripped.count(" ") + 1
    # Credits, captions and footers are short; a long paragraph is story text,
    # and skipping the patterns for it is most of normalisation's speed.
    if words > _BOILERPLATE_MAX_WORDS:
        return False
    lowered = stripped.casefold()
    if any(marker in lowered for marker in _FOOTER_MARKERS):
        return True
    if _DROP_LINE.match(stripped):
        return True
    # Only the end of a line can carry a caption credit; searching 80
    # characters instead of the whole line keeps this cheap.
    return words <= _CAPTION_MAX_WORDS and bool(_CAPTION_TAIL.search(stripped[-80:]))


def strip_dateline(line: str) -> str:
    """Remove a leading dateline ("KYIV, Sept 30 (Reuters) -") from a paragraph."""
    stripped = _DATELINE_AGENCY.sub("", line, count=1)
    if stripped is line or stripped == line:
        stripped = _DATELINE_CAPS.sub("", line, count=1)
    return stripped


def story_lines(text: str) -> list[str]:
    """The story's own paragraphs: folded, without credits, captions, teasers or datelines."""
    lines: list[str] = []
    for raw in fold(text).splitlines():
        line = raw.strip()
        if is_boilerplate_line(line):
            continue
        if "(" in line[:100] or "-" in line[:100]:
            line = strip_dateline(line)
        if _MAYBE_CREDIT.search(line):
            line = _INLINE_CREDIT.sub(" ", line).strip()
        if line:
            lines.append(line)
    return lines


def canonical(word: str) -> str:
    """The form a token is compared in ("says" -> "say")."""
    return _CANONICAL.get(word, word)


def tokens(text: str) -> list[str]:
    """Lower-case word tokens; pass them through ``canonical`` before comparing."""
    text = text.casefold()
    if "per cent" in text:
        # "per cent" and "percent" are house style, not content.
        text = _PER_CENT.sub("percent", text)
    return _WORD.findall(text)


def normalize(title: str, text: str) -> MatchText:
    """Turn an article into the tokens we shingle.

    Paragraph breaks disappear here (the body is one token stream), so an
    outlet that re-wraps paragraphs produces the same tokens.
    """
    body = tokens(" ".join(story_lines(text)))
    head = tokens(strip_dateline(fold(title)))
    return MatchText(title=tuple(head), body=tuple(body))
