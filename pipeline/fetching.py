"""The one HTTP layer every stage uses: guarded, polite, bounded.

``Fetcher.fetch`` GETs one URL and returns a ``Fetched`` (a 2xx body, or a 304
for a conditional GET) or raises a ``FetchError`` subclass; ``Fetcher.fetch_all``
does many through a thread pool. What it protects against, and where:

* hostile addresses: every hop's host is resolved and checked by
  ``pipeline.addresses`` inside the connection layer (``_GuardedBackend``), and
  the socket is opened to exactly the checked address, so DNS rebinding between
  check and connect is impossible;
* slow or endless servers: connect/read timeouts, plus a total budget per response
  (each redirect hop has its own) enforced on every socket operation
  (``_DEADLINE``), so header bytes trickled one by one are cut off too;
* large bodies and compression bombs: we decode gzip/deflate ourselves with a
  bounded output size, so the cap counts decompressed bytes and memory never
  exceeds it;
* impoliteness: requests are spaced and bounded per registrable domain
  (``_DomainLimiter``) and robots.txt is honoured on request.
"""

from __future__ import annotations

import contextlib
import contextvars
import email.utils
import http.cookiejar
import ipaddress
import logging
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import timezone
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from urllib.robotparser import RobotFileParser

import httpcore
import httpx
import tldextract

from pipeline.addresses import ALLOWED_SCHEMES, AddressPolicy, Resolver, check_address
from pipeline.errors import (
    BlockedAddressError,
    FetchError,
    GoneError,
    PermanentFetchError,
    TransientFetchError,
)
from pipeline.models import Fetched, Validators
from pipeline.settings import FetchSettings

__all__ = ["Fetcher", "check_address", "parse_retry_after", "redact_url", "registrable_domain"]

logger = logging.getLogger(__name__)

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_ROBOTS_CACHE_SIZE = 4096
# RFC 9309 asks crawlers to parse at least 500 KiB; more than that is ignored, not an error.
_ROBOTS_MAX_BYTES = 512 * 1024

# Monotonic time at which the current thread's response must be complete. A contextvar
# rather than a per-request timeout because httpx's read timeout restarts with every
# chunk: only the socket layer can stop a server that trickles one byte at a time.
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("newsagg_fetch_deadline", default=None)


# --------------------------------------------------------------------------- URL helpers


