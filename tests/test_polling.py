from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pipeline import polling
from pipeline.errors import GoneError, PermanentFetchError, TransientFetchError
from pipeline.models import FeedSource, Fetched, Validators
from pipeline.settings import FeedSettings

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
FEED = FeedSource(id="f", name="F", url="https://f.example/rss", poll_interval=900)
SETTINGS = FeedSettings(min_poll_interval=300, max_poll_interval=86400, retire_after_failures=3)


def fetched(**headers: str) -> Fetched:
    return Fetched("u", "u", 200, b"", "application/rss+xml", Validators(), headers=headers)


def test_publisher_hints_stretch_the_interval_within_bounds() -> None:
    assert polling.next_poll_after_success(FEED, fetched(), SETTINGS, NOW) == NOW + timedelta(seconds=900)
    assert polling.next_poll_after_success(FEED, fetched(**{"cache-control": "public, max-age=3600"}), SETTINGS, NOW) \
        == NOW + timedelta(seconds=3600)
    expires = "Mon, 02 Nov 2026 11:00:00 GMT"
    assert polling.next_poll_after_success(FEED, fetched(expires=expires), SETTINGS, NOW) == NOW + timedelta(hours=2)
    assert polling.next_poll_after_success(FEED, fetched(), SETTINGS, NOW, ttl_minutes=60) == NOW + timedelta(hours=1)
    assert polling.next_poll_after_success(FEED, fetched(**{"cache-control": "max-age=999999"}), SETTINGS, NOW) \
        == NOW + timedelta(days=1)


def test_failures_back_off_exponentially_and_honour_retry_after() -> None:
    error = TransientFetchError("u", "503")
    delays = [polling.next_poll_after_failure(FEED, error, n, SETTINGS, NOW) - NOW for n in (1, 2, 3)]
    assert delays == [timedelta(seconds=900), timedelta(seconds=1800), timedelta(seconds=3600)]
    slow = TransientFetchError("u", "429", retry_after=7200)
    assert polling.next_poll_after_failure(FEED, slow, 1, SETTINGS, NOW) == NOW + timedelta(hours=2)


def test_gone_retires_at_once_other_errors_after_the_limit() -> None:
    assert polling.should_retire(GoneError("u", "410"), 1, SETTINGS)
    assert not polling.should_retire(PermanentFetchError("u", "404"), 2, SETTINGS)
    assert polling.should_retire(PermanentFetchError("u", "404"), 3, SETTINGS)
