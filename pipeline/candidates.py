"""Second opinions on trafilatura's article text, asked only where its text looks wrong.

trafilatura picks one block of the page as the article. Two of its misses can be seen
from the page itself:

* *a body split into parts*: publishers cut long articles into sibling containers of one
  class (between ads or "chunks"), and trafilatura keeps the first part;
* *the wrong block*: its text is far shorter than the page's paragraph text and shares few
  of its words with what readability (readability-lxml, the port of Arc90's Readability)
  finds, which is much longer: trafilatura took a side block for the article;
* *a part of the article*: its text is far shorter than the page's paragraph text and
  readability's has long blocks it lacks, together as long as it at least: trafilatura
  took one section of an article laid out in several (a guide's sibling sections, cards),
  and readability's missing blocks are put in where readability has them.

:func:`extract_page` measures the page's paragraph text before trafilatura prunes the
tree, and only when trafilatura's text falls short of it (:data:`SHORT_OF_PARAGRAPHS`)
parses the page again and calls :func:`second_opinion`; readability runs only further
below (:data:`FAR_SHORT_OF_PARAGRAPHS`).

trafilatura's default mode also leaves lists of the article out (its recovery of text
beyond the block it chose takes paragraphs and tables, not lists; a list in a "teaser"
box goes): when the page's prose list items (:func:`list_items`, read before trafilatura)
are missing from its text, and on a fresh tree they are the article container's
(:func:`dropped_list_chars`), :func:`extract_page` asks trafilatura's recall mode.

A page its scripts render (Next.js, React Query, Flarum) may carry the article only as
HTML in a string of an inline script, the markup a browser shows having none: where
trafilatura's text is under its own minimum (:data:`MIN_TEXT_CHARS`), :func:`extract_page`
parses the page again and asks :func:`script_article`.

What the page states about its article is read before trafilatura too: the JSON-LD
``articleBody`` (:func:`stated_body`) marks where the article ends, or that trafilatura
took another block (:func:`by_stated_body`); a news page's standfirst
(:func:`standfirst`) is added when trafilatura left it out.

What trafilatura keeps inside the article's container but is not the article is cut
from its text last: a first line repeating the headline (:func:`without_title`; on a news
page also its ``<h1>`` among the first lines, :func:`without_headline`), the
page's furniture (:func:`without_furniture`: advertising and "continue reading" labels,
share and newsletter prompts, "Read more: <headline>" lines, a related-stories heading
with its list, a paywall's notices, notices after the article) and the author's biography after it
(:func:`without_author_bio`). Every rule and number here was measured on the
development sets (bench/README.md, "Extraction quality").
"""

from __future__ import annotations

import html
import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any

import lxml.etree
import lxml.html
from readability import Document
from trafilatura.settings import DEFAULT_CONFIG

from pipeline.agency import detect_credit
from pipeline.charsets import parse_json

# readability logs a failure with its traceback at ERROR before raising it; extract_page
# reports it in one warning line, naming the page, and keeps trafilatura's text.
logging.getLogger("readability.readability").setLevel(logging.CRITICAL)

#: trafilatura's text shorter than this share of the page's paragraph text calls for candidates.
SHORT_OF_PARAGRAPHS = 0.6
#: A part of a split body: a container of the same tag and class as the one holding
#: trafilatura's paragraphs, with at least this much paragraph text of its own.
MIN_PART_CHARS = 200
#: Text in links above this share of a part's text makes it a list of teasers, not a part.
MAX_PART_LINK_SHARE = 0.3

#: readability is asked only when trafilatura's text is shorter than this share of the paragraph text.
FAR_SHORT_OF_PARAGRAPHS = 0.4
#: readability's text replaces trafilatura's when it is this many times longer ...
OTHER_LONGER = 2
#: ... and fewer than this share of trafilatura's words are in it (a different block, not more of the same) ...
MAX_SHARED_WORDS = 0.3
#: ... and it has at least this many characters (trafilatura's own minimum for a text).
MIN_OTHER_CHARS = 250
#: Otherwise readability's blocks of at least this many words that trafilatura's text lacks ...
MIN_MISSING_BLOCK_WORDS = 12
#: ... together at least this share of its characters, are put into it.
MISSING_BLOCKS_SHARE = 0.8

