"""Article pages turned into article text and metadata (trafilatura), and articles built from them.

:func:`extract_page` is the only place that touches trafilatura. It decodes the page
itself (BOM, then the HTTP or ``<meta>`` charset, then UTF-8, then a guess), caps the
input size, repairs what trafilatura repairs (control characters) and a self-closed
``<html/>`` tag, parses with lxml's depth-limited HTML parser and hands trafilatura the tree.
Anything a hostile page makes the parser or trafilatura raise is contained: the answer
is then ``None``, as when trafilatura finds no text.

:func:`build_article` is the stage boundary: it chooses between the page text and the
feed entry's own text and records which one it used and why (``Article.text_source`` and
``text_source_reason``), so a paywall or a broken page is visible rather than silent.

:func:`extract_pages` extracts a batch on several processes; its output is the same as
extracting each page in turn.
"""

from __future__ import annotations

import codecs
import enum
import logging
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import lxml.etree
import lxml.html
from trafilatura import bare_extraction
from trafilatura.metadata import extract_metadata
from trafilatura.settings import Document
from trafilatura.utils import repair_faulty_html

from pipeline.charsets import guess_encoding
from pipeline.dates import parse_moment
from pipeline.agency import detect_credit
from pipeline.candidates import (
    DROPPED_LIST_SHARE,
    MIN_TEXT_CHARS,
    SHORT_OF_PARAGRAPHS,
    by_stated_body,
    dropped_list_chars,
    headlines,
    json_ld,
    json_ld_data,
    list_items,
    missing_chars,
    paragraph_chars,
    paragraphs,
    script_article,
    second_opinion,
    standfirst,
    stated_body,
    trimmed,
    with_standfirst,
)
from pipeline.errors import ExtractionError
from pipeline.fetching.politeness import registrable_domain
from pipeline.language import detect_language
from pipeline.models import Article, FeedEntry, Fetched, TextSource
from pipeline.pool import WorkerPool
from pipeline.settings import ExtractionSettings
from pipeline.urls import article_id, canonicalize, link_of

logger = logging.getLogger(__name__)

#: Pages larger than this are cut before parsing. News articles sit in the first few
#: hundred kilobytes; the rest of a multi-megabyte page is inline scripts and data.
DEFAULT_MAX_BYTES = 5 * 1024 * 1024

#: Batches smaller than this are extracted in-process: starting worker processes
#: costs more than it saves.
MIN_PARALLEL_BATCH = 8
# Pages per chunk at most: each chunk costs this process's executor threads a wake-up and
# the GIL; 8 took them 3% of its time, 16 half that (chunks shrink near a batch's end anyway).
_MAX_CHUNK = 16

_TITLE_FALLBACK_WORDS = 12

#: A page date later than the fetch time by more than this is not trusted: a day covers
#: time zones and a day-only date, anything beyond is a wrong guess (an event date).
PAGE_DATE_FUTURE_SLACK = timedelta(days=1)
#: A page date earlier than the feed entry's date by more than this is not trusted. Feeds
#: resurface older pieces (anniversaries, evergreen guides) months later, so the page is
#: believed within two years; beyond that the "date" found is far likelier a copyright
#: year or the date of a linked archive story than when the article appeared.
PAGE_DATE_MAX_AGE = timedelta(days=730)
#: Page text shorter than the feed's content by this factor is a teaser: the feed has the
#: article, the page shows only its start (a paywall trafilatura cannot see as such).
TEASER_FACTOR = 3

_HTML_PARSER = lxml.etree.HTMLParser(
    # As trafilatura's own parser, plus no network access. huge_tree stays off: libxml2
    # then caps nesting depth, so 100,000 nested <div>s cannot drive trafilatura's
    # recursive tree walks into a RecursionError or a crash.
    collect_ids=False,
    default_doctype=False,
    encoding="utf-8",
    remove_comments=True,
    remove_pis=True,
    no_network=True,
    huge_tree=False,
)
# lxml.html's own parser chooses each element's class in a Python callback (forms and
# their fields get classes of their own), run whenever trafilatura touches an element:
# 5% of its time. trafilatura needs HtmlElement and nothing more, chosen here in C.
_HTML_PARSER.set_element_class_lookup(
    lxml.etree.ElementDefaultClassLookup(
        element=lxml.html.HtmlElement,
        comment=lxml.html.HtmlComment,
        pi=lxml.html.HtmlProcessingInstruction,
        entity=lxml.html.HtmlEntity,
    )
)

