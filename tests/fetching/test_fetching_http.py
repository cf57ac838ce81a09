"""Fetcher against a real loopback HTTP server: statuses, validators, limits, redirects."""

from __future__ import annotations

import gzip
import logging
import socket
import time
import zlib
from collections.abc import Callable
from email.utils import formatdate
from typing import TYPE_CHECKING

import pytest
from pipeline.errors import (
    BlockedAddressError,
    GoneError,
    PermanentFetchError,
    TransientFetchError,
)
from pipeline.fetching import Fetcher, parse_retry_after, redact_url
from pipeline.models import Validators

if TYPE_CHECKING:  # fixtures come from conftest; never import it at run time
    from conftest import Handler, Server

MakeFetcher = Callable[..., Fetcher]
ETAG = '"v1"'
LAST_MODIFIED = "Tue, 03 Jun 2025 10:00:00 GMT"


def test_200_returns_body_validators_and_headers(server: Server, make_fetcher: MakeFetcher) -> None:
    @server.route("/feed")
    def feed(h: Handler) -> None:
        h.reply(200, b"<rss/>", "application/rss+xml", ETag=ETAG, Last_Modified=LAST_MODIFIED,
                Cache_Control="max-age=60", Set_Cookie="session=abc")

    fetched = make_fetcher().fetch(server.url("/feed"))

    assert fetched.status == 200 and not fetched.not_modified
    assert fetched.body == b"<rss/>"
    assert fetched.content_type == "application/rss+xml"
    assert fetched.validators == Validators(etag=ETAG, last_modified=LAST_MODIFIED)
    assert fetched.url == fetched.requested_url == server.url("/feed")
    assert fetched.headers["cache-control"] == "max-age=60"
    assert fetched.headers["etag"] == ETAG and "date" in fetched.headers
    assert "set-cookie" not in fetched.headers
    sent = server.hits("/feed")[0].headers
    assert sent["user-agent"].startswith("newsagg/")
    assert sent["accept-encoding"] == "gzip, deflate"
    assert "if-none-match" not in sent and "if-modified-since" not in sent


def _conditional(h: Handler) -> None:
    if h.headers.get("If-None-Match") == ETAG or h.headers.get("If-Modified-Since") == LAST_MODIFIED:
        h.send_response(304)
        h.send_header("ETag", ETAG)
        h.end_headers()
    else:
        h.reply(200, b"fresh", ETag=ETAG, Last_Modified=LAST_MODIFIED)


@pytest.mark.parametrize(
    ("validators", "header"),
    [
        (Validators(etag=ETAG), "if-none-match"),
        (Validators(last_modified=LAST_MODIFIED), "if-modified-since"),
    ],
)
def test_conditional_get_returns_304(
    server: Server, make_fetcher: MakeFetcher, validators: Validators, header: str
) -> None:
    server.routes["/cond"] = _conditional

    fetched = make_fetcher().fetch(server.url("/cond"), validators=validators)

    assert fetched.status == 304 and fetched.not_modified and fetched.body == b""
    assert fetched.validators.etag == ETAG
    assert fetched.validators.last_modified == validators.last_modified
    assert header in server.hits("/cond")[0].headers


def test_stale_validators_get_the_new_body(server: Server, make_fetcher: MakeFetcher) -> None:
    server.routes["/cond"] = _conditional

    fetched = make_fetcher().fetch(server.url("/cond"), validators=Validators(etag='"old"'))

    assert fetched.status == 200 and fetched.body == b"fresh"
    assert fetched.validators == Validators(etag=ETAG, last_modified=LAST_MODIFIED)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 451])
def test_client_errors_are_permanent(server: Server, make_fetcher: MakeFetcher, status: int) -> None:
    server.routes["/x"] = lambda h: h.reply(status, b"no")

    with pytest.raises(PermanentFetchError) as caught:
        make_fetcher().fetch(server.url("/x"))

    assert type(caught.value) is PermanentFetchError
    assert caught.value.status == status and not caught.value.transient
    assert server.url("/x") in str(caught.value)


def test_410_is_gone(server: Server, make_fetcher: MakeFetcher) -> None:
    server.routes["/x"] = lambda h: h.reply(410)

    with pytest.raises(GoneError) as caught:
        make_fetcher().fetch(server.url("/x"))
    assert caught.value.status == 410


