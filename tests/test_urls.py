"""Canonical URLs: one spelling per article, ids stable across runs."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.urls import MAX_URL_LENGTH, TRACKING_PARAMS, article_id, canonicalize, feed_url_key

BASE = "https://news.example.org/section/index.html"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTP://Example.COM/a", "http://example.com/a"),
        ("https://example.com", "https://example.com/"),
        ("https://example.com?b=1", "https://example.com/?b=1"),
        ("http://example.com:80/a", "http://example.com/a"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("https://example.com:8443/a", "https://example.com:8443/a"),
        ("http://example.com:/a", "http://example.com/a"),
        ("https://user:secret@example.com/a", "https://example.com/a"),
        ("https://example.com/a#comments", "https://example.com/a"),
        ("https://example.com./a", "https://example.com/a"),
        ("https://example.com/a/", "https://example.com/a/"),
        ("https://example.com/a", "https://example.com/a"),
        ("https://example.com/a/./b/../c", "https://example.com/a/c"),
        ("https://example.com/a/%2e%2E/c", "https://example.com/c"),
        ("https://example.com/%7euser/%2fx/%e2%82%ac", "https://example.com/~user/%2Fx/%E2%82%AC"),
        ("https://example.com/a b/€", "https://example.com/a%20b/%E2%82%AC"),
        ("https://example.com/100%/x", "https://example.com/100%25/x"),
        ("https://Bücher.Example/a", "https://xn--bcher-kva.example/a"),
        ("https://例え。テスト/", "https://xn--r8jz45g.xn--zckzah/"),
        ("https://xn--bcher-kva.example/", "https://xn--bcher-kva.example/"),
        ("http://[2001:DB8:0:0::1]:8080/x", "http://[2001:db8::1]:8080/x"),
        ("http://127.0.0.1:8000/feed", "http://127.0.0.1:8000/feed"),
        ("  https://example.com/a\n", "https://example.com/a"),
        ("https://exam\tple.com/a", "https://example.com/a"),
    ],
)
def test_canonical_spelling(url: str, expected: str) -> None:
    assert canonicalize(url) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://e.com/a?utm_source=rss&utm_medium=feed&id=7", "https://e.com/a?id=7"),
        ("https://e.com/a?UTM_Campaign=x", "https://e.com/a"),
        ("https://e.com/a?fbclid=1&gclid=2&mc_cid=3&mc_eid=4&igshid=5", "https://e.com/a"),
        ("https://e.com/a?ref=home&ref_src=twsrc&cmpid=x&ocid=y&_ga=z&yclid=q&spm=a.b", "https://e.com/a"),
        ("https://e.com/a?b=2&a=1&c=3", "https://e.com/a?a=1&b=2&c=3"),
        # same-name parameters keep their relative order
        ("https://e.com/a?tag=z&id=1&tag=a", "https://e.com/a?id=1&tag=z&tag=a"),
        ("https://e.com/a?flag&b=", "https://e.com/a?b=&flag"),
        ("https://e.com/a?&&a=1&&", "https://e.com/a?a=1"),
        ("https://e.com/a?q=a+b&r=%7e%2f", "https://e.com/a?q=a+b&r=~%2F"),
        ("https://e.com/a?q=caf%C3%A9&x=é", "https://e.com/a?q=caf%C3%A9&x=%C3%A9"),
        ("https://e.com/a?utm_source=x", "https://e.com/a"),
    ],
)
def test_query_cleanup(url: str, expected: str) -> None:
    assert canonicalize(url) == expected


def test_tracking_set_documents_the_brief() -> None:
    for name in ("fbclid", "gclid", "mc_cid", "mc_eid", "igshid", "ref", "ref_src", "cmpid", "ocid", "_ga", "yclid", "spm"):
        assert name in TRACKING_PARAMS


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/story/1", "https://news.example.org/story/1"),
        ("story/1", "https://news.example.org/section/story/1"),
        ("../story/1", "https://news.example.org/story/1"),
        ("//cdn.example.net/a", "https://cdn.example.net/a"),
        ("?page=2", "https://news.example.org/section/index.html?page=2"),
        ("https://other.example/x", "https://other.example/x"),
    ],
)
def test_relative_links_resolve_against_base(url: str, expected: str) -> None:
    assert canonicalize(url, base=BASE) == expected


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "mailto:editor@example.org",
        "ftp://example.org/file",
        "file:///etc/passwd",
        "http://",
        "https:///path",
        "http://[::1",
        "http://[not-ipv6]/",
        "http://example.com:99999/",
        "http://example.com:port/",
        "http://exa mple.com/",
        "http://exa<mple.com/",
        "http://a..b/",
        "http://-bad.example/",
        "not a url at all",
        "https://" + "a" * 64 + ".example/",
        "https://example.com/" + "a" * MAX_URL_LENGTH,
    ],
)
def test_unusable_urls_give_none(url: str) -> None:
    assert canonicalize(url) is None
    if url.strip() and ":" in url:  # scheme-less text is a (weird) relative link given a base
        assert canonicalize(url, base=BASE) is None


def test_a_url_whose_canonical_spelling_is_too_long_gives_none() -> None:
    # 700 Chinese characters are 700 characters as written and 6,300 percent-encoded.
    assert canonicalize("https://example.com/" + "新" * 700) is None
    assert canonicalize("https://example.com/" + "新" * 200) is not None


def test_relative_without_base_is_none() -> None:
    assert canonicalize("/story/1") is None
    assert canonicalize("example.com/story") is None


def test_article_id_is_sha256_prefix() -> None:
    url = "https://example.com/a"
    assert article_id(url) == hashlib.sha256(url.encode()).hexdigest()[:16]
    assert len(article_id(url)) == 16
    assert article_id(url) != article_id("https://example.com/b")


url_pieces = st.sampled_from(list("abcXYZ019-._~:/?#[]@!$&'()*+,;=% \t\né€例") + ["%2e", "%7E", "%zz", "utm_x=1", "../", "./"])
url_like = st.builds(
    lambda scheme, host, rest: f"{scheme}{host}{rest}",
    st.sampled_from(["http://", "https://", "HTTP://", "", "//", "javascript:", "ftp://"]),
    st.sampled_from(["example.com", "Ex.COM:80", "u:p@h.org", "[::1]", "bücher.de", "", "a..b"]),
    st.lists(url_pieces, max_size=30).map("".join),
)


@settings(max_examples=400, deadline=None)
@given(url=st.one_of(url_like, st.text(max_size=60)), base=st.one_of(st.none(), st.just(BASE), st.text(max_size=20)))
def test_canonicalize_never_raises_and_is_idempotent(url: str, base: str | None) -> None:
    result = canonicalize(url, base=base)
    if result is not None:
        assert result.startswith(("http://", "https://"))
        assert "#" not in result
        assert canonicalize(result) == result
        assert canonicalize(result, base=BASE) == result


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("HTTP://News.Example:80/rss#top", "http://news.example/rss"),  # case, default port, fragment
        ("https://reader:secret@news.example/private.xml", "https://news.example/private.xml"),  # a new password: same feed
        ("https://news.example/a/../rss.xml?x=%7e", "https://news.example/rss.xml?x=~"),
        ("https://news.example", "https://news.example/"),
        # The query selects what a feed carries: kept whole, in order.
        ("https://git.example/commits.atom?ref=main&utm_source=x", "https://git.example/commits.atom?ref=main&utm_source=x"),
        ("https://news.example/rss?b=2&a=1", "https://news.example/rss?b=2&a=1"),
        ("ftp://news.example/rss", None),
        ("news.example/rss", None),
    ],
)
def test_feed_url_key(url: str, key: str | None) -> None:
    assert feed_url_key(url) == key
    assert key is None or feed_url_key(key) == key
    assert feed_url_key("http://news.example/rss") != feed_url_key("https://news.example/rss")
