"""One typed settings object for every stage, read from NEWSAGG_* variables and an optional file.

Nested groups use a double underscore: ``NEWSAGG_FETCH__READ_TIMEOUT=30``,
``NEWSAGG_ES__URLS='["https://es1:9200"]'``. A YAML file named by ``NEWSAGG_CONFIG``
(or ``--config`` on the command line) supplies the same fields; the environment wins.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import Any, Literal, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

# A URL path of one or more segments, without a query, fragment or spaces.
_URL_PATH = re.compile(r"(/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)+")
#: A User-Agent as an HTTP header carries it: visible ASCII and inner spaces.
_HEADER_VALUE = re.compile(r"[!-~](?:[ -~]*[!-~])?")


def bundled_config_dir() -> Path:
    """The configuration newsagg ships: its copy inside an installed package, else ``config/`` of the checkout."""
    package = Path(__file__).resolve().parent
    installed = package / "config"
    return installed if installed.is_dir() else package.parent / "config"


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "newsagg"


def _masked(value: Any) -> Any:
    if isinstance(value, str) and "://" in value:
        from pipeline.urls import redact_url  # here: DAG files import settings when Airflow parses them

        return redact_url(value)
    if isinstance(value, list):
        return [_masked(item) for item in value]
    return value


class _MasksCredentials:
    """``repr()`` (and so ``str()`` and logs) with the password of every URL-like value masked."""

    def __repr_args__(self) -> Any:
        assert isinstance(self, BaseModel)
        return [(name, _masked(value)) for name, value in BaseModel.__repr_args__(self)]


class _Section(_MasksCredentials, BaseModel):
    """A group of settings; a name it does not have is an error (a typo, or a setting since retired).

    Numbers are finite: ``inf`` seconds ended a run in an OverflowError where they reached a sleep.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# Settings an upgrade replaced, and what replaced them: said instead of "Extra inputs are not permitted".
_RETIRED = {
    "extraction.workers": "`workers` (one pool of processes for the whole run)",
    "clustering.workers": "`workers` (one pool of processes for the whole run)",
}


class FetchSettings(_Section):
    """How we talk HTTP to publishers."""

    user_agent: str = Field(
        "newsagg/0.1 (+https://github.com/newsagg/newsagg; news aggregation bot)",
        description="User-Agent header sent with every request; its leading product token ('newsagg') is "
        "the name matched, case-insensitively, against robots.txt groups.",
    )
    connect_timeout: float = Field(10.0, gt=0, description="Seconds to establish a connection.")
    read_timeout: float = Field(20.0, gt=0, description="Seconds to wait for each chunk of a response.")
    total_timeout: float = Field(
        60.0, gt=0, description="Seconds a whole response may take, so a trickling server cannot hold us."
    )
    max_body_bytes: int = Field(
        10 * 1024 * 1024, gt=0, description="Largest body accepted, counted after decompression."
    )
    max_redirects: int = Field(5, ge=0, description="Redirect hops followed before giving up.")
    concurrency: int = Field(
        32,
        ge=1,
        description=(
            "Requests in flight at once, across all hosts. Enough to hide publishers' round trips "
            "behind parsing on every core; the per-domain limit keeps each publisher's share small."
        ),
    )
    per_domain_concurrency: int = Field(
        2, ge=1, description="Requests in flight at once to one registrable domain."
    )
    politeness_delay: float = Field(
        1.0, ge=0, description="Seconds between two requests to the same registrable domain."
    )
    respect_robots: bool = Field(True, description="Obey robots.txt for article pages.")
    max_crawl_delay: float = Field(
        10.0,
        ge=0,
        description=(
            "Largest robots.txt Crawl-delay obeyed (seconds). A host's Crawl-delay raises its domain's "
            "politeness_delay to that much; a larger Crawl-delay is treated as this cap (and logged)."
        ),
    )
    verify_tls: bool = Field(True, description="Verify TLS certificates of publishers.")
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description=(
            "Exceptions to the address guard, as 'host', 'host:port' or a CIDR network. "
            "Private, loopback and link-local addresses are refused unless listed here."
        ),
    )

    proxy: str | None = Field(
        None,
        description=(
            "An HTTP proxy every request to publishers goes through (feeds, sitemaps, robots.txt, pages; "
            "not Elasticsearch, Kibana or the alert webhook), `http://[user:password@]host:port` or `https://`, "
            "for networks that reach the web only through one. The address guard cannot see where the "
            "proxy connects: it checks each target's addresses before the request, and a name whose "
            "answer changes before the proxy resolves it again gets past that check, so let the proxy "
            "refuse private addresses too. The proxy itself is not checked."
        ),
    )

    @field_validator("proxy")
    @classmethod
    def _is_a_proxy_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        try:
            parts.port
        except ValueError:
            raise ValueError(f"has a bad port: {_masked(value)}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") \
                or parts.query or parts.fragment:
            raise ValueError(f"must be http://host:port or https://host:port, not {_masked(value)}")
        return value

    @field_validator("user_agent")
    @classmethod
    def _is_a_header_value(cls, value: str) -> str:
        # Sent as it is with every request: anything else failed every fetch of a run, each
        # counted against its feed, or was a traceback (a letter beyond ASCII).
        if not _HEADER_VALUE.fullmatch(value):
            raise ValueError("must be printable ASCII, not blank, without line breaks or spaces at either end "
                             f"(an HTTP header value such as 'newsagg/0.1 (+https://example.org/bot)'), not {value!r}")
        return value