def test_429_with_retry_after_seconds(server: Server, make_fetcher: MakeFetcher) -> None:
    server.routes["/x"] = lambda h: h.reply(429, Retry_After="120")

    with pytest.raises(TransientFetchError) as caught:
        make_fetcher().fetch(server.url("/x"))
    assert caught.value.status == 429 and caught.value.retry_after == 120.0 and caught.value.transient


def test_429_with_retry_after_http_date(server: Server, make_fetcher: MakeFetcher) -> None:
    server.routes["/x"] = lambda h: h.reply(429, Retry_After=formatdate(time.time() + 300, usegmt=True))

    with pytest.raises(TransientFetchError) as caught:
        make_fetcher().fetch(server.url("/x"))
    assert caught.value.retry_after is not None and 290 <= caught.value.retry_after <= 301


@pytest.mark.parametrize(("status", "retry_after"), [(500, None), (502, None), (503, 30.0)])
def test_server_errors_are_transient(
    server: Server, make_fetcher: MakeFetcher, status: int, retry_after: float | None
) -> None:
    extra = {} if retry_after is None else {"Retry_After": "30"}
    server.routes["/x"] = lambda h: h.reply(status, b"oops", **extra)

    with pytest.raises(TransientFetchError) as caught:
        make_fetcher().fetch(server.url("/x"))
    assert caught.value.status == status and caught.value.retry_after == retry_after