#: A list item reads as text (a step, a point, an entry) from this many words on ...
MIN_ITEM_WORDS = 6
#: ... and with at most this share of its characters in links (else it is a menu or a teaser list).
MAX_ITEM_LINK_SHARE = 0.3
#: Prose list items of the article's container missing from trafilatura's text, at least this
#: share of the text's characters, call for trafilatura's recall mode.
DROPPED_LIST_SHARE = 0.2
#: The article's container: the innermost element holding this share of the page's blocks found in the text.
CONTAINER_SHARE = 0.8
#: List items read from a page at most (a listing's page has thousands, each looked for in the text).
MAX_LIST_ITEMS = 500

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

#: trafilatura's text shorter than its own minimum for a text calls for the article's HTML in the page's scripts.
MIN_TEXT_CHARS = DEFAULT_CONFIG.getint("DEFAULT", "MIN_EXTRACTED_SIZE")
#: A script's string is the article's HTML only with this many characters of text ...
MIN_SCRIPT_ARTICLE_CHARS = 500
#: ... in at least this many paragraphs.
MIN_SCRIPT_ARTICLE_PARAGRAPHS = 3

#: A first block with the title's first words (not all) repeats it from this many words on.
MIN_TITLE_START_WORDS = 4
#: A news page's ``<h1>`` repeated in one of the text's first this many blocks (after a kicker or a byline) is the headline ...
HEADLINE_BLOCKS = 3
#: ... when it has at least this many words (a shorter ``<h1>`` names a section or the site).
MIN_HEADLINE_WORDS = 3
#: A "Read more: <headline>" line, or an item of a related-stories list, has at most this many words ...
MAX_TEASER_WORDS = 25
#: ... and a notice after the article (newsletter, comments, copyright) at most this many.
MAX_NOTICE_WORDS = 30
#: A paywall notice ("Already a subscriber?", "La suite est réservée aux abonnés") has at most this many words ...
MAX_PAYWALL_NOTICE_WORDS = 40
#: ... and characters (a sentence of Japanese is a few words by ``\w+``).
MAX_PAYWALL_NOTICE_CHARS = 300
#: The author's biography begins in one of the text's last this many blocks, with a block that ...
BIO_LAST_BLOCKS = 5
#: ... has at least this many words (a byline is shorter) ...
MIN_BIO_WORDS = 8
#: ... and at most this many words after it.
MAX_BIO_TAIL_WORDS = 150