class FeedSettings(_Section):
    """Feed polling."""

    default_poll_interval: int = Field(900, ge=60, description="Seconds between polls of one feed.")
    min_poll_interval: int = Field(300, ge=0, description="Lower bound for adaptive polling (seconds).")
    max_poll_interval: int = Field(86400, ge=60, description="Upper bound for adaptive polling (seconds).")
    retire_after_failures: int = Field(
        10,
        ge=1,
        description="Consecutive failed polls after which a feed is retired, once it has also been failing for "
        "retire_after_days. Airflow's retries of one scheduled poll count as one.",
    )
    retire_after_days: float = Field(
        3.0,
        ge=0,
        description="How long a feed must have been failing without a success before it is retired, so a "
        "publisher down for a day is not given up on. A 410 retires a feed at once.",
    )
    max_entries_per_feed: int = Field(
        500, ge=1, description="Entries taken from one feed document, or from one poll of a sitemap (its newest "
        "URLs); the rest are ignored."
    )
    sitemap_max_age_days: float = Field(
        3.0,
        ge=0,
        description="A sitemap's URLs dated longer ago than this are ignored (0: no limit); undated URLs are kept. "
        "Only URLs newer than the newest one a sitemap gave before are taken at all.",
    )
    sitemap_max_children: int = Field(
        20,
        ge=1,
        description="Child sitemaps of a sitemap index read per poll, newest lastmod first; children not modified "
        "since the sitemap's newest URL taken are not fetched.",
    )
    adaptive_polling: bool = Field(
        True,
        description="Learn each feed's interval from how often it publishes new entries, starting from its "
        "poll_interval and staying within min_poll_interval and max_poll_interval; off: poll every poll_interval. "
        "Cache-Control, Expires, RSS ttl and Retry-After still set the earliest next poll.",
    )
    permanent_failure_weight: float = Field(
        2.0,
        ge=1.0,
        description="How many failures a poll failing for a reason of the feed's own (404 and other 4xx, a "
        "refused address, a document that is not a feed) counts towards retire_after_failures; a timeout, a "
        "429 or a 5xx counts one. A 410 retires a feed at once.",
    )
    poll_batch_size: int = Field(
        200,
        ge=1,
        description="Feeds one Airflow poll task polls at most. Every feed of a registrable domain is polled by "
        "the same task (one politeness clock per domain), so a domain with more feeds makes a bigger task of its own.",
    )

    @model_validator(mode="after")
    def _bounds_in_order(self) -> FeedSettings:
        # Adaptive polling clamps into [min, max]: the wrong way round, every feed polls at max.
        if self.min_poll_interval > self.max_poll_interval:
            raise ValueError(f"min_poll_interval ({self.min_poll_interval}) is above "
                             f"max_poll_interval ({self.max_poll_interval})")
        return self


