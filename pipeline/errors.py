"""The exceptions the pipeline raises, and whether trying again can help.

    NewsaggError
    ├── ConfigError                 terminal: bad settings, feed list or input file
    ├── FetchError                  one URL could not be fetched
    │   ├── TransientFetchError     timeouts, connection errors, 429, 5xx: retried later
    │   └── PermanentFetchError     4xx, too large, wrong type, robots.txt: reported, skipped
    │       ├── BlockedAddressError the address guard refused the host (private, loopback...)
    │       └── GoneError           410: the publisher retired the URL
    ├── FeedParseError              terminal for that feed document: nothing usable in it
    ├── ExtractionError             terminal for that page: no usable text
    ├── StoreError                  the store cannot be opened or written (disk full, read-only)
    │   └── LockLost                transient: a stage lost the store's lock; it stopped writing
    └── SearchBackendError          the search index refused a request
        └── SearchUnavailable       transient: the backend is down; the outbox keeps the work

`transient` tells callers (our backoff, Airflow retries) whether a retry can help.
Messages name the feed or URL and never carry credentials.
"""

from __future__ import annotations


class NewsaggError(Exception):
    """Base of every error the pipeline raises on purpose."""

    transient: bool = False


class ConfigError(NewsaggError):
    """Settings, a feed list or an input file is unusable."""


class FetchError(NewsaggError):
    """A URL could not be fetched."""

    def __init__(self, url: str, reason: str, *, status: int | None = None) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason
        self.status = status


class TransientFetchError(FetchError):
    """The fetch may succeed later (timeout, connection refused, 429, 5xx)."""

    transient = True

    def __init__(
        self, url: str, reason: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(url, reason, status=status)
        self.retry_after = retry_after


class PermanentFetchError(FetchError):
    """Fetching this URL again will not help (404, oversized body, not allowed)."""


class BlockedAddressError(PermanentFetchError):
    """The address guard refused to connect to this host."""


class GoneError(PermanentFetchError):
    """The server answered 410 Gone."""


class FeedParseError(NewsaggError):
    """A feed document yielded no usable entries: ``source`` names the feed, ``reason`` says why."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(source, reason)  # both in args: the error crosses from parser processes
        self.source = source
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"


class ExtractionError(NewsaggError):
    """A page yielded no usable article text."""


class StoreError(NewsaggError):
    """The store cannot be opened or written."""


class LockLost(StoreError):
    """The connection holding the store's lock ended during locked work; what it wrote before is kept."""

    transient = True


class SearchBackendError(NewsaggError):
    """The search backend refused a request."""


class SearchUnavailable(SearchBackendError):
    """The search backend cannot be reached; what was not indexed stays in the outbox."""

    transient = True
