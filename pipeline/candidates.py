"""Second opinions on trafilatura's article text, asked only where its text looks wrong.

trafilatura picks one block of the page as the article. Two of its misses can be seen
from the page itself:

* *a body split into parts*: publishers cut long articles into sibling containers of one
  class (between ads or "chunks"), and trafilatura keeps the first part;
* *the wrong block*: its text is far shorter than the page's paragraph text and shares few
  of its words with what jusText (the paragraph classifier trafilatura itself falls back
  on) finds, which is much longer: trafilatura took a side block for the article.

:func:`extract_page` measures the page's paragraph text before trafilatura prunes the
tree, and only when trafilatura's text falls short of it (:data:`SHORT_OF_PARAGRAPHS`)
parses the page again and calls :func:`second_opinion`; every rule and number here was
measured on the development sets (bench/README.md, "Extraction quality").
"""

from __future__ import annotations

import re
from collections import Counter
from functools import cache

import justext
import lxml.etree
import lxml.html
from trafilatura.external import jt_stoplist_init

#: trafilatura's text shorter than this share of the page's paragraph text calls for candidates.
SHORT_OF_PARAGRAPHS = 0.6
#: A part of a split body: a container of the same tag and class as the one holding
#: trafilatura's paragraphs, with at least this much paragraph text of its own.
MIN_PART_CHARS = 200
#: Text in links above this share of a part's text makes it a list of teasers, not a part.
MAX_PART_LINK_SHARE = 0.3

#: jusText is asked only when trafilatura's text is shorter than this share of the paragraph text.
FAR_SHORT_OF_PARAGRAPHS = 0.35
#: jusText's text replaces trafilatura's when it is this many times longer ...
OTHER_LONGER = 2
#: ... and fewer than this share of trafilatura's words are in it (a different block, not more of the same) ...
MAX_SHARED_WORDS = 0.3
#: ... and it has at least this many characters (trafilatura's own minimum for a text).
MIN_OTHER_CHARS = 250

_WORDS = re.compile(r"\w+")
_P_TEXT = lxml.etree.XPath("//p//text()", smart_strings=False)
_PART_BLOCKS = lxml.etree.XPath(".//p | .//h2 | .//h3 | .//blockquote[not(.//p)] | .//li[not(.//p)][not(ancestor::nav)]")


def paragraph_chars(tree: lxml.html.HtmlElement) -> int:
    """The characters of text in the page's ``<p>`` elements: its main text's size, boilerplate included."""
    return sum(len(piece) for piece in _P_TEXT(tree))


def _norm(text: str) -> str:
    return " ".join(text.split())


def split_body(tree: lxml.html.HtmlElement, text: str) -> str | None:
    """trafilatura's text with the other parts of a split body, in page order, or None if none.

    The container of trafilatura's paragraphs is the parent most of them share; the other
    parts are the elements of the same tag and class elsewhere on the page. A part already
    in the text, or mostly link text (a teaser list styled alike), is not added.
    """
    ours = text.split("\n\n")
    known = set(ours)
    holders: dict[lxml.html.HtmlElement, int] = {}
    for p in tree.iter("p"):
        if _norm(p.text_content()) in known and (parent := p.getparent()) is not None:
            holders[parent] = holders.get(parent, 0) + 1
    if not holders:
        return None
    main = max(holders, key=holders.__getitem__)
    css = main.get("class")
    if not css or not isinstance(main.tag, str):
        return None
    siblings = [e for e in tree.iter(main.tag) if e.get("class") == css]
    if len(siblings) < 2:
        return None
    before: list[str] = []
    after: list[str] = []
    seen_main = False
    for part in siblings:
        if part is main:
            seen_main = True
            continue
        if any(a is main or a is part for a in part.iterancestors()) or any(d is main for d in part.iterdescendants()):
            continue  # nested in the main container, or holding it
        blocks = [b for b in (_norm(el.text_content()) for el in _PART_BLOCKS(part)) if b and b not in known]
        size = sum(map(len, blocks))
        if size < MIN_PART_CHARS:
            continue
        links = sum(len(_norm(a.text_content())) for a in part.iter("a"))
        if links > MAX_PART_LINK_SHARE * size:
            continue
        known.update(blocks)
        (after if seen_main else before).extend(blocks)
    if not before and not after:
        return None
    return "\n\n".join(before + ours + after)


def second_opinion(tree: lxml.html.HtmlElement, text: str, paragraph_size: int) -> str:
    """The better of trafilatura's ``text`` and its candidates, on a fresh tree of the page.

    A split body wins whenever one is found. Otherwise, when ``text`` is far short of the
    page's ``paragraph_size``, jusText's text wins if it is much longer and mostly other words.
    """
    if text and (whole := split_body(tree, text)):
        return whole
    if len(text) >= FAR_SHORT_OF_PARAGRAPHS * paragraph_size:
        return text
    other = "\n\n".join(
        _norm(p.text) for p in justext.justext(lxml.html.tostring(tree), _stoplist()) if not p.is_boilerplate and p.text.strip()
    )
    if len(other) >= max(MIN_OTHER_CHARS, OTHER_LONGER * len(text)) and shared_words(text, other) < MAX_SHARED_WORDS:
        return other
    return text


def shared_words(text: str, other: str) -> float:
    """The share of ``text``'s words (with repeats) that ``other`` also has."""
    ours = Counter(_WORDS.findall(text.lower()))
    total = sum(ours.values())
    if not total:
        return 0.0
    return sum((ours & Counter(_WORDS.findall(other.lower()))).values()) / total


@cache
def _stoplist() -> frozenset[str]:
    """Every language's stop words, as trafilatura's own fallback uses them: the page's language is not known yet."""
    return frozenset(jt_stoplist_init())