class ExtractionSettings(_Section):
    """Article text extraction."""

    min_text_chars: int = Field(
        400, ge=0, description="Shorter page text counts as a failed extraction (paywall, script-only page)."
    )
    batch_size: int = Field(200, ge=1, description="Pages fetched and extracted per batch.")
    claim_lease: float = Field(
        300.0,
        gt=0,
        description="Seconds a worker holds the queued pages it took, so other workers fetch other pages; renewed "
        "while it works on them. A killed worker's pages are taken by the next run once the lease ends (at once "
        "on the same machine, where the next run sees the process is gone).",
    )
    max_pass_seconds: float = Field(
        900.0,
        gt=0,
        description="A run's pass over the queue of pages takes no new batch after this many seconds; it finishes "
        "the batches it began and the pages left wait for the next run, so that each run clusters and indexes what "
        "it fetched (a backlog, from a first run, sitemaps or an outage, is fetched over several runs; the Airflow "
        "DAG's fetch task has 30 minutes).",
    )
    template_min_articles: int = Field(
        5,
        ge=0,
        description="A paragraph found on this many distinct articles of one outlet (its feed's name on one "
        "registrable domain) is the outlet's boilerplate (a newsletter box, a teaser, a credit line) and is "
        "stripped from its later articles; 0 turns template learning off.",
    )
    template_half_life_days: float = Field(
        30.0,
        gt=0,
        description="The count of articles a paragraph appeared on halves every this many days it is not seen "
        "again, so boilerplate a site dropped is forgotten.",
    )
    template_min_kept: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Share of its text an article keeps at least: a page that is mostly known paragraphs (a story "
        "run again under a new URL) loses none.",
    )


class ArchiveSettings(_Section):
    """The raw page archive: every article page and feed document fetched, as WARC files."""

    enabled: bool = Field(
        True, description="Write every fetched article page and feed document to the archive (`newsagg reextract` "
        "reads it back)."
    )
    directory: Path | None = Field(None, description="Where the WARC files go; default: archive/ in data_dir.")
    max_file_bytes: int = Field(
        100 * 1024 * 1024,
        ge=1024,
        description="A WARC file is closed, and the next one started, once it holds this many (compressed) bytes.",
    )
    retention_days: int | None = Field(
        None,
        ge=1,
        description="WARC files last written this many days ago are deleted by maintenance (the news_maintenance "
        "DAG, `newsagg maintenance`), and their articles forget their pages (`newsagg reextract` skips them); the "
        "stories stay. None keeps the pages as long as their stories (story_retention_days).",
    )


class ClusteringSettings(_Section):
    """Near-duplicate detection (MinHash + LSH)."""

    window_days: int = Field(
        7, ge=1, le=365, description="New articles are matched against articles published (else fetched) within this "
        "many days of theirs."
    )
    num_perm: int = Field(
        128, ge=16, le=1024, description="MinHash permutations per signature. Changing it requires re-clustering."
    )
    seed: int = Field(
        1, ge=0, le=65535, description="Seed of the MinHash permutations. Changing it requires re-clustering."
    )
    shingle_size: int = Field(
        5,
        ge=2,
        le=12,
        description="Words per shingle of the body text; in Chinese, Japanese, Thai and other scripts without "
        "spaces a character n-gram counts as a word.",
    )
    lsh_threshold: float = Field(
        0.2,
        gt=0.0,
        lt=1.0,
        description="Jaccard similarity the LSH bands are tuned to catch; low, because abridged copies "
        "have low Jaccard and verification rejects the extra candidates.",
    )
    lsh_recall_weight: float = Field(
        0.8,
        ge=0.5,
        le=0.99,
        description="Weight of false negatives against false positives in datasketch's band optimiser.",
    )
    lsh_bands: int | None = Field(
        None, ge=2, le=1024, description="Number of LSH bands; with lsh_rows, overrides the optimiser."
    )
    lsh_rows: int | None = Field(
        None, ge=1, le=64, description="MinHash values per LSH band; with lsh_bands, overrides the optimiser."
    )
    max_bucket: int = Field(
        64, ge=1, le=100_000, description="Most recent articles one LSH bucket contributes as candidates."
    )
    jaccard_threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="Estimated Jaccard similarity at which two long texts match."
    )
    containment_threshold: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Estimated share of the shorter text found in the longer one at which two long texts "
        "match (abridged copies).",
    )
    same_outlet_containment: float = Field(
        0.8,
        ge=0.0,
        le=1.0,
        description="Containment at which two long texts of the same outlet match: stricter, because an "
        "outlet appends the same stock blocks to all its stories.",
    )
    min_overlap: int = Field(
        20, ge=1, le=10_000, description="Shingles two long texts must share to match on containment."
    )
    short_words: int = Field(
        80, ge=0, le=1000, description="Texts with fewer body words are short: matched on title + lead, stricter."
    )
    short_shingle_size: int = Field(3, ge=1, le=12, description="Words per shingle of a short text's title + lead.")
    lead_words: int = Field(
        150,
        ge=10,
        le=1000,
        description="Body words of an article's lead: kept exactly for a short text, MinHashed for every text. "
        "Changing it requires re-clustering.",
    )
    opening_words: int = Field(
        40,
        ge=5,
        le=1000,
        description="Body words of an article's opening (about its first paragraph; at most lead_words), "
        "MinHashed with the lead. Changing it requires re-clustering.",
    )
    lead_perm: int = Field(
        64,
        ge=0,
        le=1024,
        description="MinHash permutations over each article's lead (one byte a value: 7 bits of it, and whether "
        "it came from the opening); 0 turns the opening check off. Changing it requires re-clustering.",
    )
    opening_containment: float = Field(
        0.3,
        ge=0.0,
        le=1.0,
        description="Estimated share of one text's opening that must be found in the other's lead (either way "
        "round) when two texts match on containment alone: an abridged copy keeps the opening, even under an "
        "outlet's own intro; a different story that carries over a background paragraph, a quote or a stock "
        "block does not. Matches on jaccard_threshold need no opening.",
    )
    short_opening_words: int = Field(
        12,
        ge=1,
        le=100,
        description="Body words of a short text's opening (about its first sentence), kept exactly. Changing it "
        "requires re-clustering.",
    )
    short_opening: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Share of each short text's opening shingles that must be found in the other's lead for "
        "two short texts to match: briefs on one topic share stock sentences, not their first one.",
    )
    short_jaccard: float = Field(
        0.6, ge=0.0, le=1.0, description="Exact Jaccard similarity (title + lead) at which two short texts match."
    )
    short_containment: float = Field(
        0.8,
        ge=0.0,
        le=1.0,
        description="Containment at which a short text matches: exact between two short texts, estimated "
        "against a long one.",
    )
    pool_min_batch: int = Field(
        200, ge=1, description="Batches smaller than this are signed in-process (handing a batch to the workers "
        "costs more than signing it here)."
    )