_WORDS = re.compile(r"\w+")
# Labels of a "Read more: <headline>" line, in the languages of the sets' publishers ...
_TEASER = (
    r"read more|read also|also read|related|lesen sie auch|mehr zum thema|lire aussi|à lire aussi|lee también"
    r"|leia também|leggi anche|czytaj (?:także|też|również)|lees ook|les også|läs också"
)
# ... and, with more, the labels that head a related-stories list, a whole line of page furniture.
_RELATED = (
    _TEASER + r"|related (?:articles?|stories|posts|content|coverage|news|links|reading)"
    r"|more on this(?: story| topic)?|you (?:may|might) also like|lesen sie mehr|auch interessant"
    r"|das könnte sie auch interessieren|ähnliche|weitere (?:artikel|themen)|a lire aussi|sur le même sujet"
    r"|te puede interesar|přečtěte si také|čtěte také"
    r"|ähnliche (?:artikel|beiträge)|weiterführende links|noticias? relacionadas?|czytaj więcej|zobacz (?:też|także)"
    r"|читайте (?:также|також)|похожие (?:статьи|новости)|関連記事|関連キーワード|おすすめ(?:情報|記事)"
    r"|相关(?:新闻|阅读|报道)|推荐阅读|관련 ?기사"
)
_FURNITURE = (
    r"advertisement|advertisment|anzeige|werbung|publicit[ée]|publicidad|pubblicit[àa]|reklama|advertentie"
    r"|sponsored content|paid content"
    r"|article content|story continues below(?: advertisement)?|(?:the )?(?:article|story) continues below"
    r"|continue reading(?: below)?|weiterlesen nach der anzeige|artikel wird nach der anzeige fortgesetzt"
    r"|lesen sie nach der anzeige weiter|la suite après (?:cette )?(?:la )?publicit[ée]"
    r"|share(?: this(?: article| story| post)?)?(?: on \w+)?|teilen|artikel teilen|partager|compartir|condividi"
    r"|udostępnij|copy link|link kopieren"
    r"|newsletter|subscribe(?: now)?|sign up(?: now)?|jetzt abonnieren|newsletter abonnieren|abonnez-vous"
    r"|suscr[íi]bete|follow us(?: on \w+)?|folgen sie uns(?: auf \w+)?"
)
_FURNITURE_LINE = re.compile(rf"^\W*(?:{_FURNITURE}|{_RELATED})\W*$", re.IGNORECASE)
_RELATED_LINE = re.compile(rf"^\W*(?:{_RELATED})\W*$", re.IGNORECASE)
_TEASER_LINE = re.compile(rf"^\W*(?:{_TEASER}|more)\s*[:|>»]+\s*\w", re.IGNORECASE)
# A notice after the article: a prompt, which opens its block, or a rights or cookie line, anywhere
# in it. The same words in reporting ("did not respond to a request for comment", "two million
# subscribers", "copyright infringement", "its privacy policy") are the article's.
_NOTICE = re.compile(
    r"^\W*(?:sign (?:up|in)\b|subscribe\b|log in\b|follow (?:us|\w+ on)\b|folgen sie uns|newsletter"
    r"|(?:\d+ )?comments?\b|kommentare\b|leave a (?:comment|reply)|join the (?:conversation|discussion)"
    r"|got a (?:story|tip)|for (?:more stories|the latest (?:news|updates|stories))"
    r"|privacy policy|terms of (?:use|service)|datenschutz|copyright\b)"
    r"|©|all rights reserved|alle rechte vorbehalten|tous droits réservés|derechos reservados"
    r"|\b(?:we|this (?:site|website)) uses? cookies\b",
    re.IGNORECASE,
)
# A paywall's notice in the text (what is left to read is for subscribers; a log-in prompt for them), wherever
# it stands: it opens its block, or says "this article is for subscribers". Reporting about subscriptions
# ("the archive will be available only to subscribers") says neither.
_PAYWALL_NOTICE = re.compile(
    r"\balready an? (?:subscriber|member)\b|\b(?:this|the rest of this) (?:article|story|content) is (?:only |exclusively )?"
    r"(?:available|reserved|exclusive) (?:to|for) (?:paying )?(?:subscribers|members)\b"
    r"|^\W*subscribe (?:now )?to (?:continue|keep) reading|^\W*(?:for )?subscribers only\b"
    r"|\bil vous reste \d+(?:[.,]\d+)?\s?% de cet article|\bla suite est réservée aux abonnés|^\W*déjà abonné"
    r"|^\W*bereits abonnent|\bfür abonnentinnen und abonnenten\b|^\W*(?:nur )?für abonnenten\b"
    r"|^\W*ya eres suscriptor|^\W*(?:contenido )?exclusivo para (?:suscriptores|assinantes)|^\W*já é assinante"
    r"|^\W*già abbonato|会員限定|有料会員",
)
# A word each notice has, looked for in the whole text and then in the block first (``in``: the notice's
# expression on every short block took 1.2 ms a page, these words as one expression 0.17 ms).
_PAYWALL_WORDS = ("subscri", "member", "abonn", "abbona", "suscri", "assinante", "vous reste", "会員")
_NAMES = re.compile(r";|,| and | und | et | y ")
_ABOUT_AUTHOR = re.compile(
    r"^\W*(?:about the authors?|about|the authors?|author|die autorin|der autor|zum autor|zur autorin"
    r"|l['’]auteur|sobre el autor|o autorze)\W*$",
    re.IGNORECASE,
)
_JSON_LD = lxml.etree.XPath("//script[@type='application/ld+json']/text()", smart_strings=False)
# schema.org's NewsArticle and its subtypes (ReportageNewsArticle, OpinionNewsArticle, ...).
_NEWS_TYPE = re.compile(r'"@type"\s*:\s*(?:\[[^\]]*)?"\w*NewsArticle"')
_H1 = lxml.etree.XPath("//body//h1")
_DESCRIPTIONS = lxml.etree.XPath("//meta[@name='description' or @property='og:description']/@content", smart_strings=False)
_BODY_TEXT_WITH = lxml.etree.XPath("//body//text()[contains(., $start)]")
_NOT_SHOWN = frozenset({"script", "style", "template", "textarea"})
_P_TEXT = lxml.etree.XPath("//p//text()", smart_strings=False)
_ITEMS = lxml.etree.XPath("//li[not(.//li)][not(ancestor::nav or ancestor::header or ancestor::footer or ancestor::aside)]")
# The page's text blocks, for finding the article's container.
_BLOCK_TAGS = ("p", "li", "td", "th", "dd", "dt", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "figcaption", "summary")
_OUTSIDE = frozenset({"nav", "header", "footer", "aside", "script", "style", "form", "button", "select"})
# What readability's article HTML breaks into lines: blocks, containers and <br>.
_READABILITY_BLOCKS = frozenset({
    "p", "li", "td", "th", "dd", "dt", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "figcaption", "summary",
    "div", "section", "article", "pre", "ul", "ol", "table", "tr", "br", "header", "footer", "main", "aside", "nav",
    "form", "dl", "figure", "hr",
})
_INLINE_SCRIPTS = lxml.etree.XPath("//script[not(@src)][not(@type='application/ld+json')]/text()", smart_strings=False)
#: A JSON (or JavaScript) string literal; the escapes it may hold are read by ``json``. Written as
#: runs of plain characters between escapes, possessive: one character at a time is ten times slower.
_STRING_LITERAL = re.compile(r'"([^"\\\n]*+(?:\\.[^"\\\n]*+)*+)"')
#: A paragraph's start tag, as it appears in a string literal: plain or escaped once or twice.
_ESCAPED_P = re.compile(r"(?:<|\\+u003[cC])p[\s>\\]")
#: The head of a text chunk of Next.js's flight data ("24:T1a2b,<p>..."), before the chunk's HTML.
_FLIGHT_TEXT = re.compile(r"^[0-9a-f]+:T[0-9a-f]+,")
_PART_BLOCKS = lxml.etree.XPath(".//p | .//h2 | .//h3 | .//blockquote[not(.//p)] | .//li[not(.//p)][not(ancestor::nav)]")


