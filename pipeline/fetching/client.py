"""The fetcher every stage uses: one guarded, polite, bounded HTTP client."""

from __future__ import annotations

import email.utils
import http.cookiejar
import logging
import re
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timezone
from queue import SimpleQueue
from types import TracebackType
from typing import Any

import httpx
from protego import Protego

from pipeline.addresses import ALLOWED_SCHEMES, AddressPolicy, Resolver
from pipeline.errors import (
    BlockedAddressError,
    FetchError,
    GoneError,
    PermanentFetchError,
    TransientFetchError,
)
from pipeline.fetching.decoding import BoundedDecoder, UnsupportedEncoding
from pipeline.fetching.politeness import DomainLimiter, Halted, RobotsRules, interleave_by_domain, registrable_domain
from pipeline.fetching.transport import DEADLINE, GuardedTransport
from pipeline.models import Fetched, Validators
from pipeline.settings import FetchSettings
from pipeline.urls import DEFAULT_PORTS, canonicalize, redact_url

logger = logging.getLogger(__name__)

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_ROBOTS_CACHE_SIZE = 4096
# RFC 9309 asks crawlers to parse at least 500 KiB; more than that is ignored, not an error.
_ROBOTS_MAX_BYTES = 512 * 1024
# RFC 9309 2.2.1: the product token a robots.txt group names is letters, "_" and "-".
_PRODUCT_TOKEN = re.compile(r"[A-Za-z_-]+")


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After value (delta-seconds or HTTP-date), or None."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _media_type(content_type: str | None) -> str | None:
    if not content_type:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None



class _NoCookies(http.cookiejar.CookieJar):
    """The shared client's jar, which keeps no cookie: it must not carry one publisher's cookies into
    the next request. httpx hands it every response; with nothing to keep, nothing is parsed."""

    def __init__(self) -> None:
        super().__init__(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))

    def extract_cookies(self, response: Any, request: Any) -> None:
        pass

    def set_cookie(self, cookie: http.cookiejar.Cookie) -> None:
        pass


# --------------------------------------------------------------------------- the fetcher


