"""Fetching through an HTTP proxy (`fetch.proxy`), for networks that reach the web only through one.

The proxy here is a real forward proxy on 127.0.0.1 (absolute-form requests for http://,
CONNECT tunnels for https://), written for the test as the publishers' servers are; the
publishers are on 127.0.0.2 and 127.0.0.3, so the proxy's address and theirs differ.
"""

from __future__ import annotations

import base64
import http.client
import json
import select
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from faultkit import article_html, fault_settings, rss, serving, write_feed_list
from pipeline.cli import main
from pipeline.errors import BlockedAddressError, TransientFetchError
from pipeline.fetching import Fetcher
from pipeline.runner import Pipeline
from pipeline.settings import FetchSettings, Settings

PAGE = b"<html><body><p>The harbour reopened on Monday.</p></body></html>"


class ForwardProxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, credentials: str | None) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.credentials = credentials
        self.seen: list[tuple[str, str, str | None]] = []  # (method, target, Proxy-Authorization)
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hangs up mid-tunnel


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ForwardProxy

    def _admitted(self) -> bool:
        given = self.headers.get("Proxy-Authorization")
        with self.server.lock:
            self.server.seen.append((self.command, self.path, given))
        wanted = self.server.credentials
        if wanted is None or given == "Basic " + base64.b64encode(wanted.encode()).decode():
            return True
        self.send_response(407)
        self.send_header("Proxy-Authenticate", 'Basic realm="proxy"')
        self.send_header("Content-Length", "0")
        self.end_headers()
        return False

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        if not self._admitted():
            return
        target = urlsplit(self.path)
        upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=5)
        headers = {k: v for k, v in self.headers.items() if not k.lower().startswith("proxy-")}
        upstream.request("GET", target.path or "/", headers=headers)
        answer = upstream.getresponse()
        body = answer.read()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        upstream.close()

    def do_CONNECT(self) -> None:  # noqa: N802 - stdlib name
        if not self._admitted():
            return
        host, port = self.path.rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)), timeout=5)
        self.send_response(200, "Connection established")
        self.end_headers()
        self.close_connection = True
        sockets = [self.connection, upstream]
        while True:
            ready, _, _ = select.select(sockets, [], [], 5)
            if not ready:
                break
            for sock in ready:
                data = sock.recv(65536)
                if not data:
                    upstream.close()
                    return
                (upstream if sock is self.connection else self.connection).sendall(data)
        upstream.close()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


