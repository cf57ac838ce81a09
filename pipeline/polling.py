"""When to poll a feed next, and when to give up on it.

Publishers tell us how often to come back (Cache-Control, Expires, Retry-After, RSS
``ttl``); failing feeds back off exponentially and are retired after a 410 or too many
consecutive failures.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

from pipeline.errors import FetchError, GoneError, TransientFetchError
from pipeline.models import FeedSource, Fetched
from pipeline.settings import FeedSettings

_MAX_AGE = re.compile(r"max-age\s*=\s*(\d+)", re.IGNORECASE)


def next_poll_after_success(
    feed: FeedSource,
    fetched: Fetched,
    settings: FeedSettings,
    now: datetime,
    *,
    ttl_minutes: int | None = None,
) -> datetime:
    """The feed's own interval, stretched to what the publisher asked for, within the configured bounds."""
    interval = float(feed.poll_interval or settings.default_poll_interval)
    asked = [interval]
    if match := _MAX_AGE.search(fetched.headers.get("cache-control", "")):
        asked.append(float(match.group(1)))
    if expires := _http_date(fetched.headers.get("expires")):
        asked.append((expires - now).total_seconds())
    if ttl_minutes:
        asked.append(ttl_minutes * 60.0)
    seconds = min(max(max(asked), settings.min_poll_interval), settings.max_poll_interval)
    return now + timedelta(seconds=seconds)


def next_poll_after_failure(
    feed: FeedSource, error: FetchError | Exception, failures: int, settings: FeedSettings, now: datetime
) -> datetime:
    """Exponential backoff from the feed's interval, never sooner than the server's Retry-After."""
    interval = float(feed.poll_interval or settings.default_poll_interval)
    seconds = min(interval * 2 ** max(failures - 1, 0), settings.max_poll_interval)
    if isinstance(error, TransientFetchError) and error.retry_after is not None:
        seconds = max(seconds, error.retry_after)
    return now + timedelta(seconds=seconds)


def should_retire(error: Exception, failures: int, settings: FeedSettings) -> bool:
    """A 410 retires a feed at once; anything else after ``retire_after_failures`` in a row."""
    return isinstance(error, GoneError) or failures >= settings.retire_after_failures


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo else None
