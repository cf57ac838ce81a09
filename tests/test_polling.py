from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pipeline import polling
from pipeline.errors import FeedParseError, GoneError, PermanentFetchError, TransientFetchError
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


SPAN = timedelta(days=3)  # retire_after_days by default


def test_gone_retires_at_once_other_errors_after_the_limit() -> None:
    assert polling.should_retire(GoneError("u", "410"), 1, timedelta(0), SETTINGS)
    assert not polling.should_retire(PermanentFetchError("u", "404"), 2, SPAN, SETTINGS)
    assert polling.should_retire(PermanentFetchError("u", "404"), 3, SPAN, SETTINGS)


def test_retirement_needs_failures_spread_over_the_span() -> None:
    # Thirty failures within minutes (a publisher down for a while) do not retire a feed...
    assert not polling.should_retire(TransientFetchError("u", "503"), 30, timedelta(minutes=5), SETTINGS)
    assert not polling.should_retire(PermanentFetchError("u", "404"), 30, SPAN - timedelta(seconds=1), SETTINGS)
    # ...failures over three days do; the span is a setting.
    assert polling.should_retire(TransientFetchError("u", "503"), 3, SPAN, SETTINGS)
    one_day = SETTINGS.model_copy(update={"retire_after_days": 1})
    assert polling.should_retire(TransientFetchError("u", "503"), 3, timedelta(days=1), one_day)


def adapt(current: float | None, new: int, since_poll: float | None, since_new: float | None,
          settings: FeedSettings = SETTINGS) -> int:
    return polling.adapt_interval(
        FEED, settings, current=current, new_entries=new, now=NOW,
        last_success_at=None if since_poll is None else NOW - timedelta(seconds=since_poll),
        last_new_entry_at=None if since_new is None else NOW - timedelta(seconds=since_new),
    )


def test_interval_adapts_to_how_often_the_feed_publishes() -> None:
    # First poll: its entries are a backlog, not a rate; the configured interval stands.
    assert adapt(None, 30, None, None) == 900
    # Four new items in 900 s: one every 225 s; halfway there, never below the minimum.
    assert adapt(900, 4, 900, 0) == 562
    assert adapt(562, 10, 562, 0) == 309
    assert adapt(309, 10, 309, 0) == 300
    # Nothing new for an hour: move halfway towards an hour.
    assert adapt(900, 0, 900, 3600) == 2250
    # Quiet for weeks: capped at the maximum.
    assert adapt(80000, 0, 80000, 30 * 86400) == 86400
    # One item per poll: steady.
    assert adapt(1800, 1, 1800, 1800) == 1800


def simulate(interval: int, every: float, polls: int) -> int:
    """Poll a feed publishing one item every ``every`` seconds; the interval after ``polls`` polls."""
    t, last_poll, last_new = 0.0, None, None
    for _ in range(polls):
        new = int(t // every) - (int(last_poll // every) if last_poll is not None else 0)
        interval = polling.adapt_interval(
            FEED, SETTINGS, current=interval, new_entries=new, now=NOW + timedelta(seconds=t),
            last_success_at=None if last_poll is None else NOW + timedelta(seconds=last_poll),
            last_new_entry_at=None if last_new is None else NOW + timedelta(seconds=last_new),
        )
        last_poll, last_new = t, t if new else last_new
        t += interval
    return interval


def test_a_quiet_feed_slows_down_and_a_busy_one_speeds_up_over_many_polls() -> None:
    # Every 2 h: polled about every hour or two, no longer every 15 minutes.
    assert 3600 <= simulate(900, 7200, 40) <= 2 * 7200
    # Every 5 min: polled as often as allowed.
    assert simulate(900, 300, 40) == SETTINGS.min_poll_interval
    # Once a week: as rarely as allowed.
    assert simulate(900, 7 * 86400, 60) == SETTINGS.max_poll_interval


def test_adaptive_polling_can_be_turned_off() -> None:
    fixed = SETTINGS.model_copy(update={"adaptive_polling": False})
    assert adapt(300, 10, 900, 0, fixed) == 900
    assert adapt(900, 0, 900, 86400, fixed) == 900


def test_the_learned_interval_is_stretched_by_the_publisher_hints() -> None:
    assert polling.next_poll_after_success(FEED, fetched(), SETTINGS, NOW, interval=4000) == NOW + timedelta(seconds=4000)
    assert polling.next_poll_after_success(FEED, fetched(**{"cache-control": "max-age=7200"}), SETTINGS, NOW,
                                           interval=400) == NOW + timedelta(hours=2)
    assert polling.next_poll_after_success(FEED, fetched(), SETTINGS, NOW, interval=10) == NOW + timedelta(seconds=300)


def test_failures_are_weighted_by_kind() -> None:
    assert polling.failure_weight(TransientFetchError("u", "timeout"), SETTINGS) == 1.0
    assert polling.failure_weight(TransientFetchError("u", "429", status=429, retry_after=60), SETTINGS) == 1.0
    assert polling.failure_weight(PermanentFetchError("u", "404", status=404), SETTINGS) == 2.0
    assert polling.failure_weight(FeedParseError("feed f", "HTML page, not a feed"), SETTINGS) == 2.0
    # With retirement at 3: two 404s retire a feed, two timeouts do not.
    assert polling.should_retire(PermanentFetchError("u", "404"), 2.0 + 2.0, SPAN, SETTINGS)
    assert not polling.should_retire(TransientFetchError("u", "timeout"), 1.0 + 1.0, SPAN, SETTINGS)


def feed(n: int, url: str) -> FeedSource:
    return FeedSource(id=f"f{n}", name=f"F{n}", url=url)


def test_feeds_are_batched_by_registrable_domain_within_the_size() -> None:
    big = [feed(n, f"https://news{n % 3}.bignews.com/{n}.xml") for n in range(7)]  # one domain, 3 hosts
    small = [feed(10 + n, f"http://127.0.0.{n + 1}:8000/feed.xml") for n in range(5)]  # five domains
    mid = [feed(20 + n, f"https://www.mid.co.uk/{n}.rss") for n in range(3)]

    batches = polling.feed_batches([*small, *big, *mid], size=4)

    # The domain larger than the size is a batch of its own; the rest are packed, largest first.
    assert [b.domains for b in batches] == [
        ("bignews.com",), ("mid.co.uk", "127.0.0.1"), ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"),
    ]
    assert [len(b.feeds) for b in batches] == [7, 4, 4]
    assert sorted(f.id for b in batches for f in b.feeds) == sorted(f.id for f in [*small, *big, *mid])
    assert [b.label for b in batches] == [
        "bignews.com, 7 feeds", "mid.co.uk +1 domains, 4 feeds", "127.0.0.2 +3 domains, 4 feeds",
    ]
    assert polling.feed_batches([], size=4) == []


def test_batches_stay_few_for_many_small_domains() -> None:
    sources = [feed(n, f"https://site{n}.com/feed.xml") for n in range(5000)]
    batches = polling.feed_batches(sources, size=200)
    assert [len(b.feeds) for b in batches] == [200] * 25
