"""Sitemaps as sources: ``<urlset>`` (plain, or Google News) and ``<sitemapindex>`` documents turned into feed entries.

A sitemap source is polled like a feed (conditional GET of its URL, same record of
health), but a sitemap index makes one poll fetch several documents: its children,
newest ``lastmod`` first, at most ``sitemap_max_children`` of them, skipping those not
modified since the source's high-water mark (the newest URL date it gave before).
Every document goes through the guarded HTTP layer and its body cap; a gzip-compressed
one is inflated here under the same cap, so a gzip bomb costs that document only.

Only URLs dated after the high-water mark and within ``sitemap_max_age_days`` become
entries, newest first, at most ``max_entries_per_feed`` a poll; URLs on another site are
dropped unless the source says ``cross_host: true``. What goes wrong with one child
(a fetch error, malformed XML, a cycle, too deep an index) costs that child and is
recorded as the poll's error, which ``newsagg feeds status`` shows.

XML is read with lxml as a stream, without DTDs, entity expansion or network access;
a document declaring entities is refused outright, as feeds are.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import lxml.etree

from pipeline.charsets import without_surrogate_references
from pipeline.dates import parse_moment
from pipeline.errors import FeedParseError, FetchError
from pipeline.feeds.documents import EARLIEST_DATE, FUTURE_TOLERANCE, declares_entities, root_name, strip_bom
from pipeline.fetching.decoding import BoundedDecoder
from pipeline.fetching.politeness import registrable_domain
from pipeline.models import FeedEntry, FeedSource, Fetched, ParsedFeed
from pipeline.settings import FeedSettings
from pipeline.urls import canonicalize

SITEMAP_ROOTS = frozenset({b"urlset", b"sitemapindex"})
#: The sitemap protocol's limit of URLs (or child sitemaps) in one document; more are not read.
MAX_URLS = 50_000
#: An index may list indexes, which are followed; an index below those is not.
MAX_DEPTH = 2
_GZIP_MAGIC = b"\x1f\x8b"
_NOTES_SHOWN = 3


@dataclass(frozen=True, slots=True)
class SitemapUrl:
    """One ``<url>`` of a urlset, or one ``<sitemap>`` of an index."""

    loc: str
    date: datetime | None  # news:publication_date, else lastmod
    title: str | None = None  # news:title


@dataclass(slots=True)
class Sitemap:
    """One sitemap document as read: its URLs (or, for an index, its child sitemaps)."""

    index: bool
    urls: list[SitemapUrl] = field(default_factory=list)
    publication: str | None = None  # news:publication/news:name of its first news URL
    language: str | None = None  # news:publication/news:language of its first news URL
    error: str | None = None  # the document broke off or was cut; what was read before is kept


def is_sitemap(body: bytes, max_bytes: int) -> bool:
    """Whether a fetched document is a sitemap (its root element; a gzip-compressed one is looked into)."""
    head = body[:65536]
    if head.startswith(_GZIP_MAGIC):
        try:
            head = BoundedDecoder("gzip").decode(body, min(65536, max_bytes))
        except zlib.error:  # corrupt: not a document we can read, whatever it is
            return False
    return root_name(strip_bom(head)) in SITEMAP_ROOTS


def parse_sitemap(body: bytes, source: str, max_bytes: int) -> Sitemap:
    """Read a sitemap document, inflating it first when it is gzip-compressed.

    Args:
        body: the document as fetched.
        source: how errors name it.
        max_bytes: the most a compressed document may inflate to.

    Returns:
        The document's URLs in document order (at most ``MAX_URLS``); ``error`` says why
        it stopped early when it did (malformed XML after some URLs, too many URLs).

    Raises:
        FeedParseError: a gzip bomb, corrupt compression, entity declarations, not a
            sitemap, or malformed before its first URL.
    """
    data = _inflate(body, source, max_bytes) if body.startswith(_GZIP_MAGIC) else body
    data = without_surrogate_references(strip_bom(data))
    if not data.strip():
        raise FeedParseError(source, "empty body")
    if declares_entities(data):
        raise FeedParseError(source, "the document's DOCTYPE declares XML entities (entity expansion or external "
                                     "entity attack); refused")
    root = root_name(data[:65536])
    if root not in SITEMAP_ROOTS:
        shown = f"<{root.decode('ascii', 'replace')}>" if root else "no XML root element"
        raise FeedParseError(source, f"not a sitemap (root element {shown}, expected <urlset> or <sitemapindex>)")
    sitemap = Sitemap(index=root == b"sitemapindex")
    item = b"sitemap" if sitemap.index else b"url"
    events = lxml.etree.iterparse(
        io.BytesIO(data), events=("end",), resolve_entities=False, no_network=True, huge_tree=False,
        load_dtd=False, remove_comments=True, remove_pis=True,
    )
    try:
        for _, element in events:
            if _local(element) != item.decode():
                continue
            if len(sitemap.urls) >= MAX_URLS:
                sitemap.error = f"more than {MAX_URLS} entries; the rest were not read"
                break
            url = _read_item(element, sitemap)
            if url is not None:
                sitemap.urls.append(url)
            # Streaming: drop what was read, so memory stays flat whatever the document's length.
            element.clear()
            parent = element.getparent()
            while parent is not None and element.getprevious() is not None:
                del parent[0]
    except lxml.etree.XMLSyntaxError as exc:
        reason = f"not well-formed XML: {exc.msg or exc}"[:300]
        if not sitemap.urls:
            raise FeedParseError(source, reason) from None
        sitemap.error = f"{reason}; {len(sitemap.urls)} entries read before it"
    return sitemap


def read_sitemap(
    feed: FeedSource,
    fetched: Fetched,
    fetch: Callable[[str], Fetched],
    *,
    settings: FeedSettings,
    max_bytes: int,
    high_water: datetime | None = None,
    now: datetime | None = None,
) -> ParsedFeed:
    """Turn a fetched sitemap (and, for an index, the children it fetches) into entries.

    Args:
        feed: the source (its id goes on every entry; ``cross_host`` keeps other sites' URLs).
        fetched: its document.
        fetch: GETs a child sitemap through the guarded HTTP layer; raises ``FetchError``.
        settings: max entries, max children, max age.
        max_bytes: the most a compressed document may inflate to (the HTTP body cap).
        high_water: the newest URL date a previous poll took; only newer URLs are taken.
        now: the reference time for the max age and for rejecting future dates.

    Returns:
        The entries, newest first (undated URLs last); ``high_water`` set to the newest
        date among them; ``error`` naming what went wrong with children or URLs, if anything.

    Raises:
        FeedParseError: the document itself is not a usable sitemap, or it is an index
            and every child read failed.
    """
    now = now or datetime.now(UTC)
    source = f"sitemap {feed.id} ({fetched.url})"
    root = parse_sitemap(fetched.body, source, max_bytes)
    since = high_water
    if settings.sitemap_max_age_days > 0:
        oldest = now - timedelta(days=settings.sitemap_max_age_days)
        since = max(since, oldest) if since is not None else oldest
    reader = _Reader(feed, fetch, settings, max_bytes, since, now)
    reader.seen.add(canonicalize(fetched.url) or fetched.url)  # after redirects: an index listing itself
    if root.error:
        reader.notes.append(f"{fetched.url}: {root.error}")
    if root.index:
        reader.follow(root, fetched.url, depth=1)
        if reader.tried and reader.failed == reader.tried and not reader.pages:
            raise FeedParseError(source, f"no child sitemap could be read: {reader.summary()}")
    else:
        reader.add_pages(root, fetched.url)
    entries = reader.entries(fetched.url)
    dates = [e.published for e in entries if e.published is not None]
    return ParsedFeed(
        title=reader.publication or root.publication,
        entries=entries,
        error=reader.summary() or None,
        high_water=max(dates) if dates else None,
    )


class _Reader:
    """One poll of a sitemap source: the pages gathered, the children read, what went wrong."""

    def __init__(
        self,
        feed: FeedSource,
        fetch: Callable[[str], Fetched],
        settings: FeedSettings,
        max_bytes: int,
        since: datetime | None,
        now: datetime,
    ) -> None:
        self.feed = feed
        self.fetch = fetch
        self.settings = settings
        self.max_bytes = max_bytes
        self.since = since
        self.now = now
        self.pages: list[tuple[SitemapUrl, str]] = []  # (url, the document listing it)
        self.notes: list[str] = []
        self.seen: set[str] = {canonicalize(feed.url) or feed.url}
        self.tried = self.failed = 0
        self.publication: str | None = None

    def follow(self, index: Sitemap, index_url: str, depth: int) -> None:
        """Read the index's children, newest first, within the children budget."""
        children: list[SitemapUrl] = []
        foreign = stale = 0
        for child in index.urls:
            url = canonicalize(child.loc, base=index_url)
            if url is None or not self._on_site(url, index_url):
                foreign += 1
                continue
            if child.date is not None and self.since is not None and child.date <= self.since:
                stale += 1  # nothing in it is newer than what we took (or than the max age)
                continue
            children.append(SitemapUrl(url, child.date))
        if foreign:
            self.notes.append(f"{index_url}: {foreign} child sitemaps on another site or unusable, skipped")
        oldest = datetime.min.replace(tzinfo=UTC)
        children.sort(key=lambda c: c.date or oldest, reverse=True)
        budget = self.settings.sitemap_max_children - self.tried
        if len(children) > budget:
            self.notes.append(
                f"{index_url}: lists {len(children) + stale} sitemaps; read the {max(budget, 0)} newest "
                f"(sitemap_max_children {self.settings.sitemap_max_children})"
            )
        for child in children[: max(budget, 0)]:
            if child.loc in self.seen:
                self.notes.append(f"{index_url}: lists {child.loc}, already read (a cycle); skipped")
                continue
            self.seen.add(child.loc)
            self.tried += 1
            try:
                fetched = self.fetch(child.loc)
                sitemap = parse_sitemap(fetched.body, f"child sitemap {child.loc}", self.max_bytes)
            except (FetchError, FeedParseError) as exc:
                self.failed += 1
                self.notes.append(f"{child.loc}: {exc.reason}")
                continue
            if sitemap.error:
                self.notes.append(f"{child.loc}: {sitemap.error}")
            if not sitemap.index:
                self.add_pages(sitemap, fetched.url)
            elif depth < MAX_DEPTH:
                self.follow(sitemap, fetched.url, depth + 1)
            else:
                self.failed += 1
                self.notes.append(f"{child.loc}: a sitemap index nested more than {MAX_DEPTH} deep; not read")

    def add_pages(self, sitemap: Sitemap, document_url: str) -> None:
        self.publication = self.publication or sitemap.publication
        self.pages.extend((url, document_url) for url in sitemap.urls)

    def entries(self, sitemap_url: str) -> list[FeedEntry]:
        """The pages worth queueing: on site, new, recent, each once; newest first, at most max_entries."""
        kept: dict[str, FeedEntry] = {}
        foreign = 0
        for page, document_url in self.pages:
            url = canonicalize(page.loc, base=document_url)
            if url is None or not self._on_site(url, sitemap_url):
                foreign += 1
                continue
            date = page.date
            if date is not None and not EARLIEST_DATE <= date <= self.now + FUTURE_TOLERANCE:
                date = None  # implausible: as good as undated
            if date is not None and self.since is not None and date <= self.since:
                continue
            if url not in kept:
                kept[url] = FeedEntry(feed_id=self.feed.id, url=url, title=page.title or "", published=date)
        if foreign:
            self.notes.append(f"{foreign} URLs on another site or unusable, dropped "
                              "(`cross_host: true` in the feed list keeps other sites' URLs)")
        oldest = datetime.min.replace(tzinfo=UTC)
        ordered = sorted(kept.values(), key=lambda e: e.published or oldest, reverse=True)
        return ordered[: self.settings.max_entries_per_feed]

    def summary(self) -> str:
        shown = "; ".join(self.notes[:_NOTES_SHOWN])
        more = len(self.notes) - _NOTES_SHOWN
        return shown + (f" (and {more} more)" if more > 0 else "")

    def _on_site(self, url: str, sitemap_url: str) -> bool:
        """A URL of the sitemap's own site (its registrable domain), or any with ``cross_host``."""
        return self.feed.cross_host or _site(url) == _site(sitemap_url)


def _site(url: str) -> str:
    return registrable_domain(urlsplit(url).hostname or "")


def _inflate(body: bytes, source: str, max_bytes: int) -> bytes:
    """A gzip-compressed document inflated, refused once it passes ``max_bytes``."""
    decoder = BoundedDecoder("gzip")
    try:
        data = decoder.decode(body, max_bytes + 1)
        if len(data) <= max_bytes:
            data += decoder.flush()
    except zlib.error as exc:
        raise FeedParseError(source, f"corrupt gzip data ({exc})") from None
    if len(data) > max_bytes:
        raise FeedParseError(source, f"gzip-compressed sitemap inflates to more than {max_bytes} bytes "
                                     "(fetch.max_body_bytes): a compression bomb, or too large; refused")
    return data


def _local(element: lxml.etree._Element) -> str:
    tag = element.tag
    return tag.rpartition("}")[2].lower() if isinstance(tag, str) else ""


def _child(element: lxml.etree._Element, name: str) -> lxml.etree._Element | None:
    return next((c for c in element if _local(c) == name), None)


def _text(element: lxml.etree._Element | None) -> str | None:
    text = " ".join((element.text or "").split()) if element is not None else ""
    return text or None


def _read_item(element: lxml.etree._Element, sitemap: Sitemap) -> SitemapUrl | None:
    loc = _text(_child(element, "loc"))
    if loc is None:
        return None
    date = parse_moment(_text(_child(element, "lastmod")))
    title = None
    news = _child(element, "news")
    if news is not None:
        date = parse_moment(_text(_child(news, "publication_date"))) or date
        title = _text(_child(news, "title"))
        publication = _child(news, "publication")
        if publication is not None and sitemap.publication is None:
            sitemap.publication = _text(_child(publication, "name"))
            sitemap.language = _text(_child(publication, "language"))
    return SitemapUrl(loc, date, title)
