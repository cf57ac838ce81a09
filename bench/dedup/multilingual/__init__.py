"""A multilingual syndication corpus from hand-written wire stories (written for this project).

Each ``<lang>.json`` holds three wire stories in one language (English, German,
French, Spanish, Italian, Portuguese, Russian, Arabic, Chinese, Japanese), two
of them on the same topic but different stories (a follow-up that repeats one
background sentence of the first: they must stay apart), two briefs (under 80
words, or 80 characters in Chinese and Japanese) on one topic that must stay
apart too, the agency's
datelines, headlines outlets give the story, local paragraphs, credit lines,
a teaser and a caption in that language. The bodies mention agencies the way
reporting does ("according to Reuters", "据路透社报道", "ロイター通信によると"):
mentions, not credits, kept by every copy.

``generate`` republishes every story on the wire and at 3-5 fictitious
outlets of its language with the edits those outlets make, drawn from a seeded
generator: a new headline, the dateline kept, changed or dropped, abridgement
to the first sentences, a sentence dropped, paragraphs joined, a local
paragraph on top or at the end, a credit line, a teaser, a caption, and the
spelling the outlet uses; a brief is run whole, under its own headline,
dateline, credit and spelling (ß/ss, ё/е, Arabic alef, yaa, tatweel and harakat,
full-width digits, quote styles).
"""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.dedup.corpus import Corpus, Doc

LANGUAGES = ("en", "de", "fr", "es", "it", "pt", "ru", "ar", "zh", "ja")
HERE = Path(__file__).resolve().parent
T0 = datetime(2025, 12, 5, 6, 0, tzinfo=UTC)

_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s*")
# Languages written without spaces join sentences and paragraphs without one.
_UNSPACED = {"zh", "ja"}
_FULL_WIDTH_DIGITS = str.maketrans("0123456789", "０１２３４５６７８９")
# The spelling an outlet may use instead of the agency's.
_SPELLING: dict[str, list[tuple[str, str]]] = {
    "en": [('"', "\u201c"), ("'", "\u2019"), (" - ", " \u2013 ")],
    "de": [("ß", "ss"), ("„", "«"), ("“", "»")],
    "fr": [("« ", "\u201c"), (" »", "\u201d"), ("'", "\u2019")],
    "es": [("«", '"'), ("»", '"')],
    "it": [("«", "\u201c"), ("»", "\u201d"), ("'", "\u2019")],
    "pt": [("«", "\u201c"), ("»", "\u201d")],
    "ru": [("ё", "е"), ("Ё", "Е"), ("«", "\u201e"), ("»", "\u201c"), (" — ", " - ")],
    "ar": [("أ", "ا"), ("إ", "ا"), ("ى ", "ي "), ("قال", "قـال"), ("مصر", "مِصْر"), ("الحكومة", "الحكومـة")],
    "zh": [],
    "ja": [],
}


def load(lang: str) -> dict[str, Any]:
    """The stories and outlet material of one language."""
    data: dict[str, Any] = json.loads((HERE / f"{lang}.json").read_text(encoding="utf-8"))
    return data


def _sentences(paragraph: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(paragraph) if s]


def _respell(text: str, lang: str) -> str:
    for old, new in _SPELLING[lang]:
        text = text.replace(old, new)
    if lang in _UNSPACED:
        text = text.translate(_FULL_WIDTH_DIGITS)
    return text


class _Outlets:
    def __init__(self, lang: str, rng: random.Random) -> None:
        self.lang = lang
        self.rng = rng
        self.data = load(lang)
        self.sep = "" if lang in _UNSPACED else " "
        self.counter = 0

    def _id(self) -> str:
        self.counter += 1
        return f"{self.lang}-{self.counter:03d}"

    def original(self, story: dict[str, Any], at: datetime) -> Doc:
        paragraphs = list(story["paragraphs"])
        paragraphs[0] = story["datelines"][0] + paragraphs[0]
        return Doc(self._id(), story["titles"][0], "\n\n".join(paragraphs), "wire", at, story["id"], "syndicated")

    def copy(self, story: dict[str, Any], outlet: str, at: datetime, others: list[str]) -> Doc:
        rng, data, sep = self.rng, self.data, self.sep
        brief = story.get("brief", False)
        paragraphs = [_sentences(p) for p in story["paragraphs"]]
        if not brief and rng.random() < 0.4:
            # Abridged by sentences: the first half to four fifths of them.
            total = sum(map(len, paragraphs))
            keep = max(len(paragraphs[0]), round(total * rng.uniform(0.5, 0.8)))
            cut: list[list[str]] = []
            for sentences in paragraphs:
                if keep <= 0:
                    break
                cut.append(sentences[:keep])
                keep -= len(sentences)
            paragraphs = cut
        if not brief and rng.random() < 0.25 and len(paragraphs) > 2:
            i = rng.randrange(1, len(paragraphs))
            if len(paragraphs[i]) > 1:
                del paragraphs[i][rng.randrange(len(paragraphs[i]))]
        texts = [sep.join(sentences) for sentences in paragraphs]
        if rng.random() < 0.3 and len(texts) > 3:
            i = rng.randrange(1, len(texts) - 1)
            texts[i : i + 2] = [texts[i] + sep + texts[i + 1]]
        dateline = rng.choice([*story["datelines"], ""])
        texts[0] = dateline + texts[0]
        where = rng.random()
        if not brief and where < 0.3:
            texts.insert(0, rng.choice(story["local"]))
        elif not brief and where < 0.5:
            texts.append(rng.choice(story["local"]))
        if rng.random() < 0.25:
            texts.insert(1, data["caption"].format(name=rng.choice(data["names"])))
        if rng.random() < 0.25:
            texts.insert(rng.randint(1, len(texts)), data["teaser"].format(title=rng.choice(others)))
        if rng.random() < 0.6:
            texts.append(rng.choice(data["credits"]))
        text = "\n\n".join(texts)
        title = story["titles"][0] if rng.random() < 0.25 else rng.choice(story["titles"][1:])
        if rng.random() < 0.5:
            text, title = _respell(text, self.lang), _respell(title, self.lang)
        return Doc(self._id(), title, text, outlet, at, story["id"], "syndicated")


def generate_language(lang: str, seed: int = 20251205) -> Corpus:
    """The wire copies and outlet copies of one language's stories, labelled by story."""
    rng = random.Random(f"{seed}-{lang}")
    outlets = _Outlets(lang, rng)
    corpus = Corpus()
    stories = outlets.data["stories"]
    for n, story in enumerate(stories):
        at = T0 + timedelta(hours=7 * n)
        corpus.docs.append(outlets.original(story, at))
        others = [s["titles"][0] for s in stories if s is not story]
        for outlet in rng.sample(outlets.data["outlets"], rng.randint(3, 5)):
            at += timedelta(minutes=rng.randint(10, 300))
            corpus.docs.append(outlets.copy(story, outlet, at, others))
    corpus.must_apart = [(a, b, "same topic") for a, b in outlets.data["apart"]]
    return corpus


def generate(seed: int = 20251205, languages: tuple[str, ...] = LANGUAGES) -> Corpus:
    """All languages in one corpus (their documents carry the language in their ids)."""
    corpus = Corpus()
    for lang in languages:
        part = generate_language(lang, seed)
        corpus.docs.extend(part.docs)
        corpus.must_apart.extend(part.must_apart)
    return corpus


def language_of(doc: Doc) -> str:
    """The language of a generated document."""
    return doc.id.split("-", 1)[0]