class Fetcher:
    """Fetches URLs for every stage: guarded, polite, bounded, thread-safe."""

    def __init__(
        self,
        settings: FetchSettings,
        *,
        resolver: Resolver | None = None,
        domain_clock: Callable[[str, float], float] | None = None,
    ) -> None:
        """Build the HTTP client; ``resolver`` (host, port) -> addresses replaces DNS (tests).

        ``domain_clock`` spaces requests to a domain among every process sharing it (see
        ``DomainLimiter``); without it the politeness delay holds within this fetcher.

        Raises:
            ConfigError: an ``allowed_hosts`` entry cannot be parsed.
        """
        self._settings = settings
        policy = AddressPolicy(settings.allowed_hosts, resolver)
        self._transport = GuardedTransport(policy, verify_tls=settings.verify_tls, proxy=settings.proxy)
        self._client = httpx.Client(
            transport=self._transport,
            headers={"User-Agent": settings.user_agent, "Accept-Encoding": "gzip, deflate"},
            timeout=httpx.Timeout(
                connect=settings.connect_timeout,
                read=settings.read_timeout,
                write=settings.read_timeout,
                pool=settings.connect_timeout,
            ),
            follow_redirects=False,  # we follow hop by hop so every hop is checked
            trust_env=False,  # no proxy but fetch.proxy (the transport checks targets for it), no .netrc
            cookies=_NoCookies(),
        )
        self._limiter = DomainLimiter(
            settings.concurrency, settings.per_domain_concurrency, settings.politeness_delay, domain_clock
        )
        self._robots: OrderedDict[tuple[str, str, int], RobotsRules] = OrderedDict()
        self._robots_lock = threading.Lock()
        self._robots_loading: dict[tuple[str, str, int], threading.Lock] = {}
        # Groups are matched against our product token only ("newsagg"), not the whole
        # User-Agent header, whose comment words ("bot", a host name) must not select a group.
        token = _PRODUCT_TOKEN.match(settings.user_agent)
        self._robots_agent = token.group() if token else settings.user_agent
        registrable_domain("example.com")  # load the suffix list now, not in the first worker

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def halt(self) -> None:
        """Make no more requests: every fetch in flight, waiting for its turn or later fails at once
        (a TransientFetchError). For a run that is stopping."""
        self._limiter.halt()
        self._transport.halt()

    def close(self) -> None:
        """Close pooled connections; the fetcher cannot be used afterwards."""
        self._client.close()

    def fetch(
        self,
        url: str,
        *,
        validators: Validators | None = None,
        robots: bool = False,
        content_types: tuple[str, ...] | None = None,
    ) -> Fetched:
        """GET ``url``, following redirects hop by hop, each hop checked by the address guard.

        Args:
            url: an http or https URL.
            validators: ETag / Last-Modified from the previous fetch; sent as
                If-None-Match / If-Modified-Since.
            robots: obey robots.txt (for article pages; when ``respect_robots`` is on).
            content_types: accepted media types (``"text/html"``...); None accepts any.

        Returns:
            A ``Fetched`` with the 2xx body (normally 200) and the response's new
            validators, or status 304 with an empty body when ``validators`` matched.

        Raises:
            TransientFetchError: timeout, connection error, 408, 429, 5xx, robots.txt
                unreachable; ``retry_after`` is set from Retry-After when sent.
            PermanentFetchError: other 4xx, body over the cap, unexpected content type,
                too many redirects, redirect loop, robots.txt disallows.
            GoneError: 410.
            BlockedAddressError: a hop's scheme or address is refused.
        """
        try:
            return self._fetch(
                url,
                validators=validators,
                robots=robots and self._settings.respect_robots,
                content_types=content_types,
                body_limit=self._settings.max_body_bytes,
                truncate=False,
            )
        except BlockedAddressError as exc:
            # Not a warning here: the caller logs what the failure costs (one line per failed feed).
            logger.info("%s: %s", exc.url, exc.reason)
            raise
        except FetchError as exc:
            logger.debug("%s: %s", exc.url, exc.reason)
            raise

    def fetch_all(
        self,
        urls: Iterable[str],
        *,
        robots: bool = False,
        content_types: tuple[str, ...] | None = None,
        validators: Mapping[str, Validators] | None = None,
    ) -> Iterator[tuple[str, Fetched | FetchError]]:
        """Fetch many URLs in ``concurrency`` threads; yield (url, result or error) as each completes.

        A URL with ``validators`` is fetched conditionally (a 304 when unchanged).

        URLs are interleaved by registrable domain so one large site does not occupy
        every worker while others wait. Closing the iterator early cancels what has
        not started.
        """
        queue = iter(interleave_by_domain(urls))
        window = 2 * self._settings.concurrency  # submit lazily: cancellable, bounded memory
        futures: dict[Future[Fetched], str] = {}
        # Each fetch reports its own end: waiting on all the window's futures at once
        # (concurrent.futures.wait) locked and unlocked every one of them for each page.
        finished: SimpleQueue[Future[Fetched]] = SimpleQueue()
        with ThreadPoolExecutor(self._settings.concurrency, thread_name_prefix="newsagg-fetch") as pool:
            try:
                while True:
                    for url in queue:
                        known = (validators or {}).get(url)
                        future = pool.submit(self.fetch, url, robots=robots, content_types=content_types,
                                             validators=known)
                        futures[future] = url
                        future.add_done_callback(finished.put)
                        if len(futures) >= window:
                            break
                    if not futures:
                        return
                    future = finished.get()
                    url = futures.pop(future)
                    try:
                        result: Fetched | FetchError = future.result()
                    except FetchError as exc:
                        result = exc
                    yield url, result
            finally:
                for future in futures:
                    future.cancel()

    def robots_sitemaps(self, url: str) -> list[str]:
        """The ``Sitemap:`` lines of the robots.txt of ``url``'s host (fetched once, cached), absolute.

        Empty when robots.txt is missing, unreachable or refused, or lists none; lines that are no
        http(s) URL are skipped.
        """
        rules = self._robots_for(_parse_url(url, redact_url(url)))
        if rules.parser is None:
            return []
        found = (canonicalize(line, base=url, tidy_query=False) for line in rules.parser.sitemaps)
        return [sitemap for sitemap in found if sitemap is not None]

    # ----------------------------------------------------------------------- internals

    def _fetch(
        self,
        url: str,
        *,
        validators: Validators | None,
        robots: bool,
        content_types: tuple[str, ...] | None,
        body_limit: int,
        truncate: bool,
    ) -> Fetched:
        shown = redact_url(url)
        current = _parse_url(url, shown)
        cookies = httpx.Cookies()  # per fetch: lets cookie-gated redirects complete
        seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        redirects = 0
        while True:
            # A URL revisited with the same cookies can only go round again.
            state = (str(current), tuple(sorted((c.name, c.value or "") for c in cookies.jar)))
            if state in seen:
                raise PermanentFetchError(shown, f"redirect loop at {redact_url(str(current))}")
            seen.add(state)
            if robots:
                self._check_robots(current, shown, hop=redirects > 0)
            outcome = self._hop(
                current,
                shown=shown,
                requested=url,
                redirected=redirects > 0,
                validators=validators,
                content_types=content_types,
                cookies=cookies,
                body_limit=body_limit,
                truncate=truncate,
            )
            if isinstance(outcome, Fetched):
                return outcome
            redirects += 1
            if redirects > self._settings.max_redirects:
                raise PermanentFetchError(
                    shown, f"too many redirects (more than {self._settings.max_redirects})"
                )
            current = _parse_url(str(outcome), shown, hop=True)

    def _hop(
        self,
        url: httpx.URL,
        *,
        shown: str,
        requested: str,
        redirected: bool,
        validators: Validators | None,
        content_types: tuple[str, ...] | None,
        cookies: httpx.Cookies,
        body_limit: int,
        truncate: bool,
    ) -> Fetched | httpx.URL:
        """One request: a Fetched, or the URL a redirect points to."""
        domain = registrable_domain(url.host)
        try:
            self._limiter.acquire(domain)
        except Halted:
            raise TransientFetchError(shown, "not requested: the run is stopping") from None
        started = time.monotonic()
        # The budget starts once we may send: waiting for politeness is our choice, not the server's.
        token = DEADLINE.set(started + self._settings.total_timeout)
        try:
            # Credentials in the URL go as an Authorization header, not in the request's URL:
            # httpx logs every request URL (at INFO), and no log may carry a password.
            auth = (url.username, url.password) if url.userinfo else None
            request = self._client.build_request(
                "GET", url.copy_with(userinfo=b"") if auth else url, headers=_request_headers(validators, content_types)
            )
            # Most fetches carry and get no cookie, and the cookie jar's calls cost as much then.
            if cookies.jar:
                cookies.set_cookie_header(request)
            if logger.isEnabledFor(logging.DEBUG):  # the URL is redacted only for a line that is written
                logger.debug("GET %s", redact_url(str(url)))
            try:
                response = self._client.send(request, stream=True, auth=auth)
                try:
                    if "set-cookie" in response.headers:
                        cookies.extract_cookies(response)
                    return self._handle(response, url, shown, requested, validators, content_types, body_limit, truncate)
                finally:
                    response.close()
            except BlockedAddressError as exc:  # raised by the guard with host:port only
                where = "" if not redirected else f"redirect to {redact_url(str(url))}: "
                raise BlockedAddressError(shown, where + exc.reason) from None
            except httpx.HTTPError as exc:
                if time.monotonic() >= started + self._settings.total_timeout:
                    reason = f"no complete response within {self._settings.total_timeout:g}s"
                elif isinstance(exc, httpx.TimeoutException):
                    reason = f"{type(exc).__name__} ({exc})"
                else:
                    reason = f"connection failed: {type(exc).__name__}: {exc}"
                raise TransientFetchError(shown, reason) from exc
        finally:
            DEADLINE.reset(token)
            self._limiter.release(domain)

    def _handle(
        self,
        response: httpx.Response,
        url: httpx.URL,
        shown: str,
        requested: str,
        validators: Validators | None,
        content_types: tuple[str, ...] | None,
        body_limit: int,
        truncate: bool,
    ) -> Fetched | httpx.URL:
        status = response.status_code
        headers = {k: v for k, v in response.headers.items() if k != "set-cookie"}
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s: %d", redact_url(str(url)), status)
        if status in _REDIRECT_STATUSES:
            location = response.headers.get("location", "").strip()
            if not location:
                raise PermanentFetchError(shown, f"redirect {status} without a Location", status=status)
            try:
                return url.join(location)
            except (httpx.InvalidURL, ValueError, UnicodeError):
                raise PermanentFetchError(shown, "redirect to an invalid URL", status=status) from None
        if status == 304:
            if validators is None or not (validators.etag or validators.last_modified):
                raise PermanentFetchError(shown, "304 Not Modified to an unconditional request", status=304)
            return Fetched(
                requested_url=requested,
                url=str(url),
                status=304,
                body=b"",
                content_type=headers.get("content-type"),
                validators=Validators(
                    etag=headers.get("etag") or validators.etag,
                    last_modified=headers.get("last-modified") or validators.last_modified,
                ),
                headers=headers,
            )
        if not 200 <= status < 300 or status == 206:  # we never ask for ranges
            raise _status_error(shown, status, headers.get("retry-after"))
        content_type = headers.get("content-type")
        if content_types is not None:
            media = _media_type(content_type)
            if media not in {t.lower() for t in content_types}:
                raise PermanentFetchError(shown, f"unexpected content type {media or 'none'!r}", status=status)
        body = self._read_body(response, shown, body_limit, truncate)
        return Fetched(
            requested_url=requested,
            url=str(url),
            status=status,
            body=body,
            content_type=content_type,
            validators=Validators(etag=headers.get("etag"), last_modified=headers.get("last-modified")),
            headers=headers,
            # What the archive records of the request; credentials stay out of it.
            request_headers={k: v for k, v in response.request.headers.items() if k not in ("authorization", "cookie")},
        )

    def _read_body(self, response: httpx.Response, shown: str, limit: int, truncate: bool) -> bytes:
        """The decoded body, refused (or, for robots.txt, cut) past ``limit`` bytes."""
        too_large = PermanentFetchError(shown, f"body larger than {limit} bytes", status=response.status_code)
        try:
            decoder = BoundedDecoder(response.headers.get("content-encoding"))
        except UnsupportedEncoding as exc:
            raise PermanentFetchError(shown, f"unsupported content encoding {exc}") from None
        declared = response.headers.get("content-length", "")
        if not truncate and decoder.identity and declared.isdigit() and int(declared) > limit:
            raise too_large  # no need to download what we would refuse
        body = bytearray()
        raw = 0
        try:
            for chunk in response.iter_raw():
                raw += len(chunk)
                # Compressed bytes count too: a stream of empty deflate blocks inflates to nothing.
                body += decoder.decode(chunk, limit - len(body) + 1)
                if len(body) > limit or raw > limit:
                    if truncate:
                        return bytes(body[:limit])
                    raise too_large
            body += decoder.flush()
        except zlib.error as exc:
            raise PermanentFetchError(shown, f"corrupt compressed body ({exc})") from None
        if len(body) > limit:
            if truncate:
                return bytes(body[:limit])
            raise too_large
        return bytes(body)

    def _check_robots(self, url: httpx.URL, shown: str, *, hop: bool = False) -> None:
        rules = self._robots_for(url)
        if rules.blocked is not None:
            # Name the redirect target: the URL asked for is not the one refused.
            where = f"redirect to {redact_url(str(url))}: " if hop else ""
            raise BlockedAddressError(shown, f"{where}robots.txt: {rules.blocked}")
        if rules.unavailable is not None:
            # RFC 9309: an unreachable robots.txt means "disallow all" until it is reachable;
            # transient, so the page is tried again on a later run.
            raise TransientFetchError(shown, f"robots.txt unavailable ({rules.unavailable}); not crawling this host now")
        target = redact_url(str(url))
        if rules.parser is not None and not rules.parser.can_fetch(target, self._robots_agent):
            logger.info("%s: disallowed by robots.txt", target)
            raise PermanentFetchError(shown, "disallowed by robots.txt")

    def _robots_for(self, url: httpx.URL) -> RobotsRules:
        """The cached robots.txt verdict for url's scheme+host+port, fetched once."""
        port = url.port or DEFAULT_PORTS[url.scheme]
        key = (url.scheme, url.host, port)
        with self._robots_lock:
            if key in self._robots:
                self._robots.move_to_end(key)
                return self._robots[key]
            loading = self._robots_loading.setdefault(key, threading.Lock())
        with loading:  # concurrent pages of one host wait for one robots.txt fetch
            with self._robots_lock:
                rules = self._robots.get(key)
            if rules is None:
                rules = self._load_robots(f"{url.scheme}://{url.netloc.decode('ascii')}/robots.txt")
                if rules.parser is not None:
                    self._apply_crawl_delay(url.host, rules.parser)
                with self._robots_lock:
                    self._robots[key] = rules
                    while len(self._robots) > _ROBOTS_CACHE_SIZE:
                        self._robots.popitem(last=False)
                    self._robots_loading.pop(key, None)
        return rules

    def _load_robots(self, robots_url: str) -> RobotsRules:
        try:
            fetched = self._fetch(
                robots_url,
                validators=None,
                robots=False,
                content_types=None,
                body_limit=min(_ROBOTS_MAX_BYTES, self._settings.max_body_bytes),
                truncate=True,
            )
        except BlockedAddressError as exc:
            return RobotsRules(blocked=exc.reason)
        except TransientFetchError as exc:
            logger.info("%s: %s; disallowing the host for now", robots_url, exc.reason)
            return RobotsRules(unavailable=exc.reason)
        except PermanentFetchError as exc:
            # 4xx (and other "unavailable" answers, e.g. too many redirects): no rules.
            logger.debug("%s: %s; allowing all", robots_url, exc.reason)
            return RobotsRules()
        return RobotsRules(parser=Protego.parse(fetched.body.decode("utf-8", errors="replace")))

    def _apply_crawl_delay(self, host: str, parser: Protego) -> None:
        """Make the host's Crawl-delay a floor under its domain's spacing, up to ``max_crawl_delay``."""
        delay = parser.crawl_delay(self._robots_agent)
        if not delay:
            return
        cap = self._settings.max_crawl_delay
        if delay > cap:
            # A day-long delay would hold the run (and the pages of every other domain
            # queued with it); we stay as slow as the cap allows instead.
            logger.info("%s: robots.txt asks for Crawl-delay %gs; using the cap, %gs", host, delay, cap)
            delay = cap
        self._limiter.set_min_delay(registrable_domain(host), delay)


