"""When to poll a feed next, and when to give up on it.

Publishers tell us how often to come back (Cache-Control, Expires, Retry-After, RSS
``ttl``); within those limits each feed's interval adapts to how often it actually
publishes (``adapt_interval``). Failing feeds back off exponentially and are retired
after a 410, or once their weighted count of consecutive failures reaches
``retire_after_failures`` and they have been failing for ``retire_after_days``: an
error that points at the feed itself (404, not a feed) weighs more than one that may
pass (a timeout, a 503). Feeds are polled in batches of whole registrable domains
(``feed_batches``), one Airflow task each.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pipeline.errors import FetchError, GoneError, TransientFetchError
from pipeline.fetching import registrable_domain
from pipeline.models import FeedSource, Fetched
from pipeline.settings import FeedSettings

if TYPE_CHECKING:
    from pipeline.storage import FeedState

_MAX_AGE = re.compile(r"max-age\s*=\s*(\d+)", re.IGNORECASE)


def next_poll_after_success(
    feed: FeedSource,
    fetched: Fetched,
    settings: FeedSettings,
    now: datetime,
    *,
    ttl_minutes: int | None = None,
    interval: float | None = None,
) -> datetime:
    """The feed's interval, stretched to what the publisher asked for, within the configured bounds.

    ``interval`` is the learned interval (``adapt_interval``); default: the feed's configured one.
    """
    interval = float(interval or feed.poll_interval or settings.default_poll_interval)
    asked = [interval]
    if match := _MAX_AGE.search(fetched.headers.get("cache-control", "")):
        asked.append(float(match.group(1)))
    if expires := _http_date(fetched.headers.get("expires")):
        asked.append((expires - now).total_seconds())
    if ttl_minutes:
        asked.append(ttl_minutes * 60.0)
    seconds = min(max(max(asked), settings.min_poll_interval), settings.max_poll_interval)
    return now + timedelta(seconds=seconds)


def adapt_interval(
    feed: FeedSource,
    settings: FeedSettings,
    *,
    current: float | None,
    new_entries: int,
    now: datetime,
    last_success_at: datetime | None,
    last_new_entry_at: datetime | None,
) -> int:
    """The feed's next polling interval in seconds, learned from how often it publishes.

    Each successful poll gives a target: the time since the previous successful poll
    divided by the new entries it found, or, when it found none, the time since the
    last new entry (a feed quiet for six hours is not worth polling every five
    minutes; one that never brought anything new backs off). The interval moves halfway to the target, so one burst or one quiet
    spell does not swing it, and stays within ``min_poll_interval`` and
    ``max_poll_interval``. The first poll (its entries are a backlog, not a rate) and
    ``adaptive_polling: false`` keep the configured interval.

    Args:
        feed: the subscription (its ``poll_interval`` is the starting point).
        settings: bounds and ``adaptive_polling``.
        current: the interval learned so far, or None.
        new_entries: entries this poll found that were never seen before (0 for a 304).
        now: the time of this poll.
        last_success_at: the previous successful poll, None on the first.
        last_new_entry_at: when a poll last found new entries, None if never.
    """
    configured = float(feed.poll_interval or settings.default_poll_interval)
    if not settings.adaptive_polling:
        return round(configured)
    interval = current or configured
    if last_success_at is not None and now > last_success_at:
        elapsed = (now - last_success_at).total_seconds()
        if new_entries > 0:
            target = elapsed / new_entries
        elif last_new_entry_at is not None:
            target = (now - last_new_entry_at).total_seconds()
        else:  # nothing new since we started watching: back off
            target = 2 * elapsed
        interval = (interval + target) / 2
    return round(min(max(interval, settings.min_poll_interval), settings.max_poll_interval))


def next_poll_after_failure(
    feed: FeedSource, error: FetchError | Exception, failures: int, settings: FeedSettings, now: datetime
) -> datetime:
    """Exponential backoff from the feed's interval, never sooner than the server's Retry-After."""
    interval = float(feed.poll_interval or settings.default_poll_interval)
    seconds = min(interval * 2 ** max(failures - 1, 0), settings.max_poll_interval)
    if isinstance(error, TransientFetchError) and error.retry_after is not None:
        seconds = max(seconds, error.retry_after)
    return now + timedelta(seconds=seconds)


def failure_weight(error: Exception, settings: FeedSettings) -> float:
    """How much one failed poll counts towards retirement.

    1 for trouble that may pass (timeouts, refused connections, 429, 5xx);
    ``permanent_failure_weight`` for errors that point at the feed itself (404 and
    other 4xx, a refused address, a document that is not a feed).
    """
    return 1.0 if isinstance(error, TransientFetchError) else settings.permanent_failure_weight


def should_retire(error: Exception, failures: float, failing_for: timedelta, settings: FeedSettings) -> bool:
    """A 410 retires a feed at once; anything else once ``failures`` reaches ``retire_after_failures``
    and the feed has been failing for ``retire_after_days``.

    ``failures`` is the weighted count of consecutive failures, this one included
    (see ``failure_weight``); ``failing_for`` the time since the first of them.
    """
    if isinstance(error, GoneError):
        return True
    return failures >= settings.retire_after_failures and failing_for >= timedelta(days=settings.retire_after_days)


@dataclass(frozen=True, slots=True)
class FeedBatch:
    """Feeds polled together by one task: every feed of each of its registrable domains."""

    domains: tuple[str, ...]
    feeds: tuple[FeedSource, ...]

    @property
    def label(self) -> str:
        """The first domain and the size, e.g. ``example.com +3 domains, 180 feeds``."""
        more = f" +{len(self.domains) - 1} domains" if len(self.domains) > 1 else ""
        return f"{self.domains[0]}{more}, {len(self.feeds)} feed{'s' if len(self.feeds) != 1 else ''}"


def feed_batches(sources: Sequence[FeedSource], size: int) -> list[FeedBatch]:
    """The feeds in batches of at most ``size``, each domain's feeds in one batch.

    A domain is never split, so its politeness (delay, concurrency) is kept by one
    fetcher; a domain with more than ``size`` feeds is a batch of its own. Domains are
    packed largest first, each into the batch being filled if it fits, so every two
    consecutive batches hold more than ``size`` feeds: fewer than ``2 * len(sources) / size + 1``
    batches (Airflow maps at most ``core.max_map_length``, 1024 by default).
    """
    by_domain: dict[str, list[FeedSource]] = {}
    for feed in sources:
        by_domain.setdefault(registrable_domain(urlsplit(feed.url).hostname or ""), []).append(feed)
    batches: list[FeedBatch] = []
    domains: list[str] = []
    feeds: list[FeedSource] = []
    for domain, group in sorted(by_domain.items(), key=lambda item: (-len(item[1]), item[0])):
        if feeds and len(feeds) + len(group) > size:
            batches.append(FeedBatch(tuple(domains), tuple(feeds)))
            domains, feeds = [], []
        domains.append(domain)
        feeds.extend(group)
    if feeds:
        batches.append(FeedBatch(tuple(domains), tuple(feeds)))
    return batches


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo else None


# The columns of `newsagg feeds status` and of the web interface's /feeds, in order.
STATUS_COLUMNS = ("feed", "status", "fails", "score", "every", "entries", "waiting", "last success", "next poll",
                  "last error")


def status_rows(
    states: Sequence[FeedState], waiting: Mapping[str, int], settings: FeedSettings, now: datetime
) -> list[tuple[str, ...]]:
    """Each feed's health as text, in ``STATUS_COLUMNS`` order (times in UTC); ``waiting``: the entries
    of each feed whose page is still to be fetched (``FeedStore.waiting_entries``)."""
    return [_status_row(state, settings, now, waiting.get(state.source.id, 0)) for state in states]


def _status_row(state: FeedState, settings: FeedSettings, now: datetime, waiting: int) -> tuple[str, ...]:
    """One feed's health as text, in ``STATUS_COLUMNS`` order (times in UTC)."""
    return (
        state.source.id,
        state.status,
        str(state.consecutive_failures),
        f"{state.failure_score:g}/{settings.retire_after_failures}",
        duration_text(state.learned_interval or state.source.poll_interval or settings.default_poll_interval),
        str(state.entries_seen),
        str(waiting),
        _when(state.last_success_at) if state.last_success_at else "never" if state.last_attempt_at else "-",
        f"never ({state.status})" if state.status in ("retired", "removed") else "now"
        if state.next_attempt_at is None or state.next_attempt_at <= now else _when(state.next_attempt_at),
        " ".join((state.last_error or "").split()),
    )


def duration_text(seconds: float) -> str:
    """``900`` -> ``15m``, ``5400`` -> ``1h30m``."""
    minutes = round(seconds / 60)
    days, rest = divmod(minutes, 1440)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "", f"{minutes}m" if minutes else ""]
    return "".join(parts) or f"{round(seconds)}s"


def _when(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
