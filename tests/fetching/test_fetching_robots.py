"""robots.txt over real HTTP: rules, user-agent matching, 4xx and 5xx semantics, caching."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from arrivals import assert_spaced

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


# --- RFC 9309: which rule applies ------------------------------------------------------------

RFC_EXAMPLE = b"""\
User-Agent: *
Disallow: *.gif$
Disallow: /example/
Allow: /publications/

User-Agent: foobot
Disallow:/
Allow:/example/page.html
Allow:/example/allowed.gif

User-Agent: barbot
User-Agent: bazbot
Disallow: /example/page.html

User-Agent: quxbot
"""


def allowed(server: Server, make_fetcher: MakeFetcher, robots: bytes, path: str, agent: str = "newsagg/0.1") -> bool:
    """Whether a fetcher named ``agent`` may fetch ``path`` (raw, as sent) under ``robots``."""
    server.routes["/robots.txt"] = lambda h: h.reply(200, robots, "text/plain")
    server.routes[path] = lambda h: h.reply(200, b"<html>page</html>")
    try:
        make_fetcher(user_agent=agent).fetch(server.url(path), robots=True)
    except PermanentFetchError as exc:
        assert exc.reason == "disallowed by robots.txt"
        assert not server.hits(path)
        return False
    return True


@pytest.mark.parametrize(
    ("robots", "path", "expected"),
    [
        # The longest matching rule wins, wherever it stands in the group.
        (b"User-agent: *\nAllow: /\nDisallow: /private\n", "/private/a", False),
        (b"User-agent: *\nAllow: /\nDisallow: /private\n", "/public/a", True),
        (b"User-agent: *\nDisallow: /\nAllow: /public\n", "/public/a", True),
        (b"User-agent: *\nDisallow: /folder/\nAllow: /folder/page\n", "/folder/page", True),
        # Equally long Allow and Disallow: Allow wins.
        (b"User-agent: *\nDisallow: /page\nAllow: /page\n", "/page", True),
        # "*" stands for any characters, "$" for the end of the path.
        (b"User-agent: *\nDisallow: /*.gif$\n", "/images/x.gif", False),
        (b"User-agent: *\nDisallow: /*.gif$\n", "/images/x.gifs", True),
        (b"User-agent: *\nDisallow: /private*/secret\n", "/private-area/secret", False),
        (b"User-agent: *\nDisallow: /private*/secret\n", "/private-area/public", True),
        (b"User-agent: *\nDisallow: /\nAllow: /*.html$\n", "/news/story.html", True),
        # Percent-encoded and plain spellings are the same path (RFC 9309 2.2.2).
        ("User-agent: *\nDisallow: /foo/bar/ツ\n".encode(), "/foo/bar/%E3%83%84", False),
        (b"User-agent: *\nDisallow: /foo/bar/%E3%83%84\n", "/foo/bar/%E3%83%84", False),
        (b"User-agent: *\nDisallow: /foo/bar/%62%61%7A\n", "/foo/bar/baz", False),
        (b"User-agent: *\nDisallow: /foo/bar?baz=quz\n", "/foo/bar?baz=quz", False),
    ],
)
def test_rfc9309_rule_matching(
    server: Server, make_fetcher: MakeFetcher, robots: bytes, path: str, expected: bool
) -> None:
    assert allowed(server, make_fetcher, robots, path) is expected


@pytest.mark.parametrize(
    ("agent", "path", "expected"),
    [
        ("foobot/1.0", "/example/page.html", True),  # its own group's Allow is longer
        ("foobot/1.0", "/example/allowed.gif", True),
        ("foobot/1.0", "/other", False),
        ("FooBot/2.0 (+https://foo.example)", "/other", False),  # product tokens match case-insensitively
        ("bazbot/1.0", "/example/page.html", False),  # the second agent of a shared group
        ("bazbot/1.0", "/example/other", True),  # a named group replaces "*" entirely
        ("quxbot/1.0", "/example/page.html", True),  # an empty group allows everything
        ("newsagg/0.1", "/example/page.html", False),  # no group of ours: "*"
        ("newsagg/0.1", "/publications/a", True),
        ("newsagg/0.1", "/img/x.gif", False),
        # Only the product token selects a group, not words of the header's comment.
        ("newsagg/0.1 (+https://foobot.example; a bot)", "/other", True),
    ],
)
def test_rfc9309_user_agent_groups(
    server: Server, make_fetcher: MakeFetcher, agent: str, path: str, expected: bool
) -> None:
    assert allowed(server, make_fetcher, RFC_EXAMPLE, path, agent) is expected


# --- Crawl-delay ------------------------------------------------------------------------------


def page_starts(server: Server, make_fetcher: MakeFetcher, robots: bytes, **settings: float) -> list[float]:
    """Gaps between the starts of four pages of one domain fetched together, robots.txt obeyed."""
    server.routes["/robots.txt"] = lambda h: h.reply(200, robots, "text/plain")
    server.routes["/p"] = lambda h: h.reply(200, b"<html>page</html>")
    fetcher = make_fetcher(concurrency=4, per_domain_concurrency=4, **settings)

    results = list(fetcher.fetch_all([server.url(f"/p?{i}") for i in range(4)], robots=True))

    assert len(results) == 4 and all(not isinstance(r, Exception) for _, r in results)
    starts = sorted(s.at for s in server.hits("/p"))
    return [b - a for a, b in zip(starts, starts[1:], strict=False)]


def test_crawl_delay_is_a_floor_under_the_politeness_delay(server: Server, make_fetcher: MakeFetcher) -> None:
    gaps = page_starts(server, make_fetcher, b"User-agent: *\nCrawl-delay: 0.3\n", politeness_delay=0.0)

    assert_spaced(gaps, 0.3)


def test_a_larger_politeness_delay_stays(server: Server, make_fetcher: MakeFetcher) -> None:
    gaps = page_starts(server, make_fetcher, b"User-agent: *\nCrawl-delay: 0.05\n", politeness_delay=0.25)

    assert_spaced(gaps, 0.25)


def test_a_hostile_crawl_delay_is_capped(
    server: Server, make_fetcher: MakeFetcher, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pipeline.fetching")

    gaps = page_starts(
        server, make_fetcher, b"User-agent: *\nCrawl-delay: 86400\n", politeness_delay=0.0, max_crawl_delay=0.2
    )

    assert_spaced(gaps, 0.2)  # as slow as the cap: not a day per page, not unthrottled
    assert "robots.txt asks for Crawl-delay 86400s; using the cap, 0.2s" in caplog.text
