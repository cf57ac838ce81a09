"""Second opinions on trafilatura's article text, asked only where its text looks wrong.

trafilatura picks one block of the page as the article. Two of its misses can be seen
from the page itself:

* *a body split into parts*: publishers cut long articles into sibling containers of one
  class (between ads or "chunks"), and trafilatura keeps the first part;
* *too little text*: its text is short against the text of the page's paragraphs.

:func:`extract_page` measures the page's paragraph text before trafilatura prunes the
tree, and only when trafilatura's text falls short of it (:data:`SHORT_OF_PARAGRAPHS`)
parses the page again for these candidates; every rule here was measured on the
development sets (bench/README.md, "Extraction quality").
"""

from __future__ import annotations

import lxml.etree
import lxml.html

#: trafilatura's text shorter than this share of the page's paragraph text calls for candidates.
SHORT_OF_PARAGRAPHS = 0.6
#: A part of a split body: a container of the same tag and class as the one holding
#: trafilatura's paragraphs, with at least this much paragraph text of its own.
MIN_PART_CHARS = 200
#: Text in links above this share of a part's text makes it a list of teasers, not a part.
MAX_PART_LINK_SHARE = 0.3

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