class ElasticsearchSettings(_Section):
    """The Elasticsearch backend."""

    urls: list[str] = Field(default_factory=lambda: ["http://127.0.0.1:9200"], description="Node URLs.")
    api_key: SecretStr | None = Field(None, description="API key (id:key, base64), preferred over a password.")
    username: str | None = Field(None, description="Basic-auth user.")
    password: SecretStr | None = Field(None, description="Basic-auth password.")
    ca_certs: Path | None = Field(None, description="CA bundle used to verify the cluster's certificate.")
    verify_certs: bool = Field(True, description="Verify the cluster's TLS certificate.")
    request_timeout: float = Field(30.0, gt=0, description="Seconds per request.")
    max_retries: int = Field(3, ge=0, description="Retries on connection errors, timeouts, 429, 502, 503 and 504.")
    index_prefix: str = Field("newsagg", description="Prefix of index names and aliases.")
    templates_dir: Path | None = Field(
        None,
        description="Directory of the index templates (stories.json, articles.json); "
        "default: the elasticsearch directory of the configuration newsagg ships (config/ of a checkout).",
    )


class OutboxSettings(_Section):
    """Delivery of stories and articles to the search index."""

    max_attempts: int = Field(
        5,
        ge=1,
        description="Times the search index may refuse a document (mapping error, too large) before it moves "
        "to the dead letters (`newsagg outbox list|retry`); runs with the backend unreachable do not count.",
    )


class KibanaSettings(_Section):
    """Kibana, where `newsagg kibana import` puts the data views, searches and dashboard of config/kibana."""

    url: str = Field("http://127.0.0.1:5601", description="Kibana's base URL, with its base path if it has one.")
    space: str | None = Field(None, description="Kibana space to import into; unset is the default space.")
    api_key: SecretStr | None = Field(None, description="API key (id:key, base64), preferred over a password.")
    username: str | None = Field(
        None, description="Basic-auth user; needs the Kibana privilege to manage saved objects."
    )
    password: SecretStr | None = Field(None, description="Basic-auth password.")
    ca_certs: Path | None = Field(None, description="CA bundle used to verify Kibana's certificate.")
    verify_certs: bool = Field(True, description="Verify Kibana's TLS certificate.")
    request_timeout: float = Field(60.0, gt=0, description="Seconds per request (an import can take a while).")


