"""Politeness: registrable domains, per-domain limits and spacing, robots.txt verdicts."""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
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


def registrable_domain(host: str) -> str:
    """The registrable domain of ``host`` (``a.b.example.co.uk`` -> ``example.co.uk``).

    IP literals, ``localhost`` and names without a public suffix are their own domain.
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
    in_flight: int = 0
    next_start: float = 0.0


class DomainLimiter:
    """Bounds requests in flight overall and per registrable domain, and spaces their starts.

    Args:
        total: requests in flight at once, across domains.
        per_domain: requests in flight at once to one domain (in this process).
        delay: seconds between the starts of two requests to one domain.
        clock: reserves a domain's next start among every process sharing it (the store's
            ``reserve_domain_slot``): called with (domain, delay), returns when the request
            may start, in seconds since the epoch. Without it the spacing holds in this process.
    """

    def __init__(
        self, total: int, per_domain: int, delay: float, clock: Callable[[str, float], float] | None = None
    ) -> None:
        self._total_limit = total
        self._per_domain = per_domain
        self._delay = delay
        self._clock = clock
        self._cond = threading.Condition()
        self._total = 0
        self._domains: dict[str, DomainState] = {}
        self._min_delays: dict[str, float] = {}  # per-domain floors (robots.txt Crawl-delay)

    def set_min_delay(self, domain: str, seconds: float) -> None:
        """Space ``domain``'s starts at least ``seconds`` apart (the largest floor asked for wins)."""
        with self._cond:
            self._min_delays[domain] = max(seconds, self._min_delays.get(domain, 0.0))

    def acquire(self, domain: str) -> None:
        with self._cond:
            while True:
                state = self._domains.setdefault(domain, DomainState())
                now = time.monotonic()
                wait_for = state.next_start - now
                if wait_for <= 0 and state.in_flight < self._per_domain and self._total < self._total_limit:
                    state.in_flight += 1
                    self._total += 1
                    delay = max(self._delay, self._min_delays.get(domain, 0.0))
                    state.next_start = now + delay
                    break
                self._cond.wait(timeout=wait_for if wait_for > 0 else None)
        if self._clock is not None and delay > 0:
            _wait_for_shared_slot(self._clock, domain, delay)

    def release(self, domain: str) -> None:
        with self._cond:
            self._domains[domain].in_flight -= 1
            self._total -= 1
            if len(self._domains) > 1024:  # forget idle domains so a long run stays small
                now = time.monotonic()
                for name in [n for n, s in self._domains.items() if not s.in_flight and s.next_start <= now]:
                    del self._domains[name]
            self._cond.notify_all()


def _wait_for_shared_slot(clock: Callable[[str, float], float], domain: str, delay: float) -> None:
    """Sleep until the slot the other processes left us; a store that cannot answer leaves the local spacing."""
    try:
        start = clock(domain, delay)
    except StoreError as exc:
        logger.warning("%s: cannot reserve a request slot in the store (%s); spacing this process only", domain, exc)
        return
    time.sleep(max(0.0, start - time.time()))


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