def paragraph_chars(tree: lxml.html.HtmlElement) -> int:
    """The characters of text in the page's ``<p>`` elements: its main text's size, boilerplate included."""
    return sum(len(piece) for piece in _P_TEXT(tree))


def json_ld(tree: lxml.html.HtmlElement) -> list[str]:
    """The page's JSON-LD scripts, unparsed (read before trafilatura, which drops scripts)."""
    return [str(script) for script in _JSON_LD(tree)]


def json_ld_data(script: str) -> Any:
    """What a JSON-LD script holds; None when it is not JSON or is nested too deep to read."""
    try:
        return parse_json(script)
    except (ValueError, RecursionError):
        return None


def stated_body(scripts: list[str]) -> str | None:
    """The article text the page's JSON-LD states (the longest ``articleBody``, also in ``@graph``), if long enough."""
    found = ""
    for script in scripts:
        if "articleBody" not in script:
            continue
        stack = [json_ld_data(script)]
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
    if not is_news(scripts):
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


def is_news(scripts: list[str]) -> bool:
    """Whether the page's JSON-LD says it is a news article (``NewsArticle`` or a subtype)."""
    return any(_NEWS_TYPE.search(script) for script in scripts)


def headlines(tree: lxml.html.HtmlElement, scripts: list[str]) -> list[str]:
    """A news page's headlines: the words of its ``<h1>`` elements, as keys (read before trafilatura prunes).

    Only news pages: WCXB's annotators keep the ``<h1>`` of product, service and guide
    pages as their text, and Fundus's bodies leave a news page's headline out.
    """
    if not is_news(scripts):
        return []
    return [key for h1 in _H1(tree) if len((key := _key(h1.text_content())).split()) >= MIN_HEADLINE_WORDS]


