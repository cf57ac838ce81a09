"""The fault tests' tools: a scripted loopback web, settings that may reach only it, real filesystem faults.

(A module of its own, not conftest.py: ``from conftest import`` would find whichever
conftest another test directory imported first.)

``Web`` is a real HTTP server on 127.0.0.1 in a thread whose routes each test scripts
(hostile feeds and pages, a webhook receiver); ``Proxy`` is a TCP relay on 127.0.0.1 to a
real server (Elasticsearch) that refuses, cuts or slows its connections on demand. Nothing
here opens a non-loopback connection. The filesystem helpers make real conditions: a read-only mount and a
full tmpfs when this process may mount (root in a container), a file-size limit or
permission bits otherwise.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import ssl
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.demo.run import demo_settings
from pipeline.settings import Settings

Route = Callable[["Handler"], None]


@dataclass
class Web:
    """Scriptable server state: routes by path (``fallback`` for any other), and every request seen."""

    port: int = 0
    host: str = "127.0.0.1"
    routes: dict[str, Route] = field(default_factory=dict)
    seen: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    posts: list[tuple[str, bytes]] = field(default_factory=list)  # (path, body)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    fallback: Route | None = None

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        return self.base + path

    def serve(
        self, path: str, body: bytes | str, content_type: str = "text/html; charset=utf-8", status: int = 200,
        **headers: str,
    ) -> None:
        """Answer GET ``path`` with a fixed response."""
        data = body.encode() if isinstance(body, str) else body
        self.routes[path] = lambda h: h.reply(status, data, content_type, **headers)

    def hits(self, path: str) -> int:
        with self.lock:
            return sum(1 for _, p in self.seen if p.split("?", 1)[0] == path)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self._dispatch(b"")

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.web.lock:
            self.server.web.posts.append((self.path, body))
        self._dispatch(body)

    def _dispatch(self, body: bytes) -> None:
        web = self.server.web
        with web.lock:
            web.seen.append((self.command, self.path))
        route = web.routes.get(self.path.split("?", 1)[0], web.fallback)
        if route is None:
            self.reply(404, b"not found\n", "text/plain")
        else:
            route(self)

    def reply(self, status: int, body: bytes = b"", content_type: str = "text/html; charset=utf-8",
              **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def hang(self) -> None:
        """Never answer (until the server stops)."""
        self.server.web.stopping.wait(30)
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    web: Web

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients we cut off on purpose (timeouts, caps) make handlers fail


@contextlib.contextmanager
def serving(tls: ssl.SSLContext | None = None, host: str = "127.0.0.1") -> Iterator[Web]:
    """A ``Web`` on ``host`` (a loopback address; HTTPS with ``tls``), stopped on exit."""
    httpd = _HTTPServer((host, 0), Handler)
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    web = Web(port=httpd.server_address[1], host=host)
    httpd.web = web
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield web
    finally:
        web.stopping.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


class Proxy:
    """A TCP relay from a loopback port to ``target`` (host, port), in threads, whose faults a test switches.

    ``refuse()``: the port is closed and the open connections reset, as when the server is
    down; ``cut()``: the open connections are reset, and each new one once the server starts
    answering (the request reached the server, its answer never reaches the client);
    ``slow(seconds)``: each piece of an answer is held that long; ``heal()``: a plain relay
    again. ``stop()`` ends it all.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.mode, self.delay = "relay", 0.0
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener: socket.socket | None = self._listen(0)
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def refuse(self) -> None:
        with self._lock:
            self.mode = "refuse"
            if self._listener is not None:
                self._listener.close()
                self._listener = None
        self._reset_open()

    def cut(self) -> None:
        self.mode = "cut"
        self._reset_open()

    def slow(self, seconds: float) -> None:
        self.mode, self.delay = "slow", seconds

    def heal(self) -> None:
        with self._lock:
            self.mode = "relay"
            if self._listener is None:
                self._listener = self._listen(self.port)

    def stop(self) -> None:
        self.stopping.set()
        self.refuse()
        self._thread.join(5)

    @staticmethod
    def _listen(port: int) -> socket.socket:
        # The port closed by refuse() is free once the accepting thread lets go of it (50 ms).
        for attempt in range(40):
            try:
                listener = socket.create_server(("127.0.0.1", port))
                break
            except OSError:
                if attempt == 39:
                    raise
                time.sleep(0.05)
        listener.settimeout(0.05)
        return listener

    def _accept(self) -> None:
        while not self.stopping.is_set():
            with self._lock:
                listener = self._listener
            if listener is None:
                time.sleep(0.05)
                continue
            try:
                client, _ = listener.accept()
            except (TimeoutError, OSError):  # a timeout, or refuse() closed it meanwhile
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self._open |= {client, upstream}
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, answers: bool) -> None:
        try:
            while not self.stopping.is_set():
                if not select.select([source], [], [], 0.1)[0]:
                    continue
                data = source.recv(65536)
                if not data:
                    break
                if answers and self.mode == "cut":
                    break
                if answers and self.mode == "slow" and self.stopping.wait(self.delay):
                    break
                sink.sendall(data)
        except (OSError, ValueError):  # reset by the other side or by a fault
            pass
        for end in (source, sink):
            _reset(end)
            with self._lock:
                self._open.discard(end)

    def _reset_open(self) -> None:
        with self._lock:
            connections, self._open = list(self._open), set()
        for connection in connections:
            _reset(connection)