class WebSettings(_Section):
    """`newsagg serve`: the read-only web interface, JSON API and feeds."""

    host: str = Field(
        "127.0.0.1",
        description="Address to listen on; anything but loopback exposes the store's stories to the network "
        "(`newsagg serve` warns unless --host is given).",
    )
    port: int = Field(8000, ge=0, le=65535, description="Port to listen on (0: any free port).")
    root_path: str = Field(
        "",
        description="The path under which a reverse proxy publishes the interface (e.g. `/news` for "
        "https://example.org/news/): links, redirects and feed URLs carry it. The proxy may strip it or pass it on.",
    )
    trusted_proxies: str = Field(
        "127.0.0.1,::1",
        description="Comma-separated addresses or networks of the reverse proxies whose `X-Forwarded-Proto` and "
        "`X-Forwarded-For` are believed (`*`: any), so that feed and API URLs use the scheme readers use; the "
        "proxy must pass the public `Host` on (nginx: `proxy_set_header Host $host`).",
    )

    @field_validator("root_path")
    @classmethod
    def _is_a_path(cls, value: str) -> str:
        value = value.rstrip("/")
        if value and not _URL_PATH.fullmatch(value):
            raise ValueError("must be a URL path such as /news (a leading /, no query, no spaces)")
        return value


class Settings(_MasksCredentials, BaseSettings):
    """Everything the pipeline can be told. Built once, passed down."""

    model_config = SettingsConfigDict(
        env_prefix="NEWSAGG_", env_nested_delimiter="__", extra="forbid", validate_default=True, allow_inf_nan=False
    )

    data_dir: Path = Field(default_factory=_default_data_dir, description="Where the embedded store and index live.")
    feeds_file: Path | None = Field(
        None,
        description="Feed list, YAML or OPML; default: feeds.yaml in data_dir. A relative path given in the "
        "settings file is taken from that file's directory; from the environment, from the current directory.",
    )
    store_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the store; default: SQLite (WAL) in data_dir. "
        "Use postgresql+psycopg://... when several workers share the work.",
    )
    search_backend: Literal["sqlite", "elasticsearch"] = Field(
        "sqlite", description="Where stories are indexed for search."
    )
    story_retention_days: int | None = Field(
        None,
        ge=1,
        description="Stories last seen this many days ago are deleted with their articles (store and search "
        "index) by maintenance (the news_maintenance DAG, `newsagg maintenance`); never less than "
        "clustering.window_days. None keeps every story.",
    )
    alert_webhook_url: SecretStr | None = Field(
        None,
        description="http(s) URL that receives a JSON POST, one digest per run, of the feeds that started "
        "failing, were retired or recovered (each change once); e.g. a chat incoming webhook. Treated as a "
        "secret: never logged. Digests are logged whether or not this is set.",
    )
    workers: int | None = Field(
        None,
        ge=1,
        le=256,
        description="Worker processes a run shares between parsing feeds, extracting pages and signing articles "
        "(started once per run); 1 does all the work in the run's own process. Default: the CPUs this process "
        "may use; never more.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "warning", description="Least severe log records the command line writes to standard error (-v: debug)."
    )
    log_format: Literal["text", "json"] = Field(
        "text",
        description="Log lines as text, or as JSON objects (time, level, logger, message, exception) for a log "
        "shipper. Airflow tasks log through Airflow's own handlers.",
    )
    alert_webhook_timeout: float = Field(10.0, gt=0, description="Seconds the alert webhook may take to answer.")
    alert_digest_interval: int = Field(
        3600,
        ge=0,
        description="Seconds between two digests to the alert webhook. Changes during the wait are not lost: "
        "they go out with the next digest.",
    )
    fetch: FetchSettings = Field(default_factory=FetchSettings)  # type: ignore[arg-type]
    feeds: FeedSettings = Field(default_factory=FeedSettings)  # type: ignore[arg-type]
    extraction: ExtractionSettings = Field(default_factory=ExtractionSettings)  # type: ignore[arg-type]
    archive: ArchiveSettings = Field(default_factory=ArchiveSettings)  # type: ignore[arg-type]
    clustering: ClusteringSettings = Field(default_factory=ClusteringSettings)  # type: ignore[arg-type]
    es: ElasticsearchSettings = Field(default_factory=ElasticsearchSettings)  # type: ignore[arg-type]
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)  # type: ignore[arg-type]
    kibana: KibanaSettings = Field(default_factory=KibanaSettings)  # type: ignore[arg-type]
    web: WebSettings = Field(default_factory=WebSettings)  # type: ignore[arg-type]

    @field_validator("data_dir", "feeds_file")
    @classmethod
    def _expand_user(cls, value: Path | None) -> Path | None:
        return None if value is None else value.expanduser()

    @field_validator("alert_webhook_url")
    @classmethod
    def _webhook_is_http(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().lower().startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @property
    def embedded_store(self) -> Path | None:
        """The embedded store's file in ``data_dir``; None when ``store_url`` names another store."""
        return self.data_dir / "store.sqlite3" if self.store_url is None else None

    @property
    def store_file(self) -> Path | None:
        """The SQLite file the store is in: the embedded one, or the one ``store_url`` names; None for
        a PostgreSQL store (or an in-memory or URI-named SQLite database)."""
        if self.store_url is None:
            return self.embedded_store
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(self.store_url)
        except ArgumentError:  # the store says so when it is opened
            return None
        if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:" or url.query.get("uri"):
            return None
        return Path(url.database)

    @property
    def embedded_index(self) -> Path | None:
        """The embedded search index's file in ``data_dir``; None when ``search_backend`` is Elasticsearch."""
        return self.data_dir / "search.sqlite3" if self.search_backend == "sqlite" else None

    @property
    def resolved_store_url(self) -> str:
        return self.store_url or f"sqlite:///{self.embedded_store}"

    @property
    def resolved_feeds_file(self) -> Path:
        return self.feeds_file or self.data_dir / "feeds.yaml"

    @property
    def resolved_archive_dir(self) -> Path:
        """Where the WARC archive is (written only when ``archive.enabled``)."""
        return (self.archive.directory or self.data_dir / "archive").expanduser()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_file = settings_cls.model_config.get("yaml_file") or settings_file()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, file_secret_settings]
        if config_file:
            sources.append(_YamlFileSettings(settings_cls, yaml_file=config_file))
        return tuple(sources)


