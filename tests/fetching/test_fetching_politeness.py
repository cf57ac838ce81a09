"""Per-domain concurrency, politeness delay and fetch_all over real HTTP."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from types import SimpleNamespace
from typing import TYPE_CHECKING

import pytest

from arrivals import assert_spaced

from pipeline.errors import (
    BlockedAddressError,
    FetchError,
    GoneError,
    PermanentFetchError,
    TransientFetchError,
)
from pipeline.fetching import Fetcher, politeness
from pipeline.models import Fetched

if TYPE_CHECKING:
    from conftest import Handler, Server

MakeFetcher = Callable[..., Fetcher]


class DomainGauge:
    """Counts requests in flight per registrable domain (last two labels of Host)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.peak_total = 0

    def slow(self, h: Handler, seconds: float = 0.25) -> None:
        domain = ".".join(h.headers["Host"].rsplit(":", 1)[0].split(".")[-2:])
        with self.lock:
            self.active[domain] += 1
            self.peak[domain] = max(self.peak[domain], self.active[domain])
            self.peak_total = max(self.peak_total, sum(self.active.values()))
        time.sleep(seconds)
        with self.lock:
            self.active[domain] -= 1
        h.reply(200, b"ok")


def test_per_domain_concurrency_is_bounded(server: Server, make_fetcher: MakeFetcher) -> None:
    gauge = DomainGauge()
    server.routes["/slow"] = gauge.slow
    hosts = ["a.example.com", "b.example.com", "www.example.com", "example.com"] * 2 + ["news.example.org"] * 4
    urls = [server.url(f"/slow?{i}", host=h) for i, h in enumerate(hosts)]
    fetcher = make_fetcher(concurrency=8, per_domain_concurrency=2)

    results = dict(fetcher.fetch_all(urls))

    assert all(isinstance(r, Fetched) for r in results.values()) and len(results) == len(urls)
    assert gauge.peak["example.com"] == 2  # all *.example.com hosts share one budget
    assert gauge.peak["example.org"] == 2
    assert gauge.peak_total == 4  # the other domain ran alongside


def test_total_concurrency_is_bounded(server: Server, make_fetcher: MakeFetcher) -> None:
    gauge = DomainGauge()
    server.routes["/slow"] = gauge.slow
    urls = [server.url("/slow", host=f"site{i}.test") for i in range(6)]

    results = list(make_fetcher(concurrency=2, per_domain_concurrency=2).fetch_all(urls))

    assert len(results) == 6 and gauge.peak_total == 2


def test_politeness_delay_spaces_requests_to_one_domain(server: Server, make_fetcher: MakeFetcher) -> None:
    server.routes["/p"] = lambda h: h.reply(200, b"ok")
    delay = 0.2
    same = [server.url(f"/p?{i}", host=h) for i, h in enumerate(["a.example.com", "b.example.com"] * 2)]
    other = server.url("/p?other", host="other.test")
    fetcher = make_fetcher(concurrency=4, per_domain_concurrency=4, politeness_delay=delay)

    started = time.monotonic()
    results = list(fetcher.fetch_all([*same, other]))

    assert len(results) == 5
    hits = server.hits("/p")
    starts = sorted(s.at for s in hits if s.host.endswith("example.com"))
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert len(starts) == 4
    assert_spaced(gaps, delay)
    other_at = next(s.at for s in hits if s.host == "other.test")
    assert other_at - started < delay  # another domain is not held back


def test_fetch_all_yields_each_error_and_carries_on(server: Server, make_fetcher: MakeFetcher) -> None:
    server.routes["/ok"] = lambda h: h.reply(200, b"ok")
    server.routes["/gone"] = lambda h: h.reply(410)
    server.routes["/boom"] = lambda h: h.reply(503)
    resolver = lambda host, port: ["10.0.0.8"] if host == "intranet.test" else ["127.0.0.1"]  # noqa: E731
    urls = [
        server.url("/ok"),
        server.url("/missing"),
        server.url("/gone"),
        server.url("/boom"),
        server.url("/", host="intranet.test"),
        "ftp://example.com/file",
        server.url("/ok", host="second.test"),
    ]

    results: dict[str, Fetched | FetchError] = dict(make_fetcher(resolver=resolver).fetch_all(urls))

    assert set(results) == set(urls)
    expected = [Fetched, PermanentFetchError, GoneError, TransientFetchError, BlockedAddressError,
                BlockedAddressError, Fetched]
    assert [type(results[u]) for u in urls] == expected


def test_fetch_all_can_be_abandoned(server: Server, make_fetcher: MakeFetcher) -> None:
    gauge = DomainGauge()
    server.routes["/slow"] = gauge.slow
    urls = [server.url(f"/slow?{i}", host="one.test") for i in range(40)]
    fetcher = make_fetcher(concurrency=2, per_domain_concurrency=2)

    started = time.monotonic()
    results = fetcher.fetch_all(urls)
    first = next(results)
    results.close()  # stops submitting; what has not started is cancelled

    assert isinstance(first[1], Fetched)
    assert time.monotonic() - started < 2.5  # all 40, two at a time: 5 s
    assert len(server.hits("/slow")) < 10


def test_a_release_wakes_one_waiting_request_of_its_domain(monkeypatch: pytest.MonkeyPatch) -> None:
    """Waking every waiting thread on each release cost a run's fetching a third of its CPU time."""
    waits = {"entered": 0, "woken": 0}

    class Counting(threading.Condition):
        def wait(self, timeout: float | None = None) -> bool:
            waits["entered"] += 1  # under the condition's lock
            try:
                return super().wait(timeout)
            finally:
                waits["woken"] += 1

    monkeypatch.setattr(politeness, "threading", SimpleNamespace(Lock=threading.Lock, Condition=Counting))
    limiter = politeness.DomainLimiter(total=100, per_domain=1, delay=0.0)
    holders: list[int] = []
    proceed = threading.Semaphore(0)

    def one_request() -> None:
        limiter.acquire("example.com")
        holders.append(1)
        proceed.acquire()  # holds its slot until the test lets it go
        limiter.release("example.com")

    def until(done: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 30
        while not done() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert done()

    def waiting() -> int:
        return waits["entered"] - waits["woken"]

    limiter.acquire("example.com")
    threads = [threading.Thread(target=one_request) for _ in range(8)]
    for thread in threads:
        thread.start()
    until(lambda: waiting() == 8)  # every request waits its turn
    limiter.release("example.com")
    for n in range(8):
        until(lambda: len(holders) == n + 1 and waiting() == 7 - n)  # one holds the slot, the others wait again
        proceed.release()
    for thread in threads:
        thread.join(timeout=30)
    assert waits["woken"] == 8  # each woke once, when its turn came