def redact_url(url: str) -> str:
    """``url`` without its userinfo (``user:password@``), safe for logs and error messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


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


# --------------------------------------------------------------------------- transport


def _remaining(timeout: float | None, on_expiry: type[httpcore.TimeoutException]) -> float | None:
    """``timeout`` shortened to what is left of the response budget."""
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise on_expiry("total time budget exhausted")
    return left if timeout is None else min(timeout, left)


class _GuardedStream(httpcore.NetworkStream):
    """A socket stream whose every operation also respects the response budget."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _remaining(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _remaining(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        # server_hostname is the URL's host (httpcore passes it), so certificates are
        # verified against the name even though we connected to a checked IP.
        inner = self._inner.start_tls(ssl_context, server_hostname, _remaining(timeout, httpcore.ConnectTimeout))
        return _GuardedStream(inner)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _GuardedBackend(httpcore.NetworkBackend):
    """Resolves through the address guard and connects to the very addresses it approved."""

    def __init__(self, policy: AddressPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        # DNS is outside the response budget: getaddrinfo cannot be interrupted, so the
        # system resolver's own timeouts bound it.
        try:
            addresses = self._policy.resolve(host, port)  # BlockedAddressError passes through
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        failure: Exception | None = None
        for address in addresses:  # all approved; try them in the resolver's order
            try:
                stream = self._inner.connect_tcp(
                    address,
                    port,
                    timeout=_remaining(timeout, httpcore.ConnectTimeout),
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
                continue
            return _GuardedStream(stream)
        assert failure is not None
        raise failure

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are never used by the fetcher")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


# httpx's transport contract is to raise httpx exceptions; order matters (subclasses first).
_EXCEPTION_MAP: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextlib.contextmanager
def _httpx_exceptions() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        for source, target in _EXCEPTION_MAP:
            if isinstance(exc, source):
                raise target(str(exc)) from exc
        raise


class _ResponseStream(httpx.SyncByteStream):
    def __init__(self, inner: Iterable[bytes]) -> None:
        self._inner = inner

    def __iter__(self) -> Iterator[bytes]:
        with _httpx_exceptions():
            yield from self._inner

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()


class _GuardedTransport(httpx.BaseTransport):
    """httpx's default transport, rebuilt on public httpcore API with the guarded backend.

    ``httpx.HTTPTransport`` cannot be given a network backend, hence this copy of its
    ``handle_request`` (proxies, HTTP/2 and unix sockets deliberately left out: a proxy
    would connect to the target on our behalf, past the guard).
    """

    def __init__(self, policy: AddressPolicy, *, verify_tls: bool) -> None:
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify_tls),
            max_connections=None,  # _DomainLimiter bounds what is in flight
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            http1=True,
            http2=False,
            retries=0,
            network_backend=_GuardedBackend(policy),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _httpx_exceptions():
            response = self._pool.handle_request(core_request)
        assert isinstance(response.stream, Iterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._pool.close()


# --------------------------------------------------------------------------- body decoding


class _UnsupportedEncoding(Exception):
    pass


class _BoundedDecoder:
    """gzip/deflate decoding that never produces more than asked per call (bomb-proof)."""

    def __init__(self, content_encoding: str | None) -> None:
        codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
        codings = [c for c in codings if c and c != "identity"]
        if len(codings) > 1 or (codings and codings[0] not in ("gzip", "x-gzip", "deflate")):
            raise _UnsupportedEncoding(", ".join(codings))
        self.identity = not codings
        self._gzip = bool(codings) and codings[0] != "deflate"
        self._raw_deflate = False  # some servers send deflate without the zlib wrapper
        self._replay: bytearray | None = None if self._gzip else bytearray()  # input before any output
        self._pending = b""  # input zlib could not take yet (output was full)
        self._trailing = False  # past the end of the compressed data: ignore the rest
        self._obj: Any = None if self.identity else self._new()

    def _new(self) -> Any:
        if self._gzip:
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        return zlib.decompressobj(-zlib.MAX_WBITS if self._raw_deflate else zlib.MAX_WBITS)

    def decode(self, data: bytes, max_out: int) -> bytes:
        """Up to ``max_out`` decoded bytes from ``data`` plus input held back earlier."""
        if self._obj is None:
            return data
        out = bytearray()
        data, self._pending = self._pending + data, b""
        while data and len(out) < max_out and not self._trailing:
            if self._obj.eof:
                # Concatenated gzip members are one body; anything else after the end is padding.
                if self._gzip and len(data) < 2:
                    self._pending = data
                    break
                if not (self._gzip and data[:2] == b"\x1f\x8b"):
                    self._trailing = True
                    break
                self._obj = self._new()
            if self._replay is not None:
                self._replay += data
            try:
                out += self._obj.decompress(data, max_out - len(out))
            except zlib.error:
                if self._replay is None or self._raw_deflate:
                    raise
                # Not zlib-wrapped after all: start again as raw deflate from the first byte.
                self._raw_deflate = True
                self._obj = self._new()
                data, self._replay = bytes(self._replay), None
                continue
            if out:
                self._replay = None
            if self._obj.eof:
                data = self._obj.unused_data
            else:
                data, self._pending = b"", self._obj.unconsumed_tail  # non-empty only when out is full
        return bytes(out)

    def flush(self) -> bytes:
        return b"" if self._obj is None else bytes(self._obj.flush())


# --------------------------------------------------------------------------- politeness


@dataclass(slots=True)
class _DomainState:
    in_flight: int = 0
    next_start: float = 0.0


class _DomainLimiter:
    """Bounds requests in flight overall and per registrable domain, and spaces their starts."""

    def __init__(self, total: int, per_domain: int, delay: float) -> None:
        self._total_limit = total
        self._per_domain = per_domain
        self._delay = delay
        self._cond = threading.Condition()
        self._total = 0
        self._domains: dict[str, _DomainState] = {}

    def acquire(self, domain: str) -> None:
        with self._cond:
            while True:
                state = self._domains.setdefault(domain, _DomainState())
                now = time.monotonic()
                wait_for = state.next_start - now
                if wait_for <= 0 and state.in_flight < self._per_domain and self._total < self._total_limit:
                    state.in_flight += 1
                    self._total += 1
                    state.next_start = now + self._delay
                    return
                self._cond.wait(timeout=wait_for if wait_for > 0 else None)

    def release(self, domain: str) -> None:
        with self._cond:
            self._domains[domain].in_flight -= 1
            self._total -= 1
            if len(self._domains) > 1024:  # forget idle domains so a long run stays small
                now = time.monotonic()
                for name in [n for n, s in self._domains.items() if not s.in_flight and s.next_start <= now]:
                    del self._domains[name]
            self._cond.notify_all()


@dataclass(frozen=True, slots=True)
class _Robots:
    """What one host's robots.txt says: rules, allow-all, or "do not crawl for now"."""

    parser: RobotFileParser | None = None  # None and no reason: allow everything
    unavailable: str | None = None  # 5xx / unreachable: disallow everything this run
    blocked: str | None = None  # the address guard refused robots.txt itself


def _no_cookies() -> http.cookiejar.CookieJar:
    # The shared client must not carry one publisher's cookies into the next request.
    return http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))


# --------------------------------------------------------------------------- the fetcher


