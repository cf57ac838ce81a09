"""Politeness: registrable domains, per-domain limits and spacing, robots.txt verdicts."""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

import tldextract
from protego import Protego

from pipeline.errors import StoreError

logger = logging.getLogger(__name__)

_extractor_lock = threading.Lock()
_extractor: tldextract.TLDExtract | None = None


def _tld_extractor() -> tldextract.TLDExtract:
    global _extractor
    with _extractor_lock:
        if _extractor is None:
            # The bundled public-suffix snapshot only: no network, no cache files.
            _extractor = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
        return _extractor


@lru_cache(maxsize=8192)
def registrable_domain(host: str) -> str:
    """The registrable domain of ``host`` (``a.b.example.co.uk`` -> ``example.co.uk``).

    IP literals, ``localhost`` and names without a public suffix are their own domain.
    Remembered for the hosts seen last: a run asks about the same few hundred hosts for
    every request, page and template, and a public-suffix lookup costs more than most of them.
    """
    name = host.strip().strip("[]").rstrip(".").lower()
    if not name or name == "localhost" or name.endswith(".localhost"):
        return name
    try:
        ipaddress.ip_address(name)
        return name
    except ValueError:
        pass
    parts = _tld_extractor().extract_str(name)
    if parts.domain and parts.suffix:
        return f"{parts.domain}.{parts.suffix}"
    return name



@dataclass(slots=True)
class DomainState:
    turn: threading.Condition  # waited on by the requests to this domain that must wait their turn
    in_flight: int = 0
    next_start: float = 0.0
    waiting: int = 0


class Halted(Exception):
    """A request not started because its limiter was halted."""


class DomainLimiter:
    """Bounds requests in flight overall and per registrable domain, and spaces their starts.

    A request waits on its own domain's turn, and a release wakes one request of that
    domain: waking every waiting thread on each release (24 of them for one site at the
    default limits) cost the run a third of its CPU time per page fetched.

    Args:
        total: requests in flight at once, across domains.
        per_domain: requests in flight at once to one domain (in this process).
        delay: seconds between the starts of two requests to one domain.
        clock: reserves a domain's next start among every process sharing it (the store's
            ``reserve_domain_slot``): called with (domain, delay), returns the seconds to wait
            before the request may start. Without it the spacing holds in this process.
    """

    def __init__(
        self, total: int, per_domain: int, delay: float, clock: Callable[[str, float], float] | None = None
    ) -> None:
        self._total_limit = total
        self._per_domain = per_domain
        self._delay = delay
        self._clock = clock
        self._lock = threading.Lock()
        self._any_slot = threading.Condition(self._lock)  # waited on while every request slot is taken
        self._total = 0
        self._domains: dict[str, DomainState] = {}
        self._min_delays: dict[str, float] = {}  # per-domain floors (robots.txt Crawl-delay)
        self._halted = False

    def set_min_delay(self, domain: str, seconds: float) -> None:
        """Space ``domain``'s starts at least ``seconds`` apart (the largest floor asked for wins)."""
        with self._lock:
            self._min_delays[domain] = max(seconds, self._min_delays.get(domain, 0.0))

    def halt(self) -> None:
        """Refuse every request that has not started, from now on: the run is stopping."""
        with self._lock:
            self._halted = True
            for state in self._domains.values():
                state.turn.notify_all()
            self._any_slot.notify_all()

    def acquire(self, domain: str) -> None:
        """Wait for a slot and ``domain``'s turn.

        Raises:
            Halted: ``halt`` was called (before or while waiting).
        """
        with self._lock:
            while True:
                if self._halted:
                    raise Halted(domain)
                state = self._domains.get(domain)
                if state is None:
                    state = self._domains[domain] = DomainState(threading.Condition(self._lock))
                now = time.monotonic()
                wait_for = state.next_start - now
                if wait_for > 0 or state.in_flight >= self._per_domain:
                    state.waiting += 1
                    state.turn.wait(timeout=wait_for if wait_for > 0 else None)
                    state.waiting -= 1
                elif self._total >= self._total_limit:
                    self._any_slot.wait()
                else:
                    state.in_flight += 1
                    self._total += 1
                    delay = max(self._delay, self._min_delays.get(domain, 0.0))
                    state.next_start = now + delay
                    if state.waiting and state.in_flight < self._per_domain:
                        state.turn.notify()  # a slot is still free: the next request of the domain may try
                    break
        if self._clock is not None and delay > 0:
            _wait_for_shared_slot(self._clock, domain, delay)

    def release(self, domain: str) -> None:
        with self._lock:
            state = self._domains[domain]
            state.in_flight -= 1
            self._total -= 1
            state.turn.notify()
            self._any_slot.notify_all()  # its waiters may be of any domain
            if len(self._domains) > 1024:  # forget idle domains so a long run stays small
                now = time.monotonic()
                idle = [n for n, s in self._domains.items() if not s.in_flight and not s.waiting and s.next_start <= now]
                for name in idle:
                    del self._domains[name]


def _wait_for_shared_slot(clock: Callable[[str, float], float], domain: str, delay: float) -> None:
    """Sleep until the slot the other processes left us; a store that cannot answer leaves the local spacing."""
    try:
        wait = clock(domain, delay)
    except StoreError as exc:
        logger.warning("%s: cannot reserve a request slot in the store (%s); spacing this process only", domain, exc)
        return
    time.sleep(wait)


@dataclass(frozen=True, slots=True)
class RobotsRules:
    """What one host's robots.txt says: rules, allow-all, or "do not crawl for now"."""

    parser: Protego | None = None  # None and no reason: allow everything
    unavailable: str | None = None  # 5xx / unreachable: disallow everything this run
    blocked: str | None = None  # the address guard refused robots.txt itself



def interleave_by_domain(urls: Iterable[str]) -> list[str]:
    """Round-robin over registrable domains, keeping each domain's order."""
    groups: OrderedDict[str, list[str]] = OrderedDict()
    for url in urls:
        try:
            host = urlsplit(url).hostname or ""
        except ValueError:
            host = ""
        groups.setdefault(registrable_domain(host), []).append(url)
    out: list[str] = []
    lists = [iter(group) for group in groups.values()]
    while lists:
        still: list[Iterator[str]] = []
        for it in lists:
            nxt = next(it, None)
            if nxt is not None:
                out.append(nxt)
                still.append(it)
        lists = still
    return out
