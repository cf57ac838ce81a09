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
parses the page again and calls :func:`second_opinion`.

What the page states about its article is read before trafilatura too: the JSON-LD
``articleBody`` (:func:`stated_body`) marks where the article ends, or that trafilatura
took another block (:func:`by_stated_body`); a news page's standfirst
(:func:`standfirst`) is added when trafilatura left it out. Every rule and number here
was measured on the development sets (bench/README.md, "Extraction quality").
"""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from functools import cache

import justext
import lxml.etree
import lxml.html
from trafilatura.external import jt_stoplist_init

from pipeline.agency import detect_credit

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

#: A meta description shorter than this many words is a label, not a standfirst.
MIN_STANDFIRST_WORDS = 8

#: A JSON-LD articleBody shorter than this is a teaser, not the article ...
MIN_STATED_BODY_CHARS = 500
#: ... and one with fewer words than this share of trafilatura's text is only part of it.
MIN_STATED_BODY_SHARE = 0.5
#: trafilatura's text with fewer than this share of the articleBody's words is another block.
MIN_STATED_BODY_KEPT = 0.3
#: A block of trafilatura's text with at least this many words, at least half of them in the
#: articleBody, is article; the blocks after the last such block are not.
MIN_BODY_BLOCK_WORDS = 5

_WORDS = re.compile(r"\w+")
_JSON_LD = lxml.etree.XPath("//script[@type='application/ld+json']/text()", smart_strings=False)
# schema.org's NewsArticle and its subtypes (ReportageNewsArticle, OpinionNewsArticle, ...).
_NEWS_TYPE = re.compile(r'"@type"\s*:\s*(?:\[[^\]]*)?"\w*NewsArticle"')
_DESCRIPTIONS = lxml.etree.XPath("//meta[@name='description' or @property='og:description']/@content", smart_strings=False)
_BODY_TEXT_WITH = lxml.etree.XPath("//body//text()[contains(., $start)]")
_NOT_SHOWN = frozenset({"script", "style", "template", "textarea"})
_P_TEXT = lxml.etree.XPath("//p//text()", smart_strings=False)
_PART_BLOCKS = lxml.etree.XPath(".//p | .//h2 | .//h3 | .//blockquote[not(.//p)] | .//li[not(.//p)][not(ancestor::nav)]")


def paragraph_chars(tree: lxml.html.HtmlElement) -> int:
    """The characters of text in the page's ``<p>`` elements: its main text's size, boilerplate included."""
    return sum(len(piece) for piece in _P_TEXT(tree))


def json_ld(tree: lxml.html.HtmlElement) -> list[str]:
    """The page's JSON-LD scripts, unparsed (read before trafilatura, which drops scripts)."""
    return [str(script) for script in _JSON_LD(tree)]


def stated_body(scripts: list[str]) -> str | None:
    """The article text the page's JSON-LD states (the longest ``articleBody``, also in ``@graph``), if long enough."""
    found = ""
    for script in scripts:
        if "articleBody" not in script:
            continue
        try:
            data = json.loads(script)
        except ValueError:
            continue
        stack = [data]
        while stack:
            item = stack.pop()
            if isinstance(item, list):
                stack.extend(item)
            elif isinstance(item, dict):
                if isinstance(body := item.get("articleBody"), str) and len(body) > len(found):
                    found = body
                stack.extend(item[key] for key in ("@graph", "mainEntity") if key in item)
    found = html.unescape(found)  # some publishers escape it twice
    return found if len(found) >= MIN_STATED_BODY_CHARS else None


def by_stated_body(text: str, body: str | None) -> str:
    """``text`` checked against the page's JSON-LD ``body``: replaced by it when ``text`` is another
    block, else without the blocks after the last one the articleBody holds.

    When trafilatura's text has few of the words of the article the publisher states, it
    took another block. What trafilatura adds after the article (related stories, author
    boxes, the next article of an endless page) is not in the articleBody; the headings
    and standfirst before it are left alone, and so is an agency's sign-off after it.
    """
    if not body:
        return text
    if shared_words(body, text) < MIN_STATED_BODY_KEPT:
        return "\n\n".join(_norm(line) for line in body.splitlines() if line.strip())
    known = Counter(_WORDS.findall(body.lower()))
    if known.total() < MIN_STATED_BODY_SHARE * len(_WORDS.findall(text.lower())):
        return text
    blocks = text.split("\n\n")
    last = None
    for number, block in enumerate(blocks):
        words = _WORDS.findall(block.lower())
        if len(words) >= MIN_BODY_BLOCK_WORDS and 2 * (Counter(words) & known).total() >= len(words):
            last = number
    if last is None:
        return text
    # A wire agency's sign-off is not in the articleBody either, but it credits the agency.
    return "\n\n".join(blocks[: last + 1] + [block for block in blocks[last + 1 :] if detect_credit(block)])


def standfirst(tree: lxml.html.HtmlElement, scripts: list[str]) -> str | None:
    """A news page's standfirst: its meta description, when an element of the page shows it as its whole text.

    trafilatura leaves out the summary news pages show between headline and body
    (Fundus's bodies begin with it); a description the page does not show (a site's
    slogan, an SEO text) is not one. Only pages whose JSON-LD says they are news articles
    have one: the excerpts blogs and guides show are not counted as their text (WCXB).
    """
    if not any(_NEWS_TYPE.search(script) for script in scripts):
        return None
    for value in _DESCRIPTIONS(tree):
        summary = _norm(str(value))
        wanted = _WORDS.findall(summary.lower())
        if len(wanted) < MIN_STANDFIRST_WORDS:
            continue
        for node in _BODY_TEXT_WITH(tree, start=" ".join(summary.split()[:3])):
            element = node.getparent()
            if element is not None and node.is_tail:
                element = element.getparent()
            while element is not None and element.tag not in _NOT_SHOWN:
                words = _WORDS.findall(element.text_content().lower())
                if words == wanted:
                    return summary
                if len(words) > len(wanted):
                    break
                element = element.getparent()
    return None


def with_standfirst(text: str, summary: str | None) -> str:
    """``text`` led by the page's standfirst, unless trafilatura already has it."""
    # Its first words in the text are enough: trafilatura kept it, perhaps reworded at the end.
    if not text or not summary or " ".join(_WORDS.findall(summary.lower()))[:60] in " ".join(_WORDS.findall(text.lower())):
        return text
    return f"{summary}\n\n{text}"


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