class Fetcher:
    """Fetches URLs for every stage: guarded, polite, bounded, thread-safe."""

    def __init__(self, settings: FetchSettings, *, resolver: Resolver | None = None) -> None:
        """Build the HTTP client; ``resolver`` (host, port) -> addresses replaces DNS (tests).

        Raises:
            ConfigError: an ``allowed_hosts`` entry cannot be parsed.
        """
        self._settings = settings
        policy = AddressPolicy(settings.allowed_hosts, resolver)
        self._client = httpx.Client(
            transport=_GuardedTransport(policy, verify_tls=settings.verify_tls),
            headers={"User-Agent": settings.user_agent, "Accept-Encoding": "gzip, deflate"},
            timeout=httpx.Timeout(
                connect=settings.connect_timeout,
                read=settings.read_timeout,
                write=settings.read_timeout,
                pool=settings.connect_timeout,
            ),
            follow_redirects=False,  # we follow hop by hop so every hop is checked
            trust_env=False,  # no proxies (they would bypass the guard), no .netrc
            cookies=_no_cookies(),
        )
        self._limiter = _DomainLimiter(
            settings.concurrency, settings.per_domain_concurrency, settings.politeness_delay
        )
        self._robots: OrderedDict[tuple[str, str, int], _Robots] = OrderedDict()
        self._robots_lock = threading.Lock()
        self._robots_loading: dict[tuple[str, str, int], threading.Lock] = {}
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
            logger.warning("%s: %s", exc.url, exc.reason)
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
    ) -> Iterator[tuple[str, Fetched | FetchError]]:
        """Fetch many URLs in ``concurrency`` threads; yield (url, result or error) as each completes.

        URLs are interleaved by registrable domain so one large site does not occupy
        every worker while others wait. Closing the iterator early cancels what has
        not started.
        """
        queue = iter(_interleave_by_domain(urls))
        window = 2 * self._settings.concurrency  # submit lazily: cancellable, bounded memory
        futures: dict[Future[Fetched], str] = {}
        with ThreadPoolExecutor(self._settings.concurrency, thread_name_prefix="newsagg-fetch") as pool:
            try:
                while True:
                    for url in queue:
                        futures[pool.submit(self.fetch, url, robots=robots, content_types=content_types)] = url
                        if len(futures) >= window:
                            break
                    if not futures:
                        return
                    done, _ = wait(futures, return_when=FIRST_COMPLETED)
                    for future in done:
                        url = futures.pop(future)
                        try:
                            result: Fetched | FetchError = future.result()
                        except FetchError as exc:
                            result = exc
                        yield url, result
            finally:
                for future in futures:
                    future.cancel()

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
        self._limiter.acquire(domain)
        started = time.monotonic()
        # The budget starts once we may send: waiting for politeness is our choice, not the server's.
        token = _DEADLINE.set(started + self._settings.total_timeout)
        try:
            # Credentials in the URL go as an Authorization header, not in the request's URL:
            # httpx logs every request URL (at INFO), and no log may carry a password.
            auth = (url.username, url.password) if url.userinfo else None
            request = self._client.build_request(
                "GET", url.copy_with(userinfo=b"") if auth else url, headers=_request_headers(validators, content_types)
            )
            cookies.set_cookie_header(request)
            logger.debug("GET %s", redact_url(str(url)))
            try:
                response = self._client.send(request, stream=True, auth=auth)
                try:
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
            _DEADLINE.reset(token)
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
        )

    def _read_body(self, response: httpx.Response, shown: str, limit: int, truncate: bool) -> bytes:
        """The decoded body, refused (or, for robots.txt, cut) past ``limit`` bytes."""
        too_large = PermanentFetchError(shown, f"body larger than {limit} bytes", status=response.status_code)
        try:
            decoder = _BoundedDecoder(response.headers.get("content-encoding"))
        except _UnsupportedEncoding as exc:
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
        if rules.parser is not None and not rules.parser.can_fetch(self._settings.user_agent, target):
            logger.info("%s: disallowed by robots.txt", target)
            raise PermanentFetchError(shown, "disallowed by robots.txt")

    def _robots_for(self, url: httpx.URL) -> _Robots:
        """The cached robots.txt verdict for url's scheme+host+port, fetched once."""
        port = url.port or (443 if url.scheme == "https" else 80)
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
                with self._robots_lock:
                    self._robots[key] = rules
                    while len(self._robots) > _ROBOTS_CACHE_SIZE:
                        self._robots.popitem(last=False)
                    self._robots_loading.pop(key, None)
        return rules

    def _load_robots(self, robots_url: str) -> _Robots:
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
            return _Robots(blocked=exc.reason)
        except TransientFetchError as exc:
            logger.info("%s: %s; disallowing the host for now", robots_url, exc.reason)
            return _Robots(unavailable=exc.reason)
        except PermanentFetchError as exc:
            # 4xx (and other "unavailable" answers, e.g. too many redirects): no rules.
            logger.debug("%s: %s; allowing all", robots_url, exc.reason)
            return _Robots()
        parser = RobotFileParser(robots_url)
        parser.parse(fetched.body.decode("utf-8", errors="replace").splitlines())
        parser.modified()  # can_fetch() refuses everything until a parser is marked as read
        return _Robots(parser=parser)


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
    if status in (408, 429) or 500 <= status < 600:
        return TransientFetchError(shown, reason, status=status, retry_after=parse_retry_after(retry_after))
    return PermanentFetchError(shown, reason if 400 <= status < 500 else f"unexpected {reason}", status=status)


def _interleave_by_domain(urls: Iterable[str]) -> list[str]:
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