def test_parse_retry_after() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after(" 7 ") == 7.0
    assert parse_retry_after(formatdate(now + 60, usegmt=True), now=now) == pytest.approx(60.0)
    assert parse_retry_after(formatdate(now - 60, usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-5") is None
    assert parse_retry_after(None) is None


def test_server_that_never_answers_times_out(server: Server, make_fetcher: MakeFetcher) -> None:
    server.routes["/hang"] = lambda h: server.stopping.wait(10)
    fetcher = make_fetcher(read_timeout=0.3)

    started = time.monotonic()
    with pytest.raises(TransientFetchError, match="ReadTimeout"):
        fetcher.fetch(server.url("/hang"))
    assert time.monotonic() - started < 5  # the server would hold it 10 s


def _trickle(h: Handler, head: bytes, body_size: int) -> None:
    h.wfile.write(head)
    for _ in range(body_size):
        if server_stopping(h):
            return
        h.wfile.write(b"x")
        h.wfile.flush()
        time.sleep(0.05)


def server_stopping(h: Handler) -> bool:
    return h.server.state.stopping.is_set()


def test_trickling_body_is_cut_off_by_the_total_budget(server: Server, make_fetcher: MakeFetcher) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 10000\r\n\r\n"
    server.routes["/trickle"] = lambda h: _trickle(h, head, 10000)
    fetcher = make_fetcher(read_timeout=1.0, total_timeout=0.6)

    started = time.monotonic()
    with pytest.raises(TransientFetchError, match=r"no complete response within 0\.6s"):
        fetcher.fetch(server.url("/trickle"))
    assert time.monotonic() - started < 5  # each byte comes in time for the read timeout: 500 s for the body


def test_trickling_headers_are_cut_off_by_the_total_budget(server: Server, make_fetcher: MakeFetcher) -> None:
    def headers_forever(h: Handler) -> None:
        h.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        _trickle(h, b"", 10000)

    server.routes["/trickle"] = headers_forever
    fetcher = make_fetcher(read_timeout=1.0, total_timeout=0.6)

    started = time.monotonic()
    with pytest.raises(TransientFetchError, match="no complete response"):
        fetcher.fetch(server.url("/trickle"))
    assert time.monotonic() - started < 5  # each byte comes in time for the read timeout: 500 s for the body


def test_connection_refused_is_transient(make_fetcher: MakeFetcher) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    fetcher = make_fetcher(allowed_hosts=[f"127.0.0.1:{port}"])

    with pytest.raises(TransientFetchError, match="connection failed"):
        fetcher.fetch(f"http://127.0.0.1:{port}/")


def test_body_over_the_cap_with_content_length(server: Server, make_fetcher: MakeFetcher) -> None:
    server.routes["/big"] = lambda h: h.reply(200, b"x" * 5000)

    with pytest.raises(PermanentFetchError, match="body larger than 4096 bytes"):
        make_fetcher(max_body_bytes=4096).fetch(server.url("/big"))


def test_body_at_the_cap_is_accepted(server: Server, make_fetcher: MakeFetcher) -> None:
    server.routes["/big"] = lambda h: h.reply(200, b"x" * 4096)

    assert len(make_fetcher(max_body_bytes=4096).fetch(server.url("/big")).body) == 4096


def _chunked(h: Handler, chunks: int, size: int, encoding: str | None = None, payload: bytes | None = None) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "text/html")
    h.send_header("Transfer-Encoding", "chunked")
    if encoding:
        h.send_header("Content-Encoding", encoding)
    h.end_headers()
    parts = [payload[i : i + size] for i in range(0, len(payload), size)] if payload else [b"x" * size] * chunks
    for part in parts:
        if server_stopping(h):
            return
        h.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
    h.wfile.write(b"0\r\n\r\n")


def test_body_over_the_cap_without_content_length(server: Server, make_fetcher: MakeFetcher) -> None:
    server.routes["/big"] = lambda h: _chunked(h, chunks=1000, size=1024)

    with pytest.raises(PermanentFetchError, match="body larger than 10000 bytes"):
        make_fetcher(max_body_bytes=10_000).fetch(server.url("/big"))


def test_gzip_bomb_is_refused_after_decompression(server: Server, make_fetcher: MakeFetcher) -> None:
    bomb = gzip.compress(b"\0" * (50 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 100_000
    server.routes["/bomb"] = lambda h: h.reply(200, bomb, Content_Encoding="gzip")

    with pytest.raises(PermanentFetchError, match="body larger than 1048576 bytes"):
        make_fetcher(max_body_bytes=1024 * 1024).fetch(server.url("/bomb"))


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, as some servers send
    ],
)
def test_compressed_bodies_are_decoded(
    server: Server, make_fetcher: MakeFetcher, encoding: str, compress: Callable[[bytes], bytes]
) -> None:
    text = b"".join(b"<p>paragraph %d</p>" % i for i in range(5000))
    server.routes["/z"] = lambda h: _chunked(h, 0, 1000, encoding, compress(text))

    assert make_fetcher().fetch(server.url("/z")).body == text


def test_redirect_chain_within_the_limit(server: Server, make_fetcher: MakeFetcher) -> None:
    server.routes["/r1"] = lambda h: h.reply(301, Location=server.url("/r2"))
    server.routes["/r2"] = lambda h: h.reply(302, Location="/r3")  # relative
    server.routes["/r3"] = lambda h: h.reply(307, Location="final?x=1")
    server.routes["/final"] = lambda h: h.reply(200, b"done")

    fetched = make_fetcher(max_redirects=3).fetch(server.url("/r1"))

    assert fetched.body == b"done"
    assert fetched.requested_url == server.url("/r1")
    assert fetched.url == server.url("/final?x=1")


def test_too_many_redirects(server: Server, make_fetcher: MakeFetcher) -> None:
    for i in range(5):
        server.routes[f"/r{i}"] = lambda h, i=i: h.reply(302, Location=f"/r{i + 1}")
    server.routes["/r5"] = lambda h: h.reply(200, b"too far")

    with pytest.raises(PermanentFetchError, match="too many redirects"):
        make_fetcher(max_redirects=4).fetch(server.url("/r0"))
    assert len(server.hits("/r4")) == 1 and not server.hits("/r5")


def test_redirect_loop(server: Server, make_fetcher: MakeFetcher) -> None:
    server.routes["/a"] = lambda h: h.reply(302, Location="/b")
    server.routes["/b"] = lambda h: h.reply(302, Location="/a")

    with pytest.raises(PermanentFetchError, match="redirect loop"):
        make_fetcher(max_redirects=10).fetch(server.url("/a"))
    assert len(server.hits("/a")) == 1


def test_cookie_gated_redirect_is_not_a_loop(server: Server, make_fetcher: MakeFetcher) -> None:
    def gate(h: Handler) -> None:
        if "consent=yes" in (h.headers.get("Cookie") or ""):
            h.reply(200, b"article")
        else:
            h.reply(302, Location="/gate", Set_Cookie="consent=yes; Path=/")

    server.routes["/gate"] = gate
    fetcher = make_fetcher()

    assert fetcher.fetch(server.url("/gate")).body == b"article"
    fetcher.fetch(server.url("/gate"))  # cookies live for one fetch only
    assert [("cookie" in s.headers) for s in server.hits("/gate")] == [False, True, False, True]


def test_redirect_to_a_loopback_port_not_allowed(server: Server, make_fetcher: MakeFetcher) -> None:
    server.routes["/out"] = lambda h: h.reply(302, Location="http://127.0.0.1:9999/admin")

    with pytest.raises(BlockedAddressError) as caught:
        make_fetcher().fetch(server.url("/out"))
    assert "127.0.0.1:9999" in caught.value.reason and "loopback" in caught.value.reason
    assert caught.value.url == server.url("/out")


def test_redirect_to_another_scheme_is_refused(server: Server, make_fetcher: MakeFetcher) -> None:
    server.routes["/out"] = lambda h: h.reply(302, Location="file:///etc/passwd")

    with pytest.raises(BlockedAddressError, match="scheme 'file'"):
        make_fetcher().fetch(server.url("/out"))


def test_redirect_to_a_name_resolving_privately_is_refused(server: Server, make_fetcher: MakeFetcher) -> None:
    server.routes["/out"] = lambda h: h.reply(302, Location=f"http://metadata.test:{server.port}/")
    resolver = lambda host, port: ["169.254.169.254"] if host == "metadata.test" else ["127.0.0.1"]  # noqa: E731

    with pytest.raises(BlockedAddressError, match="link-local"):
        make_fetcher(resolver=resolver).fetch(server.url("/out"))
    assert len(server.seen) == 1


def test_connection_goes_to_the_checked_address(server: Server, make_fetcher: MakeFetcher) -> None:
    """news.test exists only in the stub resolver: a successful fetch proves the socket
    was opened to the address the guard approved, not to a second DNS answer."""
    server.routes["/p"] = lambda h: h.reply(200, b"pinned")
    calls: list[tuple[str, int]] = []

    def resolver(host: str, port: int) -> list[str]:
        calls.append((host, port))
        return ["127.0.0.1"]

    fetched = make_fetcher(resolver=resolver).fetch(server.url("/p", host="news.test"))

    assert fetched.body == b"pinned"
    assert calls == [("news.test", server.port)]
    assert server.hits("/p")[0].host == "news.test"


def test_hosts_resolving_to_a_private_address_are_never_contacted(server: Server, make_fetcher: MakeFetcher) -> None:
    fetcher = make_fetcher(resolver=lambda host, port: ["127.0.0.1", "10.0.0.1"])

    with pytest.raises(BlockedAddressError, match="10.0.0.1"):
        fetcher.fetch(server.url("/", host="mixed.test"))
    assert server.seen == []


@pytest.mark.parametrize("url", ["ftp://example.com/feed", "file:///etc/passwd", "gopher://example.com/"])
def test_other_schemes_are_refused(make_fetcher: MakeFetcher, url: str) -> None:
    with pytest.raises(BlockedAddressError, match="is not http or https"):
        make_fetcher().fetch(url)


@pytest.mark.parametrize("url", ["http://", "not a url", "http://exa mple.com/"])
def test_invalid_urls_are_permanent(make_fetcher: MakeFetcher, url: str) -> None:
    with pytest.raises(PermanentFetchError):
        make_fetcher().fetch(url)


ARTICLE_TYPES = ("text/html", "application/xhtml+xml")


@pytest.mark.parametrize("content_type", ["application/pdf", "image/jpeg"])
def test_wrong_content_type_is_refused_unread(
    server: Server, make_fetcher: MakeFetcher, content_type: str
) -> None:
    server.routes["/doc"] = lambda h: h.reply(200, b"%PDF-1.7 ...", content_type)

    with pytest.raises(PermanentFetchError, match=f"unexpected content type '{content_type}'"):
        make_fetcher().fetch(server.url("/doc"), content_types=ARTICLE_TYPES)


@pytest.mark.parametrize("content_type", ["text/html; charset=ISO-8859-1", "Application/XHTML+XML"])
def test_expected_content_types_compare_the_media_type(
    server: Server, make_fetcher: MakeFetcher, content_type: str
) -> None:
    server.routes["/page"] = lambda h: h.reply(200, b"<html/>", content_type)

    fetched = make_fetcher().fetch(server.url("/page"), content_types=ARTICLE_TYPES)

    assert fetched.content_type == content_type  # the full header: the charset matters downstream
    assert server.hits("/page")[0].headers["accept"].startswith("text/html, application/xhtml+xml")


def test_credentials_never_reach_messages_or_logs(
    server: Server, make_fetcher: MakeFetcher, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"http://reader:s3cret@127.0.0.1:{server.port}/missing"
    caplog.set_level(logging.DEBUG, logger="pipeline.fetching")

    with pytest.raises(PermanentFetchError) as caught:
        make_fetcher().fetch(url)

    assert "s3cret" not in str(caught.value) and "s3cret" not in caught.value.url
    assert caplog.records and all("s3cret" not in r.getMessage() for r in caplog.records)
    assert redact_url(url) == server.url("/missing").replace("://", "://reader:***@")