def with_standfirst(text: str, summary: str | None) -> str:
    """``text`` led by the page's standfirst, unless trafilatura already has it."""
    # Its first words in the text are enough: trafilatura kept it, perhaps reworded at the end.
    if not text or not summary or _key(summary)[:60] in _key(text):
        return text
    return f"{summary}\n\n{text}"


def paragraphs(text: str) -> str:
    """Text of one block a line (trafilatura's) with a blank line between paragraphs, as feed text has them."""
    # str.split() splits on the runs of whitespace a regular expression would find, many times faster.
    lines = (" ".join(line.split()) for line in text.replace("\r", "\n").split("\n"))
    return "\n\n".join(line for line in lines if line)


def _norm(text: str) -> str:
    return " ".join(text.split())


def _word_count(text: str) -> int:
    return len(_WORDS.findall(text))


def trimmed(text: str, title: str | None, author: str | None, headlines: list[str] | None = None) -> str:
    """trafilatura's ``text`` without what it kept around the article in its container: a first
    line repeating the headline (the ``title``, or one of a news page's ``headlines``), the page's
    furniture and the author's biography."""
    return without_author_bio(without_furniture(without_headline(without_title(text, title), headlines)), author)


def without_title(text: str, title: str | None) -> str:
    """``text`` without a first block that repeats the page's ``title``: the headline is
    stored apart, and the sets' bodies leave it out.

    The block repeats it when it has the title's words, or the title's first words and at
    least :data:`MIN_TITLE_START_WORDS` of them (a title with the site's name or a kicker
    after the headline).
    """
    blocks = text.split("\n\n")
    key = _WORDS.findall((title or "").lower())
    words = _WORDS.findall(blocks[0].lower())
    if len(blocks) < 2 or not words or key[: len(words)] != words:
        return text
    if words != key and len(words) < MIN_TITLE_START_WORDS:
        return text
    return "\n\n".join(blocks[1:])


def without_headline(text: str, headlines: list[str] | None) -> str:
    """``text`` without the first of its first :data:`HEADLINE_BLOCKS` blocks that is one of a news
    page's ``headlines`` (from :func:`headlines`): its ``<h1>``, when it differs from the
    title (a shorter SEO title, a kicker run into it) or follows a kicker, a date or a byline."""
    blocks = text.split("\n\n")
    if not headlines or len(blocks) < 2:  # a text that is only its headline stays
        return text
    for number, block in enumerate(blocks[:HEADLINE_BLOCKS]):
        if _key(block) in headlines:
            return "\n\n".join(blocks[:number] + blocks[number + 1 :])
    return text


def without_furniture(text: str) -> str:
    """``text`` without the page furniture trafilatura kept inside the article's container.

    Gone are lines that are only a label (advertising markers, "continue reading" breaks,
    share, newsletter and follow prompts), "Read more: <headline>" lines, a related-stories
    heading with the list items right after it, a paywall's notices wherever they stand
    (not as the first block), and notices (newsletter, comments,
    copyright) after the article's last block, unless they credit a wire agency. A text
    that is nothing else is kept.
    """
    blocks = text.split("\n\n")
    paywalled = _has_paywall_word(text.lower())
    kept: list[str] = []
    i = 0
    while i < len(blocks):
        block = blocks[i]
        i += 1
        if _FURNITURE_LINE.match(block) or (_TEASER_LINE.match(block) and _word_count(block) <= MAX_TEASER_WORDS):
            if _RELATED_LINE.match(block):
                while i < len(blocks) and blocks[i].startswith("- ") and _word_count(blocks[i]) <= MAX_TEASER_WORDS:
                    i += 1
            continue
        if paywalled and kept and _is_paywall_notice(block):  # never the first block: a page that is only its notice is that
            continue
        kept.append(block)
    # A wire agency's sign-off ("Copyright 2024 The Associated Press") is a notice too, but
    # it credits the agency: it stays.
    while len(kept) > 1 and _word_count(kept[-1]) <= MAX_NOTICE_WORDS and _NOTICE.search(kept[-1]):
        if detect_credit(kept[-1]):
            break
        kept.pop()
    return "\n\n".join(kept) if kept else text


