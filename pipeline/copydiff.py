"""What one outlet changed in its copy of a story: headline, paragraphs added and cut, copy-edits.

Outlets republish agency copy with a new headline, a local paragraph on top, the ending
trimmed, a word or a figure changed. ``compare`` lines a copy's paragraphs up with a base
copy's (difflib over paragraphs), pairs the paragraphs that changed only a little, and diffs
those word by word; ``base_copy`` picks the copy to compare the others with.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import lru_cache
from typing import Literal

# Two paragraphs this alike (difflib ratio over their words) are one paragraph, edited.
EDITED_MIN_RATIO = 0.5
SIGN_OFF_WORDS = 4  # a shorter paragraph is a sign-off or credit line, not story text
COMPARED_CACHE = 1024  # copies whose comparison is remembered (a story page compares up to 50)
KEY_CACHE = 20_000  # paragraphs whose key and words are remembered: every copy is compared with the same base
_QUOTES = (("\u2018", "'"), ("\u2019", "'"), ("\u201c", '"'), ("\u201d", '"'), ("\u2013", "-"), ("\u2014", "-"))


@dataclass(frozen=True, slots=True)
class WordChange:
    kind: Literal["same", "removed", "added"]
    text: str  # words joined by single spaces


@dataclass(frozen=True, slots=True)
class ParagraphChange:
    """One paragraph of the comparison; ``words`` is set for an edited one."""

    kind: Literal["same", "added", "cut", "edited"]
    text: str  # the copy's paragraph; for a cut one, the base's
    words: tuple[WordChange, ...] = ()


@dataclass(frozen=True, slots=True)
class CopyChanges:
    """A copy against the base copy, paragraph by paragraph, in reading order."""

    headline: str | None  # the copy's headline when it differs from the base's
    paragraphs: tuple[ParagraphChange, ...]

    def count(self, kind: Literal["same", "added", "cut", "edited"]) -> int:
        return sum(1 for p in self.paragraphs if p.kind == kind)

    @property
    def unchanged(self) -> bool:
        return self.headline is None and all(p.kind == "same" for p in self.paragraphs)

    @property
    def local_intro(self) -> int:
        """Paragraphs added before the first one the base has too (a local intro)."""
        shared = self._shared()
        return sum(1 for p in self.paragraphs[: shared[0]] if p.kind == "added") if shared else 0

    @property
    def trimmed_ending(self) -> int:
        """Paragraphs of the base cut after the copy's last shared one (a trimmed ending), sign-off lines aside."""
        shared = self._shared()
        cut = [p for p in self.paragraphs[shared[-1] + 1 :] if p.kind == "cut"] if shared else []
        return sum(1 for p in cut if len(p.text.split()) >= SIGN_OFF_WORDS)

    def _shared(self) -> list[int]:
        # A sign-off line ("Reuters", "(AP)") kept under a trimmed ending does not end the trimmed part.
        return [n for n, p in enumerate(self.paragraphs)
                if p.kind in ("same", "edited") and len(p.text.split()) >= SIGN_OFF_WORDS]


def paragraphs(text: str) -> list[str]:
    """The paragraphs of an extracted text (one a line), whitespace collapsed, empty ones dropped."""
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


@lru_cache(maxsize=COMPARED_CACHE)
def compare(base_title: str, base_text: str, title: str, text: str) -> CopyChanges:
    """What the copy (``title``, ``text``) changed against the base copy (remembered: a story page is read often)."""
    base, copy = paragraphs(base_text), paragraphs(text)
    matcher = SequenceMatcher(None, [_key(p) for p in base], [_key(p) for p in copy], autojunk=False)
    changes: list[ParagraphChange] = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            changes.extend(ParagraphChange("same", p) for p in copy[j1:j2])
        else:
            changes.extend(_pair(base[i1:i2], copy[j1:j2]))
    headline = None if _key(title) == _key(base_title) else title
    return CopyChanges(headline, tuple(changes))


def base_copy(texts: Mapping[str, str]) -> str:
    """The key of the copy whose paragraphs the other copies share most: the text as most outlets ran it.

    Each paragraph counts the other copies that ran it, and one no other copy ran counts
    against it: the longest copy (a story's representative text) is often the one with
    a local paragraph added, and comparing with the most shared copy shows that paragraph
    as that outlet's addition. On a tie, the first key in ``texts``.
    """
    keys = {name: {_key(p) for p in paragraphs(text)} for name, text in texts.items()}
    runs = Counter(k for ks in keys.values() for k in ks)

    def score(name: str) -> int:  # paragraphs others ran too, less those only this copy has
        return sum(runs[k] - 1 if runs[k] > 1 else -1 for k in keys[name])

    return max(keys, key=score)


def _pair(base: list[str], copy: list[str]) -> list[ParagraphChange]:
    """Paragraphs of a changed run, in order: each copy paragraph edited from the next alike base one, or added."""
    out: list[ParagraphChange] = []
    next_base = 0
    base_words = [_words(p) for p in base]
    for paragraph in copy:
        words = _words(paragraph)
        match = next(
            (i for i in range(next_base, len(base)) if _similarity(base_words[i], words) >= EDITED_MIN_RATIO), None
        )
        if match is None:
            out.append(ParagraphChange("added", paragraph))
            continue
        out.extend(ParagraphChange("cut", p) for p in base[next_base:match])
        out.append(ParagraphChange("edited", paragraph, _word_changes(base[match], paragraph)))
        next_base = match + 1
    out.extend(ParagraphChange("cut", p) for p in base[next_base:])
    return out


def _word_changes(before: str, after: str) -> tuple[WordChange, ...]:
    old, new = before.split(), after.split()
    matcher = SequenceMatcher(None, _plain(before).split(), _plain(after).split(), autojunk=False)
    out: list[WordChange] = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            out.append(WordChange("same", " ".join(new[j1:j2])))
            continue
        if i2 > i1:
            out.append(WordChange("removed", " ".join(old[i1:i2])))
        if j2 > j1:
            out.append(WordChange("added", " ".join(new[j1:j2])))
    return tuple(out)


@lru_cache(maxsize=KEY_CACHE)
def _words(paragraph: str) -> tuple[list[str], Counter[str]]:
    """A paragraph's words as ``_key`` has them, and how often each stands in it (shared: never changed)."""
    words = _key(paragraph).split()
    return words, Counter(words)


def _similarity(a: tuple[list[str], Counter[str]], b: tuple[list[str], Counter[str]]) -> float:
    (words_a, counts_a), (words_b, counts_b) = a, b
    # Their lengths, then the words both share, bound difflib's ratio from above: most
    # unlike pairs stop here, cheaply.
    if 2 * min(len(words_a), len(words_b)) < EDITED_MIN_RATIO * (len(words_a) + len(words_b)):
        return 0.0
    shared = sum((counts_a & counts_b).values())
    if 2 * shared < EDITED_MIN_RATIO * (len(words_a) + len(words_b)):
        return 0.0
    return SequenceMatcher(None, words_a, words_b, autojunk=False).ratio()


@lru_cache(maxsize=KEY_CACHE)
def _key(paragraph: str) -> str:
    """What two paragraphs must share to be the same: case, curly quotes and spacing aside."""
    return " ".join(_plain(paragraph).casefold().split())


def _plain(text: str) -> str:
    """Curly quotes and dashes as straight ones (str.replace: far faster than str.translate here)."""
    for curly, straight in _QUOTES:
        text = text.replace(curly, straight)
    return text

