"""Plain records exchanged between the stages.

Each stage takes and returns these; none of them knows about the store, HTTP or
a search backend.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal


@dataclass(frozen=True, slots=True)
class FeedSource:
    """A feed the user subscribed to (from feeds.yaml or OPML)."""

    # From a feed list: the id the feed gets if new to the store. From the store (which knows feeds
    # by URL, see Store.sync_feeds): the id it got when first registered, kept through renames.
    id: str
    name: str
    url: str
    language: str | None = None
    tags: tuple[str, ...] = ()
    poll_interval: int | None = None  # seconds; None means the settings' default
    # "sitemap": read as a sitemap (pipeline.feeds.sitemaps); "feed" is read as what its document
    # turns out to be, a sitemap included.
    kind: Literal["feed", "sitemap"] = "feed"
    cross_host: bool = False  # a sitemap's URLs on other hosts are kept too (else dropped)


@dataclass(frozen=True, slots=True)
class Validators:
    """HTTP cache validators remembered for a conditional GET."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class Fetched:
    """One HTTP response body we accepted, or a 304."""

    requested_url: str
    url: str  # after redirects
    status: int
    body: bytes
    content_type: str | None
    validators: Validators
    headers: dict[str, str] = field(default_factory=dict)
    request_headers: dict[str, str] = field(default_factory=dict)  # as sent for url (the archive records them)

    @property
    def not_modified(self) -> bool:
        return self.status == 304


@dataclass(frozen=True, slots=True)
class ArchiveRecord:
    """Where a page's response record is in the WARC archive (``pipeline.archive``).

    ``file`` is a name in the archive directory, or the path of an imported WARC file.
    """

    file: str
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One usable item of a parsed feed."""

    feed_id: str
    url: str  # canonical link, or for an entry without one its key (urls.feed_entry_key)
    title: str
    summary: str | None = None
    content: str | None = None
    author: str | None = None
    published: datetime | None = None
    guid: str | None = None
    updated: datetime | None = None  # the feed's update time of the entry: a later one is a correction


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """What a feed document yielded: its entries and, for a malformed feed, why."""

    title: str | None
    entries: list[FeedEntry]
    error: str | None = None  # set for "bozo" feeds that still yielded entries
    ttl_minutes: int | None = None
    # A sitemap's newest entry date: the next poll takes only URLs newer than it (None: keep the mark).
    high_water: datetime | None = None


class TextSource(StrEnum):
    """Where an article's text came from."""

    PAGE = "page"
    FEED_CONTENT = "feed_content"
    FEED_SUMMARY = "feed_summary"
    INPUT = "input"  # given to us directly (newsagg dedup)


@dataclass(frozen=True, slots=True)
class AgencyCredit:
    """The wire agency an article credits, and where it says so (pipeline.agency)."""

    agency: str  # canonical: "AP", "AFP", "Reuters", "dpa", "EFE", "Xinhua", ...; "agencies" for unnamed wires
    kind: Literal["full", "contributor"]  # the agency's story, or material an outlet's story used
    rule: str  # the rule that found it: "dateline", "author", "byline", "sign-off", "contributed", ...
    evidence: str  # the line (or author metadata) carrying the credit


@dataclass(frozen=True, slots=True)
class Article:
    """An extracted article, the unit that is clustered."""

    id: str  # derived from the canonical URL
    url: str  # canonical, or the key of a feed entry without a link (urls.link_of tells them apart)
    outlet: str
    title: str
    text: str
    published: datetime | None
    fetched_at: datetime
    text_source: TextSource
    feed_id: str | None = None
    author: str | None = None
    language: str | None = None
    text_source_reason: str | None = None
    tags: tuple[str, ...] = ()  # its feed's tags (feeds.yaml)
    credit: AgencyCredit | None = None  # the wire agency it credits (set by extraction)
    # The dates `published` was chosen from (extraction.build_article): the page's as found,
    # trusted or not, its update time, and the feed entry's.
    page_published: datetime | None = None
    page_modified: datetime | None = None
    feed_published: datetime | None = None
    paywalled: bool = False  # the page is paywalled (text_source_reason gives the evidence)

    @property
    def arrival_key(self) -> tuple[datetime, str]:
        """The order in which articles are clustered, the same in one batch or many runs."""
        return (self.published or self.fetched_at, self.id)


