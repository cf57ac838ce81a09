"""Text analysis shared by both search backends: the terms a story is indexed and queried by.

Both backends index the terms made here (SQLite FTS5 splits them on spaces; Elasticsearch
with its ``whitespace`` analyzer) and both search for the terms `query_terms` makes, so
they match the same stories on any cluster, core node or not.

A text becomes terms in three steps:

1. Tokens by Unicode script. Scripts written without spaces between words (Han, Hiragana,
   Katakana, Hangul, Thai, Lao, Khmer, Myanmar) give overlapping pairs of characters
   ("码头工人" gives 码头 头工 工人; a lone character stays itself), as Elasticsearch's
   ``cjk_bigram`` filter does; every other script gives runs of letters, marks and digits.
2. Case folding: lowercase, and Latin letters lose their diacritics ("Zürich" is "zurich"),
   before stemming, so a query typed without accents finds the accented word.
3. Stemming with the Snowball algorithm of the story's language (ISO 639-1 code, see
   `STEMMERS`), from PyStemmer: "Streiks" and "streikten" are "streik" in a German story.
   A language without a Snowball stemmer (Chinese, Japanese, Korean...) or no language
   at all leaves words as they are.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Callable, Iterable
from functools import cache, lru_cache

import Stemmer

# ISO 639-1 code -> Snowball algorithm (every one PyStemmer 3 ships with a two-letter code).
STEMMERS: dict[str, str] = {
    "ar": "arabic", "ca": "catalan", "cs": "czech", "da": "danish", "de": "german", "el": "greek",
    "en": "english", "eo": "esperanto", "es": "spanish", "et": "estonian", "eu": "basque",
    "fa": "persian", "fi": "finnish", "fr": "french", "ga": "irish", "hi": "hindi", "hu": "hungarian",
    "hy": "armenian", "id": "indonesian", "it": "italian", "lt": "lithuanian", "ne": "nepali",
    "nl": "dutch", "no": "norwegian", "nb": "norwegian", "nn": "norwegian", "pl": "polish",
    "pt": "portuguese", "ro": "romanian", "ru": "russian", "sr": "serbian", "st": "sesotho",
    "sv": "swedish", "ta": "tamil", "tr": "turkish", "yi": "yiddish",
}

# Scripts indexed by pairs of characters: those written without spaces between words (Han,
# Hiragana, Katakana, Bopomofo, Thai, Lao, Myanmar, Khmer, with their compatibility and
# supplementary blocks) and Hangul, whose words carry their particles ("노동자들은"), as
# Elasticsearch's cjk_bigram filter does. Not ideographic punctuation (、。「」), which separates.
_UNSPACED = (
    "\u0e00-\u0eff\u1000-\u109f\u1100-\u11ff\u1780-\u17ff\u3005\u3040-\u30ff\u3100-\u312f\u3130-\u318f"
    "\u31a0-\u31bf\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7ff\uf900-\ufaff"
    "\uff66-\uff9f\U00020000-\U0003134f"
)
_ASCII_NOT_ALNUM = bytes(c for c in range(128) if not chr(c).isalnum())
# For ASCII text, the tokens are the runs left after every other byte becomes a space;
# translating and splitting does in C what a regular expression does at a third of the speed.
_ASCII_SEPARATORS = bytes.maketrans(_ASCII_NOT_ALNUM, b" " * len(_ASCII_NOT_ALNUM))


def analyze(text: str, language: str | None) -> list[str]:
    """The terms of a text in the given language, in order, as both backends index them."""
    stem = _stemmer(language)
    if text.isascii():
        words = text.lower().encode("ascii").translate(_ASCII_SEPARATORS).decode("ascii").split()
        return words if stem is None else list(map(stem, words))
    terms: list[str] = []
    for word, unspaced in _tokens(text):
        if unspaced:
            terms.extend(_bigrams(word))
        else:
            terms.append(word if stem is None else stem(word))
    return terms


def indexed_terms(text: str, language: str | None) -> str:
    """The terms of a text as both backends store them: separated by spaces."""
    return " ".join(analyze(text, language))


def query_terms(text: str, languages: Iterable[str | None]) -> list[list[str]]:
    """What a query must match: for each of its terms, the forms any of which will do.

    A query has no language of its own, so each word is analysed as every language it
    may be searched in (the ``--language`` filter's, else every language the index holds)
    and also left unstemmed, which is how a story without a known language holds it:
    "Streiks" finds German stories by "streik" and others by "streiks".
    """
    analyses = [analyze(text, language) for language in sorted({*languages, None}, key=str)]
    return [sorted(set(forms)) for forms in zip(*analyses, strict=True)]


def highlighted_spans(
    text: str, language: str | None, terms: set[str], window: int | None = None
) -> list[tuple[int, int]]:
    """Where in ``text`` the words whose terms are among ``terms`` stand, as (start, end) offsets.

    With ``window``, only those starting at most ``window`` characters after the first
    one's start: what a snippet shows, without reading the rest of a long text.
    """
    stem = _stemmer(language) or str
    spans: list[tuple[int, int]] = []
    for match in _token_pattern(text).finditer(text):
        if window is not None and spans and match.start() > spans[0][0] + window:
            break
        word = _fold(match.group())
        if match.group(1) is not None:
            # A pair of characters matched: highlight both of its characters.
            for i, pair in enumerate(_bigrams(word)):
                if pair in terms:
                    start = match.start() + i
                    end = start + len(pair)
                    if spans and spans[-1][1] >= start:
                        spans[-1] = (spans[-1][0], end)
                    else:
                        spans.append((start, end))
        elif stem(word) in terms:
            spans.append(match.span())
    return spans


def stemmed_prefixes(text: str, languages: Iterable[str | None]) -> list[str]:
    """The terms of a query that its stemmers shortened, for highlighting words that start with them."""
    words = [word for word, unspaced in _tokens(text) if not unspaced]
    stemmers = [stem for language in {*languages} if (stem := _stemmer(language)) is not None]
    return sorted({term for stem in stemmers for word in words if (term := stem(word)) != word and len(term) >= 3})


def _tokens(text: str) -> list[tuple[str, bool]]:
    """The folded tokens of a text, each with whether it is a run of an unspaced script."""
    folded = _fold(text)
    return [(run, True) if run else (word, False) for run, word in _token_pattern(folded).findall(folded)]


def _bigrams(run: str) -> list[str]:
    if len(run) < 2:
        return [run]
    return [run[i : i + 2] for i in range(len(run) - 1)]


_WORDS = re.compile(rf"([{_UNSPACED}]+)|([^\W_{_UNSPACED}]+)")


def _token_pattern(text: str) -> re.Pattern[str]:
    """A run of unspaced-script characters (group 1), or a word of letters, marks and digits (group 2)."""
    # Marks (vowel signs of Indic scripts, Arabic vowel points) belong to their word, but
    # Python's \w has none, and a class of every mark is slow to match: only a text with a
    # mark (folding took those of Latin letters away) needs it.
    if any(unicodedata.category(c)[0] == "M" for c in set(text)):
        return _words_with_marks()
    return _WORDS


@cache
def _words_with_marks() -> re.Pattern[str]:
    marks = "".join(_ranges(cp for cp in range(0x300, 0x20000) if unicodedata.category(chr(cp))[0] == "M"))
    return re.compile(rf"([{_UNSPACED}]+)|((?:[^\W_{_UNSPACED}]|[{marks}])+)")


def _ranges(codepoints: Iterable[int]) -> Iterable[str]:
    start = previous = -2
    for cp in codepoints:
        if cp != previous + 1:
            if start >= 0:
                yield f"{re.escape(chr(start))}-{re.escape(chr(previous))}"
            start = cp
        previous = cp
    if start >= 0:
        yield f"{re.escape(chr(start))}-{re.escape(chr(previous))}"


def _fold(text: str) -> str:
    """Lowercase, without the diacritics of Latin letters ("Zürich" is "zurich", "Straße" stays)."""
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFD", text)
    if not any(map(unicodedata.combining, set(decomposed))):  # typographic quotes and dashes only
        return unicodedata.normalize("NFC", decomposed).lower()
    kept: list[str] = []
    base = ""
    for c in decomposed:
        if unicodedata.combining(c):
            if _latin(base):
                continue
        else:
            base = c
        kept.append(c)
    return unicodedata.normalize("NFC", "".join(kept)).lower()


def _latin(c: str) -> bool:
    return bool(c) and (ord(c) < 0x250 or 0x1E00 <= ord(c) <= 0x1EFF)


_local = threading.local()  # a Stemmer keeps state while it stems: one per thread
STEM_CACHE = 200_000  # words per language and thread; news vocabulary repeats, most words are stemmed once


def _stemmer(language: str | None) -> Callable[[str], str] | None:
    """The stem of a word in the language (Snowball), or None for a language without a stemmer."""
    algorithm = STEMMERS.get(language or "")
    if algorithm is None:
        return None
    stemmers: dict[str, Callable[[str], str]] | None = getattr(_local, "stemmers", None)
    if stemmers is None:
        stemmers = _local.stemmers = {}
    found = stemmers.get(algorithm)
    if found is None:
        # Our cache in front of PyStemmer's own (off): an lru_cache hit costs a fifth of its.
        found = stemmers[algorithm] = lru_cache(maxsize=STEM_CACHE)(Stemmer.Stemmer(algorithm, 0).stemWord)
    return found
