"""The connection layer: the address guard at connect time and a total time budget per response.

Every hop's host is resolved and checked by ``pipeline.addresses`` inside the connection
layer (``_GuardedBackend``), and the socket is opened to exactly the checked address, so
DNS rebinding between check and connect is impossible. ``DEADLINE`` bounds every socket
operation of a response, so header bytes trickled one by one are cut off too. A halt
(``GuardedTransport.halt``, for a run that is stopping) cuts every open connection, so
a read in flight ends at once, and refuses new ones.
"""

from __future__ import annotations

import contextlib
import contextvars
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore
import httpx

from pipeline.addresses import AddressPolicy
from pipeline.urls import DEFAULT_PORTS

# Monotonic time at which the current thread's response must be complete. A contextvar
# rather than a per-request timeout because httpx's read timeout restarts with every
# chunk: only the socket layer can stop a server that trickles one byte at a time.
DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("newsagg_fetch_deadline", default=None)


def _remaining(timeout: float | None, on_expiry: type[httpcore.TimeoutException]) -> float | None:
    """``timeout`` shortened to what is left of the response budget."""
    deadline = DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise on_expiry("total time budget exhausted")
    return left if timeout is None else min(timeout, left)


class _GuardedStream(httpcore.NetworkStream):
    """A socket stream whose every operation also respects the response budget, and that its backend can cut."""

    def __init__(self, inner: httpcore.NetworkStream, backend: _GuardedBackend) -> None:
        self._inner = inner
        self._backend = backend

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _remaining(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _remaining(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._backend.forget(self)
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        # server_hostname is the URL's host (httpcore passes it), so certificates are
        # verified against the name even though we connected to a checked IP.
        try:
            inner = self._inner.start_tls(ssl_context, server_hostname, _remaining(timeout, httpcore.ConnectTimeout))
        finally:
            self._backend.forget(self)  # the TLS stream takes over the socket, or the handshake closed it
        return self._backend.track(_GuardedStream(inner, self._backend))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)

    def cut(self) -> None:
        """Shut the socket down under whoever is reading or writing it: they fail at once."""
        sock = self._inner.get_extra_info("socket")
        if sock is not None:
            # socket.socket's own shutdown, also for a TLS socket: ssl.SSLSocket.shutdown
            # unwraps TLS first, and the thread reading it would fail with a ValueError.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _GuardedBackend(httpcore.NetworkBackend):
    """Resolves through the address guard and connects to the very addresses it approved."""

    def __init__(self, policy: AddressPolicy, proxy: tuple[str, int] | None = None) -> None:
        self._policy = policy
        self._proxy = proxy
        self._inner = httpcore.SyncBackend()
        self._lock = threading.Lock()
        self._open: set[_GuardedStream] = set()
        self._halted = False

    def track(self, stream: _GuardedStream) -> _GuardedStream:
        """``stream``, to be cut by a halt; cut at once if the halt came while it connected."""
        with self._lock:
            halted = self._halted
            if not halted:
                self._open.add(stream)
        if halted:
            stream.close()
            raise httpcore.ConnectError("the fetcher is halted")
        return stream

    def forget(self, stream: _GuardedStream) -> None:
        with self._lock:
            self._open.discard(stream)

    def halt(self) -> None:
        """Refuse new connections and cut the open ones."""
        with self._lock:
            self._halted = True
            streams = list(self._open)
        for stream in streams:
            stream.cut()

    def resolve(self, host: str, port: int) -> list[str]:
        """The addresses of ``host:port``, each approved by the guard (BlockedAddressError passes through)."""
        try:
            return self._policy.resolve(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        if self._halted:
            raise httpcore.ConnectError("the fetcher is halted")
        # DNS is outside the response budget: getaddrinfo cannot be interrupted, so the
        # system resolver's own timeouts bound it.
        # The proxy is the operator's choice, not a publisher's: it is connected to unchecked.
        addresses = [host] if (host, port) == self._proxy else self.resolve(host, port)
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
            return self.track(_GuardedStream(stream, self))
        assert failure is not None
        if (host, port) == self._proxy:  # else every page's error says the publisher refused
            raise type(failure)(f"proxy {host}:{port}: {failure}") from failure
        raise failure

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are never used by the fetcher")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


# httpx's transport contract is to raise httpx exceptions; order matters (subclasses first).
_EXCEPTION_MAP: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ProxyError, httpx.ProxyError),
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


class GuardedTransport(httpx.BaseTransport):
    """httpx's default transport, rebuilt on public httpcore API with the guarded backend.

    ``httpx.HTTPTransport`` cannot be given a network backend, hence this copy of its
    ``handle_request`` (HTTP/2 and unix sockets deliberately left out). Through a ``proxy``,
    every connection is to the proxy, which connects to the target itself: the target's
    addresses are checked before each request instead, and the proxy resolves the name again.
    """

    def __init__(self, policy: AddressPolicy, *, verify_tls: bool, proxy: str | None = None) -> None:
        self._proxied = proxy is not None
        pool: dict[str, Any] = {
            "ssl_context": httpx.create_ssl_context(verify=verify_tls),
            "max_connections": None,  # DomainLimiter bounds what is in flight
            "max_keepalive_connections": 20,
            "keepalive_expiry": 5.0,
            "http1": True,
            "http2": False,
            "retries": 0,
        }
        if proxy is None:
            self._backend = _GuardedBackend(policy)
            self._pool: httpcore.ConnectionPool = httpcore.ConnectionPool(**pool, network_backend=self._backend)
        else:
            url = httpx.URL(proxy)
            endpoint = (url.raw_host.decode("ascii"), url.port or DEFAULT_PORTS[url.scheme])
            self._backend = _GuardedBackend(policy, proxy=endpoint)
            self._pool = httpcore.HTTPProxy(
                proxy_url=httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=b"/"),
                proxy_auth=(url.username, url.password) if url.userinfo else None,
                **pool,
                network_backend=self._backend,
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
            if self._proxied:  # the proxy connects to the target: its addresses are checked here
                self._backend.resolve(request.url.host, request.url.port or DEFAULT_PORTS[request.url.scheme])
            response = self._pool.handle_request(core_request)
        assert isinstance(response.stream, Iterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    def halt(self) -> None:
        """End every request in flight at once (a ``httpx.TransportError``) and refuse new connections."""
        self._backend.halt()

    def close(self) -> None:
        self._pool.close()