def _has_paywall_word(lowered: str) -> bool:
    return any(word in lowered for word in _PAYWALL_WORDS)


def _is_paywall_notice(block: str) -> bool:
    if len(block) > MAX_PAYWALL_NOTICE_CHARS or not _has_paywall_word(lowered := block.lower()):
        return False
    return _PAYWALL_NOTICE.search(lowered) is not None and _word_count(lowered) <= MAX_PAYWALL_NOTICE_WORDS


def without_author_bio(text: str, author: str | None) -> str:
    """``text`` without the author's biography at its end: from the last of its final blocks
    that begins with an author's full name (not an agency's) and is a sentence, not a byline
    (at least :data:`MIN_BIO_WORDS` words, at most :data:`MAX_BIO_TAIL_WORDS` words after
    it), with an "About the author" heading or the bare name before it; never the first block."""
    # An agency as author ("Deutsche Presse-Agentur") bylines the story: its name opens no biography.
    names = [
        name for part in _NAMES.split(author or "") if len((name := _norm(part)).split()) >= 2 and not detect_credit(name)
    ]
    if not names:
        return text
    blocks = text.split("\n\n")
    for start in range(len(blocks) - 1, max(1, len(blocks) - BIO_LAST_BLOCKS) - 1, -1):
        if (
            blocks[start].startswith(tuple(names))
            and _word_count(blocks[start]) >= MIN_BIO_WORDS  # a sentence about the author, not a byline
            and _word_count(" ".join(blocks[start + 1 :])) <= MAX_BIO_TAIL_WORDS
            and not detect_credit(blocks[start])  # "Associated Press writer ... contributed": a credit, not a biography
        ):
            while start > 1 and (_ABOUT_AUTHOR.match(blocks[start - 1]) or blocks[start - 1] in names):
                start -= 1
            return "\n\n".join(blocks[:start])
    return text


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


def _key(text: str) -> str:
    """Words of ``text``, lower-cased and space-joined: markup and punctuation aside, as in both the page and the text."""
    return " ".join(_WORDS.findall(text.lower()))


def _prose(element: lxml.html.HtmlElement) -> str | None:
    """``element``'s text as a key, when it reads as text: enough words, little of it link text."""
    key = _key(element.text_content())
    if len(key.split()) < MIN_ITEM_WORDS:
        return None
    links = sum(len(_key(a.text_content())) for a in element.iter("a"))
    return key if links <= MAX_ITEM_LINK_SHARE * len(key) else None


def list_items(tree: lxml.html.HtmlElement) -> list[str]:
    """The page's first prose list items (outside navigation, headers and footers), as keys; read before trafilatura prunes.

    At most :data:`MAX_LIST_ITEMS`: each is looked for in the text, and a page of more is a
    listing, whose first items tell as much.
    """
    return list(islice((key for li in _ITEMS(tree) if (key := _prose(li))), MAX_LIST_ITEMS))


def _in_text(text: str) -> Callable[[str], bool]:
    """Whether a key's first 80 characters are in ``text``, within one of its blocks.

    A key that is a whole block is found in a set: searching the text for each key of a
    page of thousands of list items, all in the text, took seconds.
    """
    known = "\n".join(_key(block) for block in text.split("\n\n"))  # one block a line: no match spans two
    blocks = set(known.split("\n"))
    return lambda key: key in blocks or key[:80] in known