@dataclass(frozen=True, slots=True)
class Signature:
    """The clustering engine's persisted state for one article (opaque to the store)."""

    article_id: str
    data: bytes
    at: datetime  # the article's arrival time, for the matching window


@dataclass(frozen=True, slots=True)
class Membership:
    """Which cluster an article belongs to and why."""

    article_id: str
    cluster_id: str
    matched_article_id: str | None = None  # None for the article that founded the cluster
    jaccard: float | None = None
    containment: float | None = None


@dataclass(frozen=True, slots=True)
class Assignment:
    """The clustering engine's decision for one new article."""

    membership: Membership
    signature: Signature
    absorbed: tuple[str, ...] = ()  # cluster ids merged into membership.cluster_id


@dataclass(frozen=True, slots=True)
class Source:
    """One outlet's copy of a story."""

    article_id: str
    outlet: str
    url: str | None  # None for an article made from a feed entry without a link
    title: str
    published: datetime | None


@dataclass(frozen=True, slots=True)
class Story:
    """One merged document per cluster."""

    id: str  # the cluster id
    title: str
    text: str
    summary: str
    sources: tuple[Source, ...]
    first_seen: datetime
    last_seen: datetime
    language: str | None = None
    agency: str | None = None
    tags: tuple[str, ...] = ()  # every tag of its articles, sorted

    @property
    def outlets(self) -> list[str]:
        return sorted({s.outlet for s in self.sources})

    @property
    def article_count(self) -> int:
        return len(self.sources)

    @property
    def outlet_count(self) -> int:
        return len(self.outlets)


@dataclass(frozen=True, slots=True)
class IndexedArticle:
    """An article as the search index holds it: with its cluster and match scores."""

    article: Article
    membership: Membership


@dataclass(frozen=True, slots=True)
class IndexChange:
    """One document to write to (or, with document None, remove from) the search index.

    ``version`` grows with every change of a document (the outbox sequence number); a backend
    applies a change only over an older version, so a late write cannot undo a newer one.
    """

    kind: Literal["story", "article"]
    id: str
    document: Story | IndexedArticle | None
    version: int


@dataclass(frozen=True, slots=True)
class IndexFailure:
    """A document the search backend refused."""

    kind: Literal["story", "article"]
    id: str
    reason: str
    transient: bool


@dataclass(frozen=True, slots=True)
class SearchQuery:
    text: str
    since: datetime | None = None
    until: datetime | None = None
    outlet: str | None = None
    language: str | None = None
    agency: str | None = None
    tag: str | None = None  # stories with at least one article from a feed with this tag
    sort: Literal["relevance", "recency"] = "relevance"
    limit: int = 10
    offset: int = 0  # hits skipped: the page after ``offset`` hits, in the same order


@dataclass(frozen=True, slots=True)
class SearchHit:
    story_id: str
    title: str
    snippet: str  # matched terms between the two search.base.HIGHLIGHT_TAGS
    score: float
    outlets: tuple[str, ...]
    article_count: int
    first_seen: datetime
    last_seen: datetime
    language: str | None = None
    agency: str | None = None
    tags: tuple[str, ...] = ()


#: What a search counts its matching stories by.
FACETS = ("outlet", "agency", "day", "language")


def _no_facet_counts() -> dict[str, dict[str, int]]:
    return {facet: {} for facet in FACETS}


@dataclass(frozen=True, slots=True)
class SearchResults:
    total: int
    hits: list[SearchHit]
    facets: dict[str, dict[str, int]] = field(default_factory=_no_facet_counts)  # facet -> value -> count
