"""Finding an outlet's sources from its home page: ``newsagg feeds add https://outlet.example/``.

A URL that is itself a feed or a sitemap is that source. Otherwise the page's
``<link rel="alternate">`` feeds are the outlet's own choice; when it names none, a few
common feed paths at the site's root are tried; and the ``Sitemap:`` lines of its
robots.txt give its sitemaps. Every candidate is fetched (through the guarded HTTP
layer) and kept only if it reads as a feed or a sitemap. They are ranked in that
order, news sitemaps before other sitemaps.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urlsplit

import lxml.etree
import lxml.html

from pipeline.errors import FeedParseError, FetchError
from pipeline.feeds.documents import parse_feed
from pipeline.feeds.lists import language_tag, polled_url
from pipeline.feeds.sitemaps import is_sitemap, parse_sitemap
from pipeline.fetching import Fetcher
from pipeline.models import FeedSource, Fetched
from pipeline.urls import canonicalize

#: Tried at the site's root when the page names no feed.
COMMON_PATHS = ("/feed", "/rss.xml", "/atom.xml", "/feed.xml", "/index.xml")
FEED_TYPES = frozenset({"application/rss+xml", "application/atom+xml", "application/feed+json", "application/json"})
#: robots.txt ``Sitemap:`` lines looked at; a site listing more is a catalogue, not news.
MAX_ROBOTS_SITEMAPS = 10
_HTML_PARSER = lxml.html.HTMLParser(encoding="utf-8", no_network=True, recover=True)


@dataclass(frozen=True, slots=True)
class Found:
    """A source found for a URL."""

    url: str
    kind: Literal["feed", "sitemap"]
    via: str  # "the URL itself", "<link> on the page", "common path", "robots.txt"
    title: str | None = None  # the feed's title, or a news sitemap's publication name
    language: str | None = None  # a news sitemap's publication language
    news: bool = False  # a sitemap with Google News entries


def discover(fetcher: Fetcher, url: str, *, max_bytes: int) -> list[Found]:
    """The feeds and sitemaps ``url`` leads to, best first.

    Args:
        fetcher: the guarded HTTP layer.
        url: a feed, a sitemap, or a page of the outlet (its home page).
        max_bytes: the most a compressed sitemap may inflate to.

    Returns:
        ``[the URL itself]`` when it is a feed or a sitemap; else the page's feeds,
        then feeds at common paths (only if the page names none), then the sitemaps of
        robots.txt (news sitemaps first); empty when nothing was found.

    Raises:
        ConfigError: ``url`` is not an absolute http(s) URL, or too long.
        FetchError: ``url`` itself cannot be fetched.
    """
    page_url = polled_url(url)
    page = fetcher.fetch(page_url)
    itself = _check(page, "the URL itself", max_bytes)
    if itself is not None:
        return [itself]
    found: list[Found] = []
    for link in _alternate_links(page):
        _add(found, _try(fetcher, link, "<link> on the page", max_bytes), "feed")
    if not found:
        for path in COMMON_PATHS:
            _add(found, _try(fetcher, _root(page.url) + path, "common path", max_bytes), "feed")
    sitemaps: list[Found] = []
    for sitemap_url in _robots_sitemaps(fetcher, page.url):
        _add(sitemaps, _try(fetcher, sitemap_url, "robots.txt", max_bytes), "sitemap")
    sitemaps.sort(key=lambda f: not f.news)  # stable: robots.txt order within each
    return found + sitemaps


def _check(fetched: Fetched, via: str, max_bytes: int) -> Found | None:
    """The fetched document as a source, if it reads as a sitemap or a feed with entries or a title."""
    if is_sitemap(fetched.body, max_bytes):
        try:
            sitemap = parse_sitemap(fetched.body, fetched.url, max_bytes)
        except FeedParseError:
            return None
        news = sitemap.publication is not None
        language = language_tag(sitemap.language) if sitemap.language else None
        return Found(fetched.url, "sitemap", via, sitemap.publication, language, news)
    probe = FeedSource(id="discovery", name="", url=fetched.url)
    try:
        parsed = parse_feed(probe, fetched, max_entries=1, now=datetime.now(UTC))
    except FeedParseError:
        return None
    return Found(fetched.url, "feed", via, parsed.title)


def _try(fetcher: Fetcher, url: str, via: str, max_bytes: int) -> Found | None:
    try:
        return _check(fetcher.fetch(url), via, max_bytes)
    except FetchError:
        return None


def _add(found: list[Found], candidate: Found | None, kind: str) -> None:
    """Keep a candidate of the expected kind that is not there already (by canonical URL)."""
    if candidate is None or candidate.kind != kind:
        return
    key = canonicalize(candidate.url)
    if all(canonicalize(f.url) != key for f in found):
        found.append(candidate)


def _alternate_links(page: Fetched) -> list[str]:
    """The feed URLs an HTML page names in ``<link rel="alternate" type="...">``, in page order."""
    try:
        document = lxml.html.document_fromstring(page.body, parser=_HTML_PARSER)
    except (lxml.etree.ParserError, ValueError):
        return []
    links: list[str] = []
    for link in document.iter("link"):
        rel = (link.get("rel") or "").lower().split()
        media = (link.get("type") or "").split(";")[0].strip().lower()
        href = link.get("href")
        if "alternate" in rel and media in FEED_TYPES and href:
            url = canonicalize(href, base=page.url, tidy_query=False)
            if url is not None and url not in links:
                links.append(url)
    return links


def _robots_sitemaps(fetcher: Fetcher, page_url: str) -> list[str]:
    """robots.txt's sitemaps; those under the deepest directory of the page's path that holds some
    (an outlet below a shared host: its home page or one of its articles), else all of them."""
    listed = fetcher.robots_sitemaps(page_url)[:MAX_ROBOTS_SITEMAPS]
    directory = urlsplit(page_url).path.rpartition("/")[0]
    while directory:
        below = [url for url in listed if urlsplit(url).path.startswith(directory + "/")]
        if below:
            return below
        directory = directory.rpartition("/")[0]
    return listed


def _root(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