def _parse_url(url: str, shown: str, *, hop: bool = False) -> httpx.URL:
    where = f"redirect to {redact_url(url)}: " if hop else ""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, UnicodeError) as exc:
        raise PermanentFetchError(shown, f"{where}invalid URL ({exc})") from None
    if parsed.scheme not in ALLOWED_SCHEMES:
        raise BlockedAddressError(shown, f"{where}scheme {parsed.scheme!r} is not http or https")
    if not parsed.host:
        raise PermanentFetchError(shown, f"{where}URL has no host")
    return parsed


def _request_headers(validators: Validators | None, content_types: tuple[str, ...] | None) -> dict[str, str]:
    headers = {"Accept": ", ".join((*content_types, "*/*;q=0.1")) if content_types else "*/*"}
    if validators is not None:
        if validators.etag:
            headers["If-None-Match"] = validators.etag
        if validators.last_modified:
            headers["If-Modified-Since"] = validators.last_modified
    return headers


def _status_error(shown: str, status: int, retry_after: str | None) -> FetchError:
    """The FetchError for a non-success status."""
    reason = f"HTTP {status} {httpx.codes.get_reason_phrase(status)}".rstrip()
    if status == 410:
        return GoneError(shown, reason, status=status)
    # A 407 is a proxy's answer (fetch.proxy's credentials), not the page's.
    if status in (407, 408, 429) or 500 <= status < 600:
        return TransientFetchError(shown, reason, status=status, retry_after=parse_retry_after(retry_after))
    return PermanentFetchError(shown, reason if 400 <= status < 500 else f"unexpected {reason}", status=status)