class _YamlFileSettings(YamlConfigSettingsSource):
    """The settings file, with its relative paths taken from the file's own directory."""

    def __call__(self) -> dict[str, Any]:
        values = super().__call__()
        assert isinstance(self.yaml_file_path, (str, Path))
        here = Path(self.yaml_file_path).expanduser().resolve().parent
        for name in ("data_dir", "feeds_file"):
            if isinstance(values.get(name), str) and not Path(values[name]).expanduser().is_absolute():
                values[name] = str(here / values[name])
        return values


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings from the environment, an optional YAML file (``config_file``, else
    ``NEWSAGG_CONFIG``) and explicit overrides.

    Raises:
        ConfigError: the file is missing or not YAML, or a value is invalid, with the field named.
    """
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from pipeline.errors import ConfigError

    misspelt = _misspelt_variables(os.environ) + _keys_given_twice(os.environ)
    if misspelt:
        raise ConfigError(f"invalid settings: {'; '.join(misspelt)}")
    settings_cls = Settings
    config_file = settings_file(config_file)
    if config_file is not None:  # NEWSAGG_CONFIG's too: a typo must not mean the defaults
        if config_file.is_dir():
            raise ConfigError(f"config file {config_file} is a directory, not a settings file")
        if not config_file.is_file():
            raise ConfigError(f"config file not found: {config_file}")
        _settings_file_values(config_file)  # a file that is not YAML is one line, not pydantic-settings' error

        class FileSettings(Settings):
            model_config = SettingsConfigDict(**{**Settings.model_config, "yaml_file": config_file})

        settings_cls = FileSettings
    try:
        return settings_cls(**overrides)
    except ValidationError as exc:
        problems = "; ".join(_problem(err) for err in exc.errors())
        raise ConfigError(f"invalid settings: {problems}") from None
    except SettingsError as exc:  # a variable pydantic-settings reads as JSON (a list, a group given whole) is not
        field = re.search(r'field "(\w+)"', str(exc))
        group = field[1] if field else ""
        names = ", ".join(_not_json(group, os.environ)) or f"NEWSAGG_{group.upper()}…"
        raise ConfigError(f"invalid settings: {names} is not JSON, as a list or a group of settings must be "
                          """(e.g. NEWSAGG_ES__URLS='["https://es1:9200"]')""") from None


def settings_file(given: Path | None = None) -> Path | None:
    """The settings file a command reads: ``given`` (``--config``), else the one ``NEWSAGG_CONFIG`` names, else none."""
    if given is None and os.environ.get("NEWSAGG_CONFIG"):
        return Path(os.environ["NEWSAGG_CONFIG"])
    return given


def settings_reference() -> str:
    """Every setting as a Markdown table: environment variable, default, meaning (docs/settings.md)."""
    lines = [
        "# Settings",
        "",
        "Generated from `pipeline/settings.py` by `scripts/settings-reference`; a test keeps it current.",
        "Set them as environment variables, or as the same nested keys (lower case) in the YAML file",
        "named by `--config` / `NEWSAGG_CONFIG`. A name not in this table (a typo, or a setting since",
        "retired) is an error that names it when it is in the settings file or in a group of this table",
        "(`NEWSAGG_FETCH__…`), as is a `NEWSAGG_*` variable whose name is close to one of this table's",
        "(`NEWSAGG_STORE__URL`: did you mean `NEWSAGG_STORE_URL`?). Other `NEWSAGG_*` variables are",
        "ignored: docker-compose.yml, the DAGs and the scripts use the prefix too. A key given twice",
        "in one mapping of the file (a group written out twice), or in a group given whole as JSON",
        "(`NEWSAGG_FETCH='{...}'`), is an error too, not the last one kept.",
        "",
        "| variable | default | meaning |",
        "|---|---|---|",
    ]
    for variable, path, field in _variables():
        if path == ("data_dir",):
            default = "`$XDG_DATA_HOME/newsagg` or `~/.local/share/newsagg`"
        elif field.default_factory is not None:
            default = f"`{field.default_factory()}`"  # type: ignore[call-arg]
        elif field.default is None:
            default = "unset"
        elif field.default == "":
            default = "empty"
        else:
            default = f"`{field.default}`"
        meaning = (field.description or "").replace("|", "\\|")
        lines.append(f"| `{variable}` | {default} | {meaning} |")
    return "\n".join(lines) + "\n"


def _variables(
    model: type[BaseModel] = Settings, prefix: str = "NEWSAGG_", within: tuple[str, ...] = ()
) -> Iterator[tuple[str, tuple[str, ...], FieldInfo]]:
    """Each setting's environment variable, path of field names (``("fetch", "read_timeout")``) and field."""
    for name, field in model.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            yield from _variables(kind, f"{prefix}{name.upper()}__", (*within, name))
        else:
            yield f"{prefix}{name.upper()}", (*within, name), field


