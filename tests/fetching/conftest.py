"""A real HTTP server on 127.0.0.1 in a thread, with routes each test scripts."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from pipeline.fetching import Fetcher
from pipeline.settings import FetchSettings

Route = Callable[["Handler"], None]


@dataclass
class Seen:
    """One request as the server saw it."""

    path: str
    host: str
    headers: dict[str, str]
    at: float


@dataclass
class Server:
    """Scriptable server state: routes by path, requests seen, concurrency counters."""

    host: str = "127.0.0.1"
    port: int = 0
    routes: dict[str, Route] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    active: dict[str, int] = field(default_factory=dict)  # per Host header
    max_active: dict[str, int] = field(default_factory=dict)
    max_active_total: int = 0
    stopping: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str, host: str | None = None) -> str:
        return f"http://{host or self.host}:{self.port}{path}"

    def route(self, path: str) -> Callable[[Route], Route]:
        def register(fn: Route) -> Route:
            self.routes[path] = fn
            return fn

        return register

    def hits(self, path: str) -> list[Seen]:
        """Requests seen for ``path`` (query strings ignored)."""
        with self.lock:
            return [s for s in self.seen if s.path.split("?", 1)[0] == path]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as publishers do
    server: _HTTPServer

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        state = self.server.state
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
        with state.lock:
            state.seen.append(Seen(self.path, host, {k.lower(): v for k, v in self.headers.items()}, time.monotonic()))
            state.active[host] = state.active.get(host, 0) + 1
            state.max_active[host] = max(state.max_active.get(host, 0), state.active[host])
            state.max_active_total = max(state.max_active_total, sum(state.active.values()))
        try:
            route = state.routes.get(self.path.split("?", 1)[0])
            if route is None:
                self.reply(404, b"not found")
            else:
                route(self)
        finally:
            with state.lock:
                state.active[host] -= 1

    def reply(
        self, status: int, body: bytes = b"", content_type: str = "text/html; charset=utf-8", **headers: str
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    state: Server

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients we cut off (budget, caps) make handlers fail: expected here


@pytest.fixture
def server() -> Iterator[Server]:
    httpd = _HTTPServer(("127.0.0.1", 0), Handler)
    state = Server(port=httpd.server_address[1])
    httpd.state = state
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.stopping.set()  # releases handlers that stall on purpose
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def loopback_resolver(mapping: dict[str, str] | None = None) -> Callable[[str, int], list[str]]:
    """Any name resolves to 127.0.0.1 (or its entry in mapping); nothing reaches real DNS."""

    def resolve(host: str, port: int) -> list[str]:
        return [(mapping or {}).get(host, "127.0.0.1")]

    return resolve


@pytest.fixture
def make_fetcher(server: Server) -> Iterator[Callable[..., Fetcher]]:
    """Fetchers allowed to reach the test server (and only its port), closed after the test."""
    made: list[Fetcher] = []

    def make(resolver: Callable[[str, int], list[str]] | None = None, **overrides: Any) -> Fetcher:
        values: dict[str, Any] = {
            "connect_timeout": 2.0,
            "read_timeout": 2.0,
            "total_timeout": 5.0,
            "politeness_delay": 0.0,
            "allowed_hosts": [f"127.0.0.1:{server.port}"],
        }
        values.update(overrides)
        fetcher = Fetcher(FetchSettings(**values), resolver=resolver or loopback_resolver())
        made.append(fetcher)
        return fetcher

    yield make
    for fetcher in made:
        fetcher.close()