#: What :func:`extract_page` asks of trafilatura (the extraction benchmark and the tests
#: run trafilatura alone with the same, to compare).
TRAFILATURA_OPTIONS: dict[str, Any] = {
    "with_metadata": True,
    "include_comments": False,
    "include_tables": True,
    "date_extraction_params": {"extensive_search": True, "original_date": True, "outputformat": "%Y-%m-%dT%H:%M:%S"},
}


@dataclass(frozen=True, slots=True)
class ExtractedPage:
    """What trafilatura found on an article page.

    ``text`` has paragraphs separated by a blank line, like feed text. ``date`` (the
    publication date) and ``modified`` (the page's stated update time) are UTC.
    ``paywall`` is the evidence that the page is paywalled, None when there is none.
    ``language`` is the page's declared language (``<html lang>``, primary subtag),
    since trafilatura only detects one when asked to filter by language.
    ``canonical`` is the URL the page names as its own (``<link rel="canonical">``, else
    ``og:url``), in canonical spelling; :func:`build_article` decides whether to trust it.
    """

    title: str | None
    text: str
    author: str | None
    date: datetime | None
    site_name: str | None
    language: str | None
    modified: datetime | None = None
    paywall: str | None = None
    canonical: str | None = None


# -- one page -----------------------------------------------------------------------------------


def extract_page(
    html: bytes, url: str, *, max_bytes: int = DEFAULT_MAX_BYTES, content_type: str | None = None
) -> ExtractedPage | None:
    """Extract the main text and metadata of an HTML page.

    Args:
        html: the page body as fetched.
        url: the page's URL (for metadata and relative links); may be empty.
        max_bytes: bodies longer than this are cut to this length before parsing.
        content_type: the HTTP Content-Type, whose charset wins over the page's ``<meta>``.

    Returns:
        The extracted page, or None when there is no article text: trafilatura found
        none, the body is empty, binary (PDF, image), script-only, or unparsable.
    """
    if not html or not html.strip():
        return None
    if len(html) > max_bytes:
        logger.info("page %s is %d bytes; extracting from the first %d", url, len(html), max_bytes)
        html = html[:max_bytes]
    if _looks_binary(html):
        logger.debug("page %s is not text (binary content)", url)
        return None
    if not _looks_like_markup(html):
        logger.debug("page %s is not HTML (no markup)", url)
        return None
    text = _decode(html, content_type)
    # trafilatura's own cleanup before parsing, as its load_html does: without it one control
    # character, which libxml2 keeps in a text node, makes trafilatura's lxml calls raise
    # and the whole text is lost.
    source = _open_html_tag(repair_faulty_html(text, text[:50].lower())).encode("utf-8")
    try:
        tree = _parse(source)
    except (lxml.etree.ParserError, ValueError) as exc:
        logger.debug("page %s cannot be parsed as HTML: %s", url, exc)
        return None
    language = _declared_language(tree)
    # Read before trafilatura, which prunes the tree as it goes.
    scripts = json_ld(tree)
    stated_times = _stated_times(tree, _PUBLISHED_XPATH, _JSON_LD_PUBLISHED, scripts)
    modified = _stated_times(tree, _MODIFIED_XPATH, _JSON_LD_MODIFIED, scripts)
    paywall = _paywall_evidence(tree, scripts)
    canonical = _declared_canonical(tree, url)
    paragraph_size = paragraph_chars(tree)
    summary = standfirst(tree, scripts)
    headings = headlines(tree, scripts)
    body = stated_body(scripts)
    items = list_items(tree)
    try:
        document = bare_extraction(tree, url=url or None, **TRAFILATURA_OPTIONS)
    except Exception as exc:  # trafilatura on hostile markup: contain whatever it raises
        logger.warning("extraction failed on %s: %s: %s", url, type(exc).__name__, exc)
        return None
    found = document if isinstance(document, Document) else None
    text = paragraphs(found.text or "") if found else ""
    # The page's list items missing from the text, a cheap test, then on a fresh tree whether they are the article's.
    if text and missing_chars(items, text) >= DROPPED_LIST_SHARE * len(text):
        try:
            text = _with_lists(source, url, text)
        except Exception as exc:  # the recall pass failing leaves trafilatura's text
            logger.warning("recall pass failed on %s: %s: %s", url, type(exc).__name__, exc)
    if len(text) < SHORT_OF_PARAGRAPHS * paragraph_size:
        # The page is parsed again only here: trafilatura has pruned the first tree.
        try:
            text = second_opinion(_parse(source), text, paragraph_size)
        except Exception as exc:  # a second opinion failing leaves trafilatura's text
            logger.warning("second opinion failed on %s: %s: %s", url, type(exc).__name__, exc)
    if len(text) < MIN_TEXT_CHARS:
        # A page its scripts render may carry the article only in a script's string: parsed again only here.
        try:
            text, found = _with_script_article(source, url, text, found)
        except Exception as exc:  # the scan failing leaves trafilatura's text
            logger.warning("script scan failed on %s: %s: %s", url, type(exc).__name__, exc)
    text = by_stated_body(text, body)
    if found:
        text = trimmed(text, found.title, found.author, headings)
    text = with_standfirst(text, summary)
    if not text:
        return None
    return ExtractedPage(
        title=_clean(found.title) if found else None,
        text=text,
        author=_clean(found.author) if found else None,
        date=_with_time(_parse_date(found.date), stated_times) if found else None,
        site_name=_clean(found.sitename) if found else None,
        language=language,
        modified=modified[0].astimezone(UTC) if modified else None,
        paywall=paywall,
        canonical=canonical,
    )