def missing_chars(keys: list[str], text: str) -> int:
    """The characters of the ``keys`` (from :func:`list_items`) that ``text`` lacks."""
    found = _in_text(text)
    return sum(len(key) for key in keys if not found(key))


def dropped_list_chars(tree: lxml.html.HtmlElement, text: str) -> int:
    """The characters of prose list items inside the article's container that ``text`` lacks.

    The container is the innermost element holding :data:`CONTAINER_SHARE` of the page's
    text blocks that ``text`` has; lists outside it (menus, related stories, another
    story's points) do not count.
    """
    found = _in_text(text)
    blocks: list[tuple[lxml.html.HtmlElement, list[lxml.html.HtmlElement], str, bool]] = []
    body = tree.find("body")
    for element in (body if body is not None else tree).iter(_BLOCK_TAGS):
        if any(isinstance(d.tag, str) and d.tag in _BLOCK_TAGS for d in element.iterdescendants()):
            continue  # its inner blocks count
        ancestors = list(element.iterancestors())
        if any(a.tag in _OUTSIDE for a in ancestors) or not (key := _key(element.text_content())):
            continue
        blocks.append((element, ancestors, key, found(key)))
    kept_ancestors = [ancestors for _, ancestors, _, kept in blocks if kept]
    counts: dict[lxml.html.HtmlElement, int] = Counter(a for ancestors in kept_ancestors for a in ancestors)
    holders = [a for a, count in counts.items() if count >= CONTAINER_SHARE * len(kept_ancestors)]
    if not holders:
        return 0
    container = max(holders, key=lambda a: sum(1 for _ in a.iterancestors()))
    return sum(
        len(key)
        for element, ancestors, key, kept in blocks
        if not kept
        and container in ancestors
        and (element.tag == "li" or any(a.tag == "li" for a in ancestors))
        and _prose(element)
    )


def second_opinion(tree: lxml.html.HtmlElement, text: str, paragraph_size: int) -> str:
    """The better of trafilatura's ``text`` and its candidates, on a fresh tree of the page.

    A split body wins whenever one is found. Otherwise, when ``text`` is far short of the
    page's ``paragraph_size``, readability's text wins if it is much longer and mostly other
    words; else readability's long blocks missing from ``text`` are put in, when together
    they are about as long as ``text``.
    """
    if text and (whole := split_body(tree, text)):
        return whole
    if len(text) >= FAR_SHORT_OF_PARAGRAPHS * paragraph_size:
        return text
    other = readability_text(lxml.html.tostring(tree, encoding="unicode"))
    if len(other) >= max(MIN_OTHER_CHARS, OTHER_LONGER * len(text)) and shared_words(text, other) < MAX_SHARED_WORDS:
        return other
    return with_missing_blocks(text, other) if text else text


def script_article(tree: lxml.html.HtmlElement, title: str | None) -> str | None:
    """The article a page carries only as HTML in a string of its inline scripts, a block a paragraph, or None.

    Pages its scripts render (Next.js, React Query) may hold the article's HTML only as
    a JSON string value (``"contentHtml":"\\u003cp>..."``), the markup a browser shows
    empty. The longest such HTML of :data:`MIN_SCRIPT_ARTICLE_PARAGRAPHS` paragraphs and
    :data:`MIN_SCRIPT_ARTICLE_CHARS` characters of text is the article when it has half
    of the ``title``'s words (another story's HTML, a site's whole text, has not).
    """
    best = _longest_script_html(tree)
    if len(best) < MIN_SCRIPT_ARTICLE_CHARS:
        return None
    wanted = set(_WORDS.findall((title or "").lower()))
    if not wanted or 2 * len(wanted & set(_WORDS.findall(best.lower()))) < len(wanted):
        return None
    return best


