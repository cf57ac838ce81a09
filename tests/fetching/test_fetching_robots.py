"""robots.txt over real HTTP: rules, user-agent matching, 4xx and 5xx semantics, caching."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from pipeline.errors import BlockedAddressError, PermanentFetchError, TransientFetchError
from pipeline.fetching import Fetcher

if TYPE_CHECKING:
    from conftest import Server

MakeFetcher = Callable[..., Fetcher]


def serve_pages(server: Server, robots_status: int = 200, robots_body: bytes = b"") -> None:
    server.routes["/robots.txt"] = lambda h: h.reply(robots_status, robots_body, "text/plain")
    for path in ("/public/a", "/public/b", "/private/x"):
        server.routes[path] = lambda h: h.reply(200, b"<html>article</html>")


def test_rules_allow_and_disallow(server: Server, make_fetcher: MakeFetcher) -> None:
    serve_pages(server, robots_body=b"User-agent: *\nDisallow: /private\n")
    fetcher = make_fetcher()

    assert fetcher.fetch(server.url("/public/a"), robots=True).status == 200
    assert fetcher.fetch(server.url("/public/b"), robots=True).status == 200
    with pytest.raises(PermanentFetchError, match="disallowed by robots.txt"):
        fetcher.fetch(server.url("/private/x"), robots=True)

    assert not server.hits("/private/x")
    assert len(server.hits("/robots.txt")) == 1  # cached for the fetcher's life


def test_rules_for_our_user_agent_win(server: Server, make_fetcher: MakeFetcher) -> None:
    serve_pages(server, robots_body=b"User-agent: otherbot\nAllow: /\n\nUser-agent: newsagg\nDisallow: /\n")

    with pytest.raises(PermanentFetchError, match="disallowed by robots.txt"):
        make_fetcher().fetch(server.url("/public/a"), robots=True)


def test_other_agents_rules_do_not_apply(server: Server, make_fetcher: MakeFetcher) -> None:
    serve_pages(server, robots_body=b"User-agent: otherbot\nDisallow: /\n")

    assert make_fetcher().fetch(server.url("/public/a"), robots=True).status == 200


@pytest.mark.parametrize("status", [401, 403, 404, 410])
def test_robots_4xx_allows_all(server: Server, make_fetcher: MakeFetcher, status: int) -> None:
    serve_pages(server, robots_status=status)

    assert make_fetcher().fetch(server.url("/private/x"), robots=True).status == 200


@pytest.mark.parametrize("status", [500, 503, 429])
def test_robots_5xx_disallows_for_this_run(server: Server, make_fetcher: MakeFetcher, status: int) -> None:
    serve_pages(server, robots_status=status)
    fetcher = make_fetcher()

    for path in ("/public/a", "/public/b"):
        with pytest.raises(TransientFetchError, match="robots.txt unavailable"):
            fetcher.fetch(server.url(path), robots=True)

    assert not server.hits("/public/a") and not server.hits("/public/b")
    assert len(server.hits("/robots.txt")) == 1


def test_unreachable_robots_disallows(server: Server, make_fetcher: MakeFetcher) -> None:
    server.routes["/robots.txt"] = lambda h: server.stopping.wait(10)
    serve_pages_without_robots = {"/public/a": lambda h: h.reply(200, b"x")}
    server.routes.update(serve_pages_without_robots)

    with pytest.raises(TransientFetchError, match="robots.txt unavailable"):
        make_fetcher(read_timeout=0.2).fetch(server.url("/public/a"), robots=True)
    assert not server.hits("/public/a")


def test_robots_redirect_is_followed_and_guarded(server: Server, make_fetcher: MakeFetcher) -> None:
    serve_pages(server)
    server.routes["/robots.txt"] = lambda h: h.reply(301, Location="/real-robots.txt")
    server.routes["/real-robots.txt"] = lambda h: h.reply(200, b"User-agent: *\nDisallow: /private\n")
    fetcher = make_fetcher()

    assert fetcher.fetch(server.url("/public/a"), robots=True).status == 200
    with pytest.raises(PermanentFetchError, match="disallowed"):
        fetcher.fetch(server.url("/private/x"), robots=True)


def test_robots_redirect_to_a_refused_address(server: Server, make_fetcher: MakeFetcher) -> None:
    serve_pages(server)
    server.routes["/robots.txt"] = lambda h: h.reply(302, Location="http://127.0.0.1:9999/robots.txt")

    with pytest.raises(BlockedAddressError, match="robots.txt"):
        make_fetcher().fetch(server.url("/public/a"), robots=True)


def test_robots_not_consulted_unless_asked(server: Server, make_fetcher: MakeFetcher) -> None:
    serve_pages(server, robots_body=b"User-agent: *\nDisallow: /\n")

    assert make_fetcher().fetch(server.url("/private/x")).status == 200
    assert make_fetcher(respect_robots=False).fetch(server.url("/private/x"), robots=True).status == 200
    assert not server.hits("/robots.txt")


def test_robots_per_host(server: Server, make_fetcher: MakeFetcher) -> None:
    """One robots.txt per scheme+host+port: hosts of one domain each have their own."""

    def robots(h):  # type: ignore[no-untyped-def]
        rules = b"Disallow: /private\n" if h.headers["Host"].startswith("a.") else b""
        h.reply(200, b"User-agent: *\n" + rules, "text/plain")

    serve_pages(server)
    server.routes["/robots.txt"] = robots
    fetcher = make_fetcher()

    assert fetcher.fetch(server.url("/private/x", host="b.example.com"), robots=True).status == 200
    with pytest.raises(PermanentFetchError, match="disallowed"):
        fetcher.fetch(server.url("/private/x", host="a.example.com"), robots=True)
    assert sorted(s.host for s in server.hits("/robots.txt")) == ["a.example.com", "b.example.com"]