@contextmanager
def forward_proxy(credentials: str | None = None) -> Iterator[ForwardProxy]:
    proxy = ForwardProxy(credentials)
    thread = threading.Thread(target=proxy.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()
        thread.join(5)


def fetcher(proxy: str, allowed: list[str], **overrides: Any) -> Fetcher:
    return Fetcher(FetchSettings(proxy=proxy, allowed_hosts=allowed, politeness_delay=0.0, connect_timeout=2.0,
                                 read_timeout=2.0, total_timeout=5.0, **overrides))


def test_pages_come_through_the_proxy_and_the_guard_still_checks_where_they_are() -> None:
    with serving(host="127.0.0.2") as web, forward_proxy() as proxy:
        web.serve("/a.html", PAGE)
        page = web.url("/a.html")
        with fetcher(proxy.url, [f"127.0.0.2:{web.port}"]) as allowed:
            assert allowed.fetch(page).body == PAGE
        # The publisher's address is private and not allowed: refused before the proxy is asked.
        with fetcher(proxy.url, []) as guarded, pytest.raises(BlockedAddressError, match="127.0.0.2"):
            guarded.fetch(page)
    assert proxy.seen == [("GET", page, None)]
    assert web.hits("/a.html") == 1


def test_https_pages_come_through_a_tunnel(self_signed: ssl.SSLContext) -> None:
    with serving(tls=self_signed, host="127.0.0.3") as web, forward_proxy() as proxy:
        web.serve("/a.html", PAGE)
        with fetcher(proxy.url, [f"127.0.0.3:{web.port}"], verify_tls=False) as client:
            assert client.fetch(f"https://127.0.0.3:{web.port}/a.html").body == PAGE
    assert proxy.seen == [("CONNECT", f"127.0.0.3:{web.port}", None)]


def test_a_proxy_that_wants_credentials_gets_them_and_a_refusal_costs_no_page(self_signed: ssl.SSLContext) -> None:
    with serving(host="127.0.0.2") as web, forward_proxy("reader:s3cret") as proxy:
        web.serve("/a.html", PAGE)
        allowed = [f"127.0.0.2:{web.port}"]
        authorised = proxy.url.replace("http://", "http://reader:s3cret@")
        with fetcher(authorised, allowed) as client:
            assert client.fetch(web.url("/a.html")).body == PAGE
        assert proxy.seen[-1][2] == "Basic " + base64.b64encode(b"reader:s3cret").decode()
        # A 407 is the proxy's answer, not the page's: the page is tried again later.
        with fetcher(proxy.url, allowed) as client, pytest.raises(TransientFetchError, match="407"):
            client.fetch(web.url("/a.html"))
        with serving(tls=self_signed, host="127.0.0.3") as secure:
            secure.serve("/a.html", PAGE)
            with fetcher(proxy.url, [f"127.0.0.3:{secure.port}"], verify_tls=False) as client, \
                    pytest.raises(TransientFetchError, match="407"):
                client.fetch(f"https://127.0.0.3:{secure.port}/a.html")
    assert web.hits("/a.html") == 1


def test_a_run_polls_reads_robots_and_fetches_pages_through_the_proxy(tmp_path: Path) -> None:
    with serving(host="127.0.0.2") as web, forward_proxy() as proxy:
        items = []
        for n, topic in enumerate(("harbour", "railway", "orchard")):
            title = f"Story {n} about the {topic}"
            web.serve(f"/a{n}.html", article_html(title, topic))
            items.append((title, web.url(f"/a{n}.html"), None))
        web.serve("/feed.xml", rss("Outlet", items), "application/rss+xml")
        feeds = write_feed_list(tmp_path / "feeds.yaml", {"outlet": web.url("/feed.xml")})
        fetch = {"proxy": proxy.url, "allowed_hosts": [f"127.0.0.2:{web.port}"], "politeness_delay": 0.0}
        with Pipeline(fault_settings(web, tmp_path, feeds, fetch=fetch)) as pipeline:
            report = pipeline.run()
    assert report.articles_added == 3
    through_proxy = sorted(target.rsplit("/", 1)[1] for _, target, _ in proxy.seen)
    assert through_proxy == ["a0.html", "a1.html", "a2.html", "feed.xml", "robots.txt"]
    assert sorted(path for _, path in web.seen) == ["/a0.html", "/a1.html", "/a2.html", "/feed.xml", "/robots.txt"]


def test_a_dead_proxy_is_a_transient_failure() -> None:
    with forward_proxy() as proxy:
        url = proxy.url
    with serving(host="127.0.0.2") as web, fetcher(url, [f"127.0.0.2:{web.port}"]) as client:
        web.serve("/a.html", PAGE)
        with pytest.raises(TransientFetchError, match=r"connection failed: ConnectError: proxy 127\.0\.0\.1:\d+: "):
            client.fetch(web.url("/a.html"))
    assert web.hits("/a.html") == 0


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("ftp://proxy.example:21", "must be http://host:port or https://host:port"),
        ("http://proxy.example:3128/path", "must be http://host:port or https://host:port"),
        ("proxy.example:3128", "must be http://host:port or https://host:port"),
        ("http://reader:s3cret@proxy.example:port", r"has a bad port: http://reader:\*\*\*@proxy.example:port"),
    ],
)
def test_a_proxy_that_is_not_an_http_url_is_refused(value: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        FetchSettings(proxy=value)


def test_the_settings_listing_masks_the_proxys_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NEWSAGG_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("NEWSAGG_FETCH__PROXY", "http://reader:s3cret@proxy.example:3128")
    assert Settings().fetch.proxy == "http://reader:s3cret@proxy.example:3128"
    assert main(["settings", "--json"]) == 0
    out = capsys.readouterr().out
    shown = {s["variable"]: s["value"] for s in json.loads(out)["settings"]}
    assert "s3cret" not in out
    assert shown["NEWSAGG_FETCH__PROXY"] == "http://reader:***@proxy.example:3128"