def _with_lists(source: bytes, url: str, text: str) -> str:
    """trafilatura's recall-mode text when its default ``text`` dropped prose lists of the article's
    container and the recall text is longer, else ``text``."""
    tree = _parse(source)
    if dropped_list_chars(tree, text) < DROPPED_LIST_SHARE * len(text):
        return text
    document = bare_extraction(tree, url=url or None, favor_recall=True, **TRAFILATURA_OPTIONS)
    other = paragraphs(document.text or "") if isinstance(document, Document) else ""
    return other if len(other) > len(text) else text


def _with_script_article(source: bytes, url: str, text: str, found: Document | None) -> tuple[str, Document | None]:
    """The article HTML the page's scripts carry (:func:`script_article`) in place of trafilatura's short
    ``text``, with the page's metadata when trafilatura found no text to give it; else the two unchanged."""
    tree = _parse(source)
    title = found.title if found else _clean(tree.findtext(".//title"))
    article = script_article(tree, title)
    if not article:
        return text, found
    logger.debug("page %s: the article's text from its scripts", url)
    date_config = TRAFILATURA_OPTIONS["date_extraction_params"]
    return article, found or extract_metadata(tree, default_url=url or None, date_config=date_config)


# Inside <body> only: a page whose <html> or <body> says it is a dialog is still the page.
_DIALOGS = lxml.etree.XPath("//body//dialog | //body//*[@role='dialog' or @role='alertdialog' or @aria-modal='true']")


def _parse(source: bytes) -> lxml.html.HtmlElement:
    """The page's tree, without what is never article text."""
    tree = lxml.html.document_fromstring(source, parser=_HTML_PARSER)
    # <noscript> holds "please enable JavaScript", never the article; left in, a
    # script-only page would "extract" that sentence.
    lxml.etree.strip_elements(tree, "noscript", "template", with_tail=False)
    # A dialog (a newsletter or cookie pop-up, a "republish this story" box) lies over the page, never in its
    # article. Looking for it in the markup first spares most pages the walk over every element (2 ms on a large page).
    if b"dialog" in source or b"aria-modal" in source:
        for dialog in _DIALOGS(tree):
            dialog.drop_tree()
    return tree


# -- many pages ---------------------------------------------------------------------------------


#: A page to extract: (url, body) or (url, body, HTTP Content-Type).
PageInput = tuple[str, bytes] | tuple[str, bytes, str | None]