def _reset(connection: socket.socket) -> None:
    """Close with a reset (RST), as a crashed server or a cut network does, not a polite FIN."""
    with contextlib.suppress(OSError):
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        connection.close()


@contextlib.contextmanager
def proxying(url: str) -> Iterator[Proxy]:
    """A ``Proxy`` to the server at ``url`` (http://host:port), stopped on exit."""
    host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    proxy = Proxy((host, int(port)))
    try:
        yield proxy
    finally:
        proxy.stop()


def write_feed_list(path: Path, feeds: dict[str, str]) -> Path:
    """A YAML feed list of name -> URL."""
    path.write_text(yaml.safe_dump({"feeds": [{"name": n, "url": u} for n, u in feeds.items()]}), encoding="utf-8")
    return path


def fault_settings(web: Web, tmp_path: Path, feeds_file: Path, **overrides: Any) -> Settings:
    """Embedded defaults in tmp_path, small timeouts, allowed to reach only ``web``'s port."""
    fetch = {"connect_timeout": 1.0, "read_timeout": 1.0, "total_timeout": 2.0, **overrides.pop("fetch", {})}
    return demo_settings(
        f"http://127.0.0.1:{web.port}",
        tmp_path / "data",
        feeds_file,
        fetch=fetch,
        **{"workers": 1, **overrides},
    )


def held_page(web: Web, path: str, html: str) -> tuple[threading.Event, threading.Event]:
    """A page that answers only once released (or after 30 s): (asked, release), to act while a run waits for it."""
    asked, release = threading.Event(), threading.Event()

    def held(handler: Handler) -> None:
        asked.set()
        release.wait(30)
        handler.reply(200, html.encode(), "text/html; charset=utf-8")

    web.routes[path] = held
    return asked, release


def article_html(title: str, topic: str, paragraphs: int = 6) -> str:
    """A plain news page with enough distinct text to be extracted (and not confused with another)."""
    body = "\n".join(
        f"<p>{topic} report, part {n}: officials in the {topic} district described paragraph {n} of the "
        f"{title.lower()} story to reporters on Monday, giving figures on costs, timing and the people "
        f"affected, and promising a further statement about the {topic} plans later this week.</p>"
        for n in range(1, paragraphs + 1)
    )
    return (
        f"<!doctype html><html lang=en><head><title>{title}</title>"
        f'<meta name="author" content="Staff"></head><body><header><nav>Home | News</nav></header>'
        f"<article><h1>{title}</h1>{body}</article><footer>Copyright</footer></body></html>"
    )


def rss(title: str, items: list[tuple[str, str, str | None]], *, ttl: int | None = None, extra: str = "") -> str:
    """An RSS 2.0 document of (title, link, summary or None) items."""
    rendered = "".join(
        f"<item><title>{t}</title><link>{link}</link><guid>{link}</guid>"
        + (f"<description>{summary}</description>" if summary is not None else "")
        + "<pubDate>Mon, 02 Nov 2026 08:00:00 GMT</pubDate></item>"
        for t, link, summary in items
    )
    ttl_tag = f"<ttl>{ttl}</ttl>" if ttl is not None else ""
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{title}</title>'
        f"<link>http://example.invalid/</link><description>{title}</description>{ttl_tag}{rendered}{extra}"
        "</channel></rss>"
    )


# -- real filesystem faults ---------------------------------------------------------------------


def can_mount() -> bool:
    """Whether this process may mount filesystems (root with CAP_SYS_ADMIN, as in a CI container)."""
    if os.geteuid() != 0:
        return False
    probe = Path(f"/tmp/newsagg-mount-probe-{os.getpid()}")
    probe.mkdir(exist_ok=True)
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)],
                                 capture_output=True).returncode == 0
        if mounted:
            subprocess.run(["umount", str(probe)], check=True)
        return mounted
    finally:
        probe.rmdir()


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (a full disk, for real)."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def remount(path: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True)


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Make ``path`` (a file or directory) unwritable for this process, for real.

    Root ignores permission bits, so as root the path is bind-mounted read-only onto
    itself (the kernel refuses writes with EROFS); otherwise its write bits are removed.
    """
    if os.geteuid() == 0:
        if not can_mount():
            pytest.skip("root without permission to mount: permission bits cannot stop it")
        subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,ro,bind", str(path)], check=True)
            yield
        finally:
            subprocess.run(["umount", "-l", str(path)], check=False)
        return
    modes = {p: p.stat().st_mode for p in [path, *(path.rglob("*") if path.is_dir() else [])]}
    for p, mode in modes.items():
        p.chmod(mode & ~0o222)
    try:
        yield
    finally:
        for p, mode in modes.items():
            p.chmod(mode)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)
