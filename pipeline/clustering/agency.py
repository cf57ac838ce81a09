"""Which wire agency an article credits: AP, AFP, Reuters, dpa, or "agencies".

The stories stage labels a merged story with the agency its copies credit. We
look for credits, not mentions: a dateline "(Reuters)", "AFP reported", "told
The Associated Press", "(AP Photo/...)", "(With inputs from agencies)". A bare
"AP" elsewhere (Andhra Pradesh, an AP exam) is not a credit.
"""

from __future__ import annotations

import logging
import re

from pipeline.clustering.normalize import fold

logger = logging.getLogger(__name__)

_NAMES: dict[str, str] = {
    "AP": r"(?:AP|The\s+Associated\s+Press|Associated\s+Press)",
    "AFP": r"(?:AFP|Agence\s+France[- ]Presse)",
    "Reuters": r"(?:Reuters|REUTERS|Thomson\s+Reuters)",
    "dpa": r"(?:dpa|DPA|Deutsche\s+Presse-Agentur)",
}

_VERBS = r"(?:reported|reports|said|says|wrote|writes|contributed|learned|learnt|quoted|cited)"


# Names that are credits wherever they appear (unambiguous long forms).
_LONG: dict[str, str] = {
    "AP": r"Associated\s+Press",
    "AFP": r"Agence\s+France[- ]Presse",
    "Reuters": r"Reuters",
    "dpa": r"Deutsche\s+Presse-Agentur",
}


def _credit_patterns(name: str) -> list[re.Pattern[str]]:
    alt = _NAMES[name]
    return [
        re.compile(r"\(\s*" + alt + r"\s*\)"),  # dateline "(Reuters) -"
        re.compile(r"\b" + alt + r"\s+" + _VERBS + r"\b"),  # "AFP reported"
        re.compile(r"\b(?:told|according\s+to|via|by|from|to)\s+(?:the\s+)?" + alt + r"\b"),  # "told AFP"
        re.compile(r"\(\s*" + alt + r"\s+Photo\b|\b" + alt + r"\s+Photo\s*/|/\s*" + alt + r"\s*\)?\s*$", re.M),
        re.compile(r"^[\s(\-]*" + alt + r"[\s).]*$", re.M),  # a credit line on its own
        re.compile(r"\b" + _LONG[name] + r"\b"),
    ]


_PATTERNS: dict[str, list[re.Pattern[str]]] = {name: _credit_patterns(name) for name in _NAMES}
# Every credit pattern contains the agency's name, so a text without the name skips its six
# patterns: most articles name no agency at all, which makes detection several times faster.
_MENTIONS: dict[str, re.Pattern[str]] = {name: re.compile(alt) for name, alt in _NAMES.items()}
_AGENCIES = re.compile(
    r"\b(?:with\s+(?:inputs?|reporting|agency\s+inputs?)\s+from\s+(?:news\s+)?agencies"
    r"|agencies\s+contributed|(?:source|sources|inputs?)\s*:\s*agencies|agency\s+inputs)\b"
    r"|^[\s(\-]*agencies[\s).]*$",
    re.IGNORECASE | re.MULTILINE,
)


def detect_agency(text: str) -> str | None:
    """The wire agency an article credits, or None.

    Args:
        text: the article's text (title and body, as displayed).

    Returns:
        "AP", "AFP", "Reuters" or "dpa" for the credit that appears first;
        "agencies" when the text credits unnamed agencies only; None otherwise.
    """
    folded = fold(text)
    best: tuple[int, str] | None = None
    for name, patterns in _PATTERNS.items():
        if _MENTIONS[name].search(folded) is None:
            continue
        for pattern in patterns:
            match = pattern.search(folded)
            if match is not None and (best is None or match.start() < best[0]):
                best = (match.start(), name)
    if best is not None:
        return best[1]
    if "agenc" in folded.lower() and _AGENCIES.search(folded):
        return "agencies"
    return None