def _longest_script_html(tree: lxml.html.HtmlElement) -> str:
    """The text of the longest HTML in a string of the page's inline scripts with enough paragraphs, or ""."""
    best = ""
    for script in _INLINE_SCRIPTS(tree):
        if not _ESCAPED_P.search(script):
            continue
        for fragment in _html_strings(str(script), depth=2):
            try:
                root = lxml.html.fragment_fromstring(fragment, create_parent="div")
            except (lxml.etree.ParserError, ValueError):
                continue
            if sum(1 for p in root.iter("p") if p.text_content().strip()) < MIN_SCRIPT_ARTICLE_PARAGRAPHS:
                continue
            pieces: list[str] = []
            _block_pieces(root, pieces)
            if len(text := paragraphs("".join(pieces))) > len(best):
                best = text
    return best


def _html_strings(source: str, depth: int) -> Iterator[str]:
    """The string literals of ``source`` that hold paragraphs, decoded; within a string that is
    itself JSON (Next.js's ``self.__next_f.push`` payloads) the strings inside it, to ``depth``."""
    for match in _STRING_LITERAL.finditer(source):
        literal = match.group(1)
        if len(literal) < MIN_SCRIPT_ARTICLE_CHARS or not _ESCAPED_P.search(literal):
            continue
        try:
            value: str = json.loads(f'"{literal}"')
        except ValueError:
            continue
        inner = list(_html_strings(value, depth - 1)) if depth > 1 else []
        if inner:
            yield from inner
        elif "<p" in value:
            yield _FLIGHT_TEXT.sub("", value, count=1)


def readability_text(page: str | bytes) -> str:
    """readability's article text of the ``page``, a block a paragraph (blocks separated by a blank line).

    A page in bytes is decoded by readability itself (its ``<meta>`` charset, else chardet's guess).
    """
    summary = Document(page).summary(html_partial=True)
    if not summary.strip():
        return ""
    pieces: list[str] = []
    _block_pieces(lxml.html.fromstring(summary), pieces)
    return paragraphs("".join(pieces))


def _block_pieces(element: lxml.html.HtmlElement, pieces: list[str]) -> None:
    """``element``'s text into ``pieces``, a line break around each block element."""
    tag = element.tag if isinstance(element.tag, str) else ""
    if tag in ("script", "style"):
        return
    block = tag in _READABILITY_BLOCKS
    if block:
        pieces.append("\n")
    if element.text and tag:
        pieces.append(element.text)
    for child in element:
        _block_pieces(child, pieces)
        if child.tail:
            pieces.append(child.tail)
    if block:
        pieces.append("\n")


def with_missing_blocks(text: str, other: str) -> str:
    """``text`` with the long blocks of ``other`` it lacks, when together they are nearly as long as it.

    Each missing block of :data:`MIN_MISSING_BLOCK_WORDS` words or more goes after the
    block of ``text`` it follows in ``other``; shorter ones (labels, captions, teaser
    titles) stay out. Unless those blocks have :data:`MISSING_BLOCKS_SHARE` of ``text``'s
    length, ``text`` is kept: a few paragraphs more are more often boilerplate than article.
    """
    found = _in_text(text)
    blocks = text.split("\n\n")
    index = {_key(block): i for i, block in enumerate(blocks)}
    after: dict[int, list[str]] = {}
    missing = 0
    last = -1
    for block in other.split("\n\n"):
        key = _key(block)
        if key in index:
            last = index[key]
        elif len(key.split()) >= MIN_MISSING_BLOCK_WORDS and not found(key):
            after.setdefault(last, []).append(block)
            missing += len(key)
    if missing < MISSING_BLOCKS_SHARE * len(text):
        return text
    merged = after.get(-1, [])
    for i, block in enumerate(blocks):
        merged += [block, *after.get(i, [])]
    return "\n\n".join(merged)


def shared_words(text: str, other: str) -> float:
    """The share of ``text``'s words (with repeats) that ``other`` also has."""
    ours = Counter(_WORDS.findall(text.lower()))
    total = sum(ours.values())
    if not total:
        return 0.0
    return sum((ours & Counter(_WORDS.findall(other.lower()))).values()) / total