@dataclass(frozen=True, slots=True)
class SettingInForce:
    """One setting as a command sees it: value (secrets and URL passwords masked) and where it came from."""

    variable: str
    value: Any
    origin: Literal["option", "environment", "file", "default"]


def settings_in_force(
    settings: Settings, *, config_file: Path | None = None, options: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[SettingInForce]:
    """Every setting of ``settings`` in the reference's order, and where its value came from.

    ``config_file`` (``settings_file``), ``options`` and ``environ`` are what ``settings`` were
    read from (the settings file; the command line's overrides; the environment), in order of
    precedence: an option, then the environment, then the file, else the default.
    """
    environ = os.environ if environ is None else environ
    env = {key.upper(): value for key, value in environ.items()}
    in_file = _settings_file_values(config_file) if config_file is not None else {}
    shown = []
    for variable, path, _ in _variables():
        value: Any = settings
        for name in path:
            value = getattr(value, name)
        origin: Literal["option", "environment", "file", "default"] = "default"
        if path[0] in (options or {}):
            origin = "option"
        elif variable in env or (len(path) == 2 and path[1] in _json_mapping(env.get(f"NEWSAGG_{path[0].upper()}"))):
            origin = "environment"
        elif _has_path(in_file, path):
            origin = "file"
        shown.append(SettingInForce(variable, _shown(value), origin))
    return shown


def _shown(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return "**********" if value.get_secret_value() else ""
    if isinstance(value, Path):
        return str(value)
    return _masked(value)


def _json_mapping(text: str | None) -> dict[str, Any]:
    """A group given whole as one JSON variable (``NEWSAGG_FETCH='{"read_timeout": 30}'``)."""
    import json

    try:
        loaded = json.loads(text) if text else {}
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _has_path(mapping: Mapping[str, Any], path: tuple[str, ...]) -> bool:
    for name in path:
        if not isinstance(mapping, Mapping) or name not in mapping:
            return False
        mapping = mapping[name]
    return True


#: The ``NEWSAGG_*`` variables this project's own files use that are not settings: the settings
#: file, the DAGs' schedules, docker-compose.yml's and .env.example's, and the scripts', tests' and
#: benchmarks'. Several are close to a setting's name on purpose (``NEWSAGG_WEB_PORT`` is published
#: as the container's ``NEWSAGG_WEB__PORT``); tests/test_docs.py keeps this list whole.
OTHER_VARIABLES = frozenset({
    "NEWSAGG_CONFIG", "NEWSAGG_SCHEDULE", "NEWSAGG_MAINTENANCE_SCHEDULE", "NEWSAGG_FETCH_POOL_SLOTS",
    "NEWSAGG_DB_NAME", "NEWSAGG_DB_PASSWORD", "NEWSAGG_ES_PASSWORD", "NEWSAGG_IMAGE_TAG", "NEWSAGG_WEB_PORT",
    "NEWSAGG_WEB_MEM_LIMIT", "NEWSAGG_WEB_ROOT_PATH", "NEWSAGG_WEB_TRUSTED_PROXIES",
    "NEWSAGG_ES_URL", "NEWSAGG_ES_CACHE", "NEWSAGG_PG_URL", "NEWSAGG_PG_CACHE", "NEWSAGG_PG_BINDIR",
    "NEWSAGG_EVAL_TRAFILATURA", "NEWSAGG_EVAL_FUNDUS", "NEWSAGG_EVAL_WCXB",
})


def _misspelt_variables(environ: Mapping[str, str]) -> list[str]:
    """A problem for each ``NEWSAGG_*`` variable that is no setting but is named like one.

    pydantic-settings ignores a variable that is neither a setting nor in a group (it checks the
    names within a group), so a typo left the default in force without a word.
    """
    settings = {variable for variable, _, _ in _variables()}
    groups = {variable.split("__")[0] for variable in settings if "__" in variable}
    bare = {variable.removeprefix("NEWSAGG_"): variable for variable in settings | groups}
    problems = []
    for key in environ:
        name = key.upper()  # as pydantic-settings reads them
        if not name.startswith("NEWSAGG_") or name in settings or name in groups or name in OTHER_VARIABLES:
            continue  # a group may be given whole, as JSON
        if "__" in name and name.split("__")[0] in groups:
            continue  # checked by the group
        close = difflib.get_close_matches(name.removeprefix("NEWSAGG_"), bare, n=1, cutoff=0.8)
        if close:
            problems.append(f"{name} is not a setting (did you mean {bare[close[0]]}?)")
    return sorted(problems)


def _settings_file_values(path: Path) -> dict[str, Any]:
    """What a settings file says, as read; ``ConfigError`` unless it is YAML mapping names to settings."""
    import yaml

    from pipeline import yamlfiles
    from pipeline.errors import ConfigError

    try:
        loaded = yamlfiles.load(path.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as exc:
        where = f" at line {exc.problem_mark.line + 1}" if exc.problem_mark else ""
        raise ConfigError(f"settings file {path}: invalid YAML{where}: {exc.problem}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"settings file {path} is not YAML: {exc}") from None
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(f"settings file {path} is not a mapping of settings (`name: value` lines, "
                          "a group's settings indented under its name)")
    return loaded or {}


def _not_json(group: str, environ: Mapping[str, str]) -> list[str]:
    """The variables of the setting or group ``group`` that pydantic-settings reads as JSON (the group
    given whole, a list) and whose value is not JSON."""
    import json

    env = {key.upper(): value for key, value in environ.items()}
    names = [f"NEWSAGG_{group.upper()}"] + [
        variable for variable, path, field in _variables() if path[0] == group and _holds_json(field.annotation)]
    unreadable = []
    for name in names:
        try:
            if name in env:
                json.loads(env[name])
        except ValueError:
            unreadable.append(name)
    return unreadable


def _keys_given_twice(environ: Mapping[str, str]) -> list[str]:
    """What the JSON of a group given whole (``NEWSAGG_FETCH='{...}'``) gives twice: JSON readers keep
    the last, as YAML readers do (see yamlfiles), so the first was dropped without a word."""
    env = {key.upper(): value for key, value in environ.items()}
    groups = {variable.split("__")[0] for variable, path, _ in _variables() if len(path) > 1}
    problems = []
    for name in sorted(groups & env.keys()):
        try:
            problems += [f"{name} gives {key!r} twice" for key in _repeated_keys(env[name])]
        except ValueError:
            pass  # not JSON: said so by load_settings
    return problems


def _repeated_keys(text: str) -> list[str]:
    """The keys an object of the JSON ``text`` gives more than once; ``ValueError`` if it is not JSON."""
    import json

    repeated: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in items]
        repeated.extend(key for n, key in enumerate(keys) if key in keys[:n])
        return dict(items)

    json.loads(text, object_pairs_hook=pairs)
    return repeated


def _holds_json(annotation: Any) -> bool:
    """Whether a field of this type is read from the environment as JSON: a list or a mapping."""
    kinds = get_args(annotation) if isinstance(annotation, UnionType) else (annotation,)
    return any(get_origin(kind) in (list, dict, set, tuple) for kind in kinds)


def _problem(err: ErrorDetails) -> str:
    where = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden" and where in _RETIRED:
        return f"{where}: no longer a setting, replaced by {_RETIRED[where]}"
    if err["type"] == "value_error":  # our own validators' words, without pydantic's "Value error, "
        return f"{where}: {err['ctx']['error']}"
    return f"{where}: {err['msg']}"