class PageBatch:
    """A batch of pages being extracted as they arrive: on the pool's workers when that pays, else here.

    Pages are handed over one at a time (:meth:`add`), as a download loop gets them, and
    go to the workers in chunks (pages travel as bytes, results come back as small
    records), so the workers start on a batch while the rest of it is still downloading.
    Chunks shrink towards the ``expected`` end of the batch, so the workers finish
    together. Once every page is added, this process is free to do other work (store the
    previous batch) until it asks for the :meth:`result`. Batches expected to be small,
    and a run without a pool, are extracted in this process as the pages are added.
    Submitted chunks are never cancelled: on Python 3.11 a cancelled future in a pool
    that then breaks crashes the pool's manager thread.

    Args:
        pool: the run's worker processes.
        expected: how many pages the batch will have at most (its downloads).
    """

    def __init__(self, pool: WorkerPool | None, expected: int) -> None:
        self._pool = pool
        self._expected = expected
        self._items: list[PageInput] = []
        self._results: list[ExtractedPage | None] = []
        self._pending: list[tuple[Future[list[ExtractedPage | None]], int, int]] = []
        self._submitted = 0  # pages handed to the workers (or extracted here), in order
        #: Indexes of the pages whose worker died with them (out of memory, a crash in native code).
        self.lost: list[int] = []
        self._executor = pool.executor() if pool is not None and expected >= MIN_PARALLEL_BATCH else None

    def add(self, item: PageInput) -> None:
        """One more page: (url, html bytes), or (url, html bytes, content type) so that the HTTP charset is honoured."""
        self._items.append(item)
        if self._executor is None:
            self._results.append(_extract_contained(*_page_args(item)))
            self._submitted += 1
            return
        self._results.append(None)
        # Guided scheduling: chunks shrink as the batch empties, so the workers end together.
        left = max(0, self._expected - self._submitted)
        if len(self._items) - self._submitted >= max(1, min(_MAX_CHUNK, left // (4 * self._workers))):
            self._submit()

    def finish(self) -> None:
        """No more pages: the last ones go to the workers now, not when the result is asked for."""
        self._submit()

    def result(self) -> list[ExtractedPage | None]:
        """One result per page added, in order, as :func:`extract_page` would give (None for a lost page)."""
        self._submit()
        for future, start, size in self._pending:
            try:
                self._results[start : start + size] = future.result()
            except Exception as exc:  # BrokenProcessPool above all
                # Re-running those pages here could take this process down too: they are lost.
                logger.error(
                    "extraction worker failed (%s); %d pages left unextracted, from %s",
                    type(exc).__name__,
                    size,
                    self._items[start][0],
                )
                self.lost.extend(range(start, start + size))
                if self._pool is not None and self._executor is not None:
                    self._pool.discard(self._executor)
        self._pending = []
        return self._results

    @property
    def _workers(self) -> int:
        return self._pool.workers if self._pool is not None else 1

    def _submit(self) -> None:
        """Hand the pages added since the last chunk to the workers."""
        start, chunk = self._submitted, self._items[self._submitted :]
        if not chunk:
            return
        self._submitted = len(self._items)
        if self._executor is not None:
            try:
                self._pending.append((self._executor.submit(_extract_chunk, chunk), start, len(chunk)))
                return
            except RuntimeError:  # BrokenProcessPool: a worker died; the rest is extracted here
                if self._pool is not None:
                    self._pool.discard(self._executor)
                self._executor = None
        self._results[start:] = _extract_chunk(chunk)


def extract_pages(items: Sequence[PageInput], pool: WorkerPool | None = None) -> list[ExtractedPage | None]:
    """Extract a batch of pages, on the pool's workers when that pays (see :class:`PageBatch`).

    Returns:
        One result per item, in order, as :func:`extract_page` would give; a page whose
        worker died is None.
    """
    batch = PageBatch(pool, len(items))
    for item in items:
        batch.add(item)
    return batch.result()


def _extract_chunk(items: Sequence[PageInput]) -> list[ExtractedPage | None]:
    """Extract pages in this process (also the unit of work sent to a worker)."""
    return [_extract_contained(*_page_args(item)) for item in items]


def _page_args(item: PageInput) -> tuple[bytes, str, str | None]:
    return item[1], item[0], item[2] if len(item) > 2 else None


def _extract_contained(html: bytes, url: str, content_type: str | None) -> ExtractedPage | None:
    """``extract_page``, where a page that makes it raise costs only itself: not its chunk, nor the run."""
    try:
        return extract_page(html, url, content_type=content_type)
    except Exception as exc:  # a hostile page meeting a fault of ours; trafilatura's own are contained inside
        logger.error("extraction failed on %s: %s: %s", url, type(exc).__name__, exc)
        return None


# -- the stage boundary -------------------------------------------------------------------------


class _Unset(enum.Enum):
    UNSET = enum.auto()


def build_article(
    entry: FeedEntry,
    page: Fetched | None,
    *,
    outlet: str,
    settings: ExtractionSettings,
    page_error: str | None = None,
    now: datetime | None = None,
    extracted: ExtractedPage | None | _Unset = _Unset.UNSET,
    feed_language: str | None = None,
    tags: Sequence[str] = (),
) -> Article:
    """Build the article for a feed entry from its page, else from the feed's own text.

    The page text is used when the page was fetched, is HTML, is not paywalled and yields
    at least ``settings.min_text_chars`` characters. Otherwise the entry's content is used,
    else its summary; a short page text (a paywall teaser) is not used, since it would
    make unrelated articles of one outlet look alike. ``text_source_reason`` says why
    the page was not used.

    A page is paywalled (``Article.paywalled``, reason "paywalled: <evidence>") when its
    JSON-LD says ``isAccessibleForFree: false``, when it holds paywall markup (an element
    of class or id ``paywall``, ``tp-modal``, ``meteredContent``, ``subscriber-only``), or
    when its text is a teaser: under a third of the feed's content. A paywalled page's text
    is used only when the feed entry has no text at all.

    ``published`` is the page's publication date, unless it is not trusted: more than
    :data:`PAGE_DATE_FUTURE_SLACK` after the fetch time, or more than
    :data:`PAGE_DATE_MAX_AGE` before the feed entry's date; then, or without a page
    date, it is the feed entry's (also when the page gives only the day the feed's time
    falls on). The page's dates as found and the feed entry's are kept beside it
    (``page_published``, ``page_modified``, ``feed_published``).

    The article's URL and id are the page's canonical URL (:attr:`ExtractedPage.canonical`)
    when it is on the registrable domain of the page fetched (``page.url``, after
    redirects), else the entry's URL: links to one story that name one canonical URL
    give one article. The caller closes the entry by ``entry.url``.

    The outlet is always the feed's name, not the page's ``og:site_name``: site names
    vary between pages of one publisher ("Ledger", "ledger.com", "The Ledger - Local"),
    and outlets are counted per story, so they must be spelled one way.

    An entry without a link (its URL is a ``urn:newsagg:`` key) has no page: its article
    is its feed text, with the reason "the feed entry has no link".

    Args:
        entry: the feed entry (its canonical URL gives the article id).
        page: the fetched page, or None when fetching failed or the entry has no link.
        outlet: the feed's name.
        settings: extraction settings (``min_text_chars``).
        page_error: why the page is missing, e.g. "page fetch failed: 404".
        now: the fetch time recorded on the article (default: now).
        extracted: the result of :func:`extract_page` on ``page`` when the caller already
            extracted it (e.g. with :func:`extract_pages`); None means "nothing found".
        feed_language: the language the feed list declares for the feed, used when the
            page declares none (primary subtag: "en-GB" gives "en"); when neither
            declares one, the language is detected from the title and text (None when
            the detector is unsure).
        tags: the feed's tags, carried by the article.

    Returns:
        The article.

    Raises:
        ExtractionError: neither the page nor the feed entry has any text.
    """
    now = now or datetime.now(UTC)
    found: ExtractedPage | None = None
    reason: str | None = None
    paywall: str | None = None
    url = entry.url
    if page is None:
        reason = page_error or ("the feed entry has no link" if link_of(entry.url) is None else "page not fetched")
    elif not _is_html(page):
        reason = f"page is not HTML ({page.content_type or 'no content type'})"
    else:
        found = (
            _extract_contained(page.body, page.url, page.content_type) if isinstance(extracted, _Unset) else extracted
        )
        if found is not None and found.canonical is not None and found.canonical != url:
            if _same_site(found.canonical, page.url) and not _is_home(found.canonical):
                # Two links to one article (an AMP copy, a second section, a campaign path)
                # name the same canonical, so they become one article under it.
                logger.info("article %s: the page names %s as its canonical URL", entry.url, found.canonical)
                url = found.canonical
            else:
                # A partner's syndicated copy naming the original outlet stays an article of
                # its own (clustering groups the two); a home page named by every article of a
                # misconfigured site would make them all one.
                logger.debug("article %s: canonical URL %s is another site's or a home page; not used",
                             entry.url, found.canonical)
        if found is None:
            reason = "no article text found on the page"
        elif paywall := found.paywall or _teaser(found.text, entry.content):
            reason = f"paywalled: {paywall}"
        elif len(found.text) < settings.min_text_chars:
            reason = f"page text too short ({len(found.text)} chars): paywall or script-only page"

    if found is not None and reason is None:
        text, source = found.text, TextSource.PAGE
    elif entry.content and entry.content.strip():
        text, source = entry.content.strip(), TextSource.FEED_CONTENT
    elif entry.summary and entry.summary.strip():
        text, source = entry.summary.strip(), TextSource.FEED_SUMMARY
    elif found is not None and paywall:
        text, source = found.text, TextSource.PAGE  # what the paywall shows beats no article
    else:
        raise ExtractionError(f"{entry.url}: no article text ({reason}; the feed entry has no content or summary)")
    if reason is not None:
        logger.info("article %s: using %s: %s", entry.url, source.value, reason)

    # Page metadata beats the feed's even when the page text fell short (a paywalled
    # page still names its title, author and date).
    meta = found
    author = (meta.author if meta and meta.author else None) or entry.author
    title = (meta.title if meta and meta.title else None) or entry.title or _first_words(text)
    # Declared languages first (the page's, then the feed list's); detection only without one.
    language = (
        (meta.language if meta else None) or _primary_subtag(feed_language) or detect_language(f"{title}\n{text}")
    )
    return Article(
        id=article_id(url),
        url=url,
        outlet=outlet,
        title=title,
        text=text,
        published=_published(meta.date if meta else None, entry.published, now, entry.url),
        fetched_at=now,
        text_source=source,
        feed_id=entry.feed_id,
        author=author,
        language=language,
        text_source_reason=reason,
        tags=tuple(tags),
        credit=detect_credit(text, author),
        page_published=meta.date if meta else None,
        page_modified=meta.modified if meta else None,
        feed_published=entry.published,
        paywalled=paywall is not None,
    )


# -- helpers ------------------------------------------------------------------------------------

_BINARY_MAGIC = (b"%PDF", b"\x89PNG", b"GIF8", b"\xff\xd8\xff", b"PK\x03\x04", b"\x1f\x8b", b"RIFF", b"\x00\x00\x00")
_STRAY_NULS = 8
_HTML_TAG = re.compile(r"<html(?=[\s/>])[^<>]*>", re.IGNORECASE)
_UTF16_BOMS = ((b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
_META_CHARSET = re.compile(rb"<meta[^>]+?charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]+)", re.IGNORECASE)
_HTTP_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9_.:-]+)", re.IGNORECASE)
# WHATWG: these labels mean windows-1252, which also defines 0x80-0x9F.
_LATIN1_LABELS = frozenset({"iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "us-ascii", "ascii", "windows-1252", "cp1252"})
_LANG = re.compile(r"^([A-Za-z]{2,3})(?:[-_].*)?$")
_BLANK_LINES = re.compile(r"\n\s*\n")


def _looks_like_markup(data: bytes) -> bool:
    """JSON and plain text are not pages; trafilatura would wrap them in a paragraph."""
    head = data[:65536].lstrip(b" \t\r\n\xef\xbb\xbf\xff\xfe\x00")
    if head[:1] in (b"{", b"["):
        return False
    return b"<" in head


def _looks_binary(data: bytes) -> bool:
    head = data[:4096].lstrip()[:1024]
    if head.startswith((b"\xff\xfe", b"\xfe\xff", b"\xef\xbb\xbf")):
        return False
    # Binary formats (and UTF-16 without a BOM) are full of NULs; a page with a stray one
    # is still a page, which browsers render without it.
    return head.startswith(_BINARY_MAGIC) or head.count(b"\x00") > _STRAY_NULS


def _open_html_tag(text: str) -> str:
    """The page with its ``<html .../>`` tag opened, as browsers read it.

    libxml2 closes a self-closed ``<html/>`` and drops the rest of the page; trafilatura
    repairs the tag only where it ends a line.
    """
    tag = _HTML_TAG.search(text, 0, 4096)
    if tag is None or not tag.group().endswith("/>"):
        return text
    return text[: tag.end() - 2].rstrip() + ">" + text[tag.end() :]


def _decode(data: bytes, content_type: str | None) -> str:
    """Decode a page: BOM, then HTTP charset, then <meta> charset, then UTF-8, then a guess."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", "replace")
    for bom, encoding in _UTF16_BOMS:
        if data.startswith(bom):
            return data[2:].decode(encoding, "replace")
    declared: str | None = None
    if content_type:
        match = _HTTP_CHARSET.search(content_type)
        declared = match.group(1) if match else None
    if declared is None:
        meta = _META_CHARSET.search(data[:8192])
        declared = meta.group(1).decode("ascii") if meta else None
    if declared is not None:
        label = declared.lower().replace("_", "-")
        if label.startswith(("utf-16", "utf-32")):
            # Without a BOM such a label is a mistake (WHATWG reads it as UTF-8); real
            # UTF-16 without BOM has NULs and was turned away as binary.
            return data.decode("utf-8", "replace")
        # A stale label on UTF-8 bytes is common (a Latin-1 template default, or a GB2312 page
        # re-saved as UTF-8): valid non-ASCII UTF-8 is the better witness, since text in
        # another multi-byte or 8-bit encoding is almost never valid UTF-8 as well.
        if not data.isascii():
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError:
                pass
        if label in _LATIN1_LABELS:
            return data.decode("cp1252", "replace")
        try:
            codec = codecs.lookup(label).name
            if codec != "utf-8":
                # bytes.decode refuses non-text codecs (zlib, base64) with LookupError,
                # so a hostile <meta charset="zlib"> cannot make us decompress a bomb.
                return data.decode(codec, "replace")
        except LookupError:
            logger.debug("unknown or non-text charset %r; guessing", declared)
        # Declared UTF-8 but not valid UTF-8 (often Latin-1 under a template's default
        # <meta charset>), or an unusable label: guess below rather than print U+FFFD.
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    return data.decode(guess_encoding(data), "replace")


def _declared_language(tree: lxml.html.HtmlElement) -> str | None:
    for candidates in _language_declarations(tree):  # most pages say it on <html>: search no further
        for value in candidates:
            if language := _primary_subtag(value):
                return language
    return None


def _primary_subtag(value: object) -> str | None:
    """``en`` of a language tag such as ``en-US`` or ``en_GB, fr``; None for anything else."""
    if not isinstance(value, str):
        return None
    match = _LANG.match(value.strip().split(",")[0].strip())
    return match.group(1).lower() if match else None


def _language_declarations(tree: lxml.html.HtmlElement) -> Iterator[list[Any]]:
    yield [tree.get("lang"), tree.get("{http://www.w3.org/XML/1998/namespace}lang")]
    yield tree.xpath("//meta[@http-equiv and translate(@http-equiv,'CONTENTLAGU','contentlagu')='content-language']/@content")
    yield tree.xpath("//meta[@property='og:locale']/@content")


_PUBLISHED_XPATH = (
    "//meta[@property='article:published_time' or @itemprop='datePublished' or @name='pubdate'"
    " or @name='publishdate' or @name='parsely-pub-date' or @name='sailthru.date' or @name='dc.date.issued'"
    " or @name='date']/@content"
    " | //time[@itemprop='datePublished']/@datetime"
)
_JSON_LD_PUBLISHED = re.compile(r'"datePublished"\s*:\s*"([^"]{10,40})"')
_MODIFIED_XPATH = (
    "//meta[@property='article:modified_time' or @property='og:updated_time' or @itemprop='dateModified']/@content"
    " | //time[@itemprop='dateModified']/@datetime"
)
_JSON_LD_MODIFIED = re.compile(r'"dateModified"\s*:\s*"([^"]{10,40})"')


def _stated_times(tree: lxml.html.HtmlElement, xpath: str, json_ld: re.Pattern[str], scripts: list[str]) -> list[datetime]:
    """Timestamps the page states in metadata and JSON-LD, in the offsets stated (htmldate
    keeps only the day or the local time; it finds the update date only when asked again,
    which costs a second search of the page)."""
    values = [v for v in tree.xpath(xpath) if isinstance(v, str)]
    for script in scripts:
        values.extend(json_ld.findall(script[:100_000]))
    found = []
    for value in values:
        parsed = parse_moment(value.strip().replace("Z", "+00:00"))
        if parsed is not None:
            found.append(parsed)
    return found


# Class or id tokens of paywall markup: the generic name, the overlay of Piano (the most
# used paywall vendor) and the two names Google's paywalled-content guidelines use for the
# locked part. "subscribe" is not one: free pages carry newsletter boxes. Matched with
# their case, as CSS matches classes.
_PAYWALL_TOKENS = frozenset({"paywall", "tp-modal", "meteredContent", "subscriber-only"})
# All the values, searched in Python: ten times faster than an XPath test on each element.
_CLASS_VALUES = lxml.etree.XPath("//@class", smart_strings=False)
_ID_VALUES = lxml.etree.XPath("//@id", smart_strings=False)


def _paywall_evidence(tree: lxml.html.HtmlElement, scripts: list[str]) -> str | None:
    """Why the page is paywalled (its JSON-LD or its markup says so), or None."""
    for script in scripts:
        if "isAccessibleForFree" in script and _not_free(json_ld_data(script[:100_000])):
            return "isAccessibleForFree is false"
    for attribute, values in (("class", _CLASS_VALUES), ("id", _ID_VALUES)):
        for value in values(tree):
            if token := next((t for t in str(value).split() if t in _PAYWALL_TOKENS), None):
                return f"{attribute}={token}"
    return None


def _not_free(data: Any) -> bool:
    """Whether JSON-LD says the article, or a part of it (``hasPart``), is not free."""
    if isinstance(data, list):
        return any(_not_free(item) for item in data)
    if not isinstance(data, dict):
        return False
    free = data.get("isAccessibleForFree")
    if free is False or (isinstance(free, str) and free.strip().lower() == "false"):
        return True
    return any(_not_free(data.get(key)) for key in ("@graph", "hasPart"))


def _teaser(text: str, feed_content: str | None) -> str | None:
    """Evidence that the page text is a teaser of the feed's content, or None."""
    content = (feed_content or "").strip()
    if len(text) * TEASER_FACTOR >= len(content):
        return None
    return f"page text is a teaser ({len(text)} chars, the feed's content {len(content)})"


def _with_time(day: datetime | None, stated: list[datetime]) -> datetime | None:
    """The date trafilatura found, with the time and offset of a stated timestamp.

    trafilatura gives a day, or a local time without its offset ("09:30" of a page stating
    "09:30-07:00"): a stated timestamp on that day, or at that local time, is the moment meant.
    """
    if day is None:
        return day
    wall = day.replace(tzinfo=None)
    day_only = wall.time() == datetime.min.time()
    for moment in stated:
        local = moment.replace(tzinfo=None)
        if local == wall or (day_only and wall.date() in (local.date(), moment.astimezone(UTC).date())):
            return moment.astimezone(UTC)
    return day


def _clean(value: str | None) -> str | None:
    if not value:
        return None
    return " ".join(value.split()) or None


def _parse_date(value: str | None) -> datetime | None:
    moment = parse_moment(value)
    return moment.astimezone(UTC) if moment else None


def _published(page_date: datetime | None, entry_date: datetime | None, now: datetime, url: str) -> datetime | None:
    """The page's date, unless it is not trusted or is only a day and the feed gives a time on that same day."""
    if page_date is None:
        return entry_date
    if page_date > now + PAGE_DATE_FUTURE_SLACK or (
        entry_date is not None and page_date < entry_date - PAGE_DATE_MAX_AGE
    ):
        logger.info("article %s: page date %s not trusted (feed date %s)", url, page_date.isoformat(), entry_date)
        return entry_date
    if (
        entry_date is not None
        and page_date.time() == datetime.min.time()
        and page_date.date() == entry_date.astimezone(UTC).date()
    ):
        return entry_date
    return page_date


# rel and property values are matched case-insensitively, as browsers and crawlers do.
_CANONICAL_LINKS = lxml.etree.XPath(
    "//link[translate(normalize-space(@rel),'CANOIL','canoil')='canonical']/@href", smart_strings=False
)
_OG_URLS = lxml.etree.XPath("//meta[translate(@property,'OGURL','ogurl')='og:url']/@content", smart_strings=False)


def _declared_canonical(tree: lxml.html.HtmlElement, url: str) -> str | None:
    """The URL the page names as its own, canonicalised against the page's URL, or None."""
    for xpath in (_CANONICAL_LINKS, _OG_URLS):
        for value in xpath(tree):
            if canonical := canonicalize(str(value), base=url or None):
                return canonical
    return None


def _same_site(canonical: str, page_url: str) -> bool:
    """Whether a canonical URL is on the registrable domain of the page that names it."""
    host, page_host = urlsplit(canonical).hostname, urlsplit(page_url).hostname
    return host is not None and page_host is not None and registrable_domain(host) == registrable_domain(page_host)


def _is_home(url: str) -> bool:
    parts = urlsplit(url)
    return parts.path == "/" and not parts.query


def _is_html(page: Fetched) -> bool:
    media_type = (page.content_type or "").split(";")[0].strip().lower()
    if media_type:
        return "html" in media_type
    return page.body.lstrip()[:1] == b"<"


def _first_words(text: str) -> str:
    words = text.split()
    return " ".join(words[:_TITLE_FALLBACK_WORDS]) + ("…" if len(words) > _TITLE_FALLBACK_WORDS else "")
