"""The demo corpus server over real loopback HTTP, and the integrity of the corpus it serves."""

from __future__ import annotations

import html
import http.client
import json
import re
import socket
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.robotparser import RobotFileParser

import httpx
import pytest
import yaml

from pipeline.demo.server import NO_FEED_LINK, CorpusServer, bundled_corpus_dir

CORPUS = bundled_corpus_dir()
ATOM = "{http://www.w3.org/2005/Atom}"
AGENCIES = {"AP", "AFP", "Reuters", "dpa", "agencies", None}


@pytest.fixture(scope="module")
def server() -> Iterator[CorpusServer]:
    with CorpusServer() as running:
        yield running


@pytest.fixture
def client(server: CorpusServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=10) as c:
        yield c


def raw_status(server: CorpusServer, target: str) -> int:
    """GET a request target byte for byte (httpx would normalise ``..`` away)."""
    port = urlsplit(server.base_url).port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", target)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def feed_kind(path: Path) -> str:
    root = ET.parse(path).getroot()
    return "atom" if root.tag == ATOM + "feed" else root.tag


def feed_links(xml_text: str) -> list[str]:
    root = ET.fromstring(xml_text)
    if root.tag == ATOM + "feed":
        return [link.attrib["href"] for entry in root.iter(ATOM + "entry") for link in entry.iter(ATOM + "link")
                if link.attrib.get("rel", "alternate") == "alternate"]
    return [item.findtext("link", "") for item in root.iter("item")]


def expected() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))
    return data


def article_files() -> set[str]:
    return {"/" + p.relative_to(CORPUS).as_posix() for p in CORPUS.glob("*/articles/*.html")}


def feed_files() -> list[Path]:
    return sorted(CORPUS.glob("*/feed.xml"))


# --- the server ---------------------------------------------------------------------------------


def test_base_url_is_loopback_with_an_ephemeral_port(server: CorpusServer) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server.base_url)
    assert urlsplit(server.base_url).port != 0


@pytest.mark.parametrize("feed", feed_files(), ids=lambda p: p.parent.name)
def test_feeds_are_served_with_their_own_content_type(client: httpx.Client, feed: Path) -> None:
    response = client.get(f"/{feed.parent.name}/feed.xml")
    assert response.status_code == 200
    kind = feed_kind(feed)
    assert response.headers["content-type"] == ("application/atom+xml" if kind == "atom" else "application/rss+xml")


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/harbor-city-ledger/articles/port-strike.html", "text/html; charset=utf-8"),
        ("/feeds.yaml", "application/yaml"),
        ("/expected.json", "application/json"),
        ("/robots.txt", "text/plain; charset=utf-8"),
    ],
)
def test_content_type_by_extension(client: httpx.Client, path: str, content_type: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type


def test_base_placeholder_is_replaced_with_the_server_url(server: CorpusServer, client: httpx.Client) -> None:
    feed = client.get("/harbor-city-ledger/feed.xml").text
    page = client.get("/harbor-city-ledger/articles/port-strike.html").text
    feeds_yaml = client.get("/feeds.yaml").text
    for text in (feed, page, feeds_yaml):
        assert "{{BASE}}" not in text
    assert f"<link>{server.base_url}/harbor-city-ledger/articles/port-strike.html</link>" in feed
    assert f'href="{server.base_url}/harbor-city-ledger/articles/port-strike.html"' in page
    assert f"{server.base_url}/valley-courier/feed.xml" in feeds_yaml


def test_etag_is_strong_and_if_none_match_gives_304(client: httpx.Client) -> None:
    first = client.get("/the-morning-signal/feed.xml")
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    assert client.get("/the-morning-signal/feed.xml").headers["etag"] == etag
    again = client.get("/the-morning-signal/feed.xml", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    listed = client.get("/the-morning-signal/feed.xml", headers={"If-None-Match": f'"nope", W/{etag}'})
    assert listed.status_code == 304
    other = client.get("/the-morning-signal/feed.xml", headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200
    assert other.content == first.content


def test_if_modified_since_gives_304_until_the_file_changes(client: httpx.Client) -> None:
    first = client.get("/valley-courier/feed.xml")
    last_modified = first.headers["last-modified"]
    parsedate_to_datetime(last_modified)
    same = client.get("/valley-courier/feed.xml", headers={"If-Modified-Since": last_modified})
    assert same.status_code == 304
    earlier = formatdate(parsedate_to_datetime(last_modified).timestamp() - 86400, usegmt=True)
    assert client.get("/valley-courier/feed.xml", headers={"If-Modified-Since": earlier}).status_code == 200
    garbage = client.get("/valley-courier/feed.xml", headers={"If-Modified-Since": "yesterday-ish"})
    assert garbage.status_code == 200


def test_if_none_match_wins_over_if_modified_since(client: httpx.Client) -> None:
    last_modified = client.get("/rheintal-bote/feed.xml").headers["last-modified"]
    headers = {"If-None-Match": '"stale"', "If-Modified-Since": last_modified}
    assert client.get("/rheintal-bote/feed.xml", headers=headers).status_code == 200


def test_head_has_the_get_headers_and_no_body(client: httpx.Client) -> None:
    get = client.get("/coastline-daily/feed.xml")
    head = client.head("/coastline-daily/feed.xml")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(get.content))
    assert head.headers["etag"] == get.headers["etag"]


def test_query_strings_are_ignored(client: httpx.Client) -> None:
    clean = client.get("/harbor-city-ledger/articles/port-strike.html")
    tracked = client.get("/harbor-city-ledger/articles/port-strike.html?utm_source=rss&utm_medium=feed")
    assert tracked.status_code == 200
    assert tracked.content == clean.content


@pytest.mark.parametrize(
    "path", ["/", "/nope.html", "/harbor-city-ledger/index.html", "/harbor-city-ledger", "/private/anything.html",
             "/private/news-sitemap.xml", "/harbor-city-ledger/articles/"]
)
def test_missing_paths_and_directories_are_404(client: httpx.Client, path: str) -> None:
    assert client.get(path).status_code == 404
    assert client.head(path).status_code == 404


@pytest.mark.parametrize(
    "target",
    [
        "/../server.py",
        "/harbor-city-ledger/../../server.py",
        "/%2e%2e/server.py",
        "/harbor-city-ledger/..%2f..%2fserver.py",
        "/%2Fetc%2Fpasswd",
        "/harbor-city-ledger/..%5C..%5Cserver.py",
        "/./feeds.yaml",
        "//etc/passwd",
    ],
)
def test_path_traversal_is_refused(server: CorpusServer, target: str) -> None:
    assert raw_status(server, target) == 404


def test_symlinks_out_of_the_root_are_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "corpus", tmp_path / "secret.txt"
    root.mkdir()
    outside.write_text("secret", encoding="utf-8")
    (root / "note.txt").write_text("see {{BASE}}/note.txt", encoding="utf-8")
    (root / "leak.txt").symlink_to(outside)
    (root / "alias.txt").symlink_to(root / "note.txt")
    with CorpusServer(root=root) as server, httpx.Client(base_url=server.base_url, timeout=10) as client:
        assert client.get("/leak.txt").status_code == 404
        assert client.get("/alias.txt").status_code == 200
        assert client.get("/note.txt").text == f"see {server.base_url}/note.txt"


def test_robots_txt_allows_everything_but_private(server: CorpusServer, client: httpx.Client) -> None:
    response = client.get("/robots.txt")
    assert response.status_code == 200
    assert "etag" in response.headers and "last-modified" in response.headers
    robots = RobotFileParser()
    robots.parse(response.text.splitlines())
    assert robots.can_fetch("newsagg", f"{server.base_url}/harbor-city-ledger/feed.xml")
    assert robots.can_fetch("newsagg", f"{server.base_url}/kestrel-tribune/articles/valmora-desalination.html")
    assert not robots.can_fetch("newsagg", f"{server.base_url}/private/x.html")


def test_each_outlet_has_a_home_page_and_a_news_sitemap_listed_in_robots_txt(
    server: CorpusServer, client: httpx.Client
) -> None:
    robots = client.get("/robots.txt").text
    for feed in feed_files():
        outlet = feed.parent.name
        links = feed_links(feed.read_text(encoding="utf-8").replace("{{BASE}}", server.base_url))
        sitemap = client.get(f"/{outlet}/news-sitemap.xml")
        assert sitemap.headers["content-type"] == "application/xml"
        root = ET.fromstring(sitemap.content)
        ns = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9", "n": "http://www.google.com/schemas/sitemap-news/0.9"}
        assert [u.findtext("s:loc", namespaces=ns) for u in root.findall("s:url", ns)] == links
        assert all(u.findtext("n:news/n:publication_date", namespaces=ns) for u in root.findall("s:url", ns))
        assert f"Sitemap: {server.base_url}/{outlet}/news-sitemap.xml" in robots.splitlines()

        page = client.get(f"/{outlet}/")
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert all(f'href="{html.escape(link)}"' in page.text for link in links)
        names_feed = 'rel="alternate"' in page.text and 'href="feed.xml"' in page.text
        assert names_feed == (outlet != NO_FEED_LINK), outlet


def test_requests_are_logged(server: CorpusServer, client: httpx.Client) -> None:
    client.get("/northfield-gazette/feed.xml")
    client.head("/missing.xml")
    assert ("GET", "/northfield-gazette/feed.xml", 200) in server.requests
    assert ("HEAD", "/missing.xml", 404) in server.requests


def test_stop_releases_the_port_and_base_url_needs_a_running_server() -> None:
    server = CorpusServer()
    with pytest.raises(RuntimeError):
        server.base_url  # noqa: B018
    port = urlsplit(server.start()).port
    server.stop()
    with pytest.raises(RuntimeError):
        server.base_url  # noqa: B018
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", port or 0))


# --- the corpus ---------------------------------------------------------------------------------


def test_corpus_size() -> None:
    outlets = [f.parent.name for f in feed_files()]
    assert len(outlets) >= 8
    assert len(article_files()) >= 48
    assert sum(feed_kind(f) == "atom" for f in feed_files()) >= 3
    assert sum(feed_kind(f) == "rss" for f in feed_files()) >= 3


def test_every_article_appears_exactly_once_in_expected() -> None:
    truth = expected()
    listed = [m for cluster in truth["clusters"] for m in cluster["members"]] + truth["singletons"]
    assert len(listed) == len(set(listed)), "an article is listed twice"
    assert set(listed) == article_files()


def test_clusters_are_agency_stories_of_three_to_six_outlets() -> None:
    clusters = expected()["clusters"]
    assert sum(3 <= len(c["members"]) <= 6 for c in clusters) >= 6
    for cluster in clusters:
        assert 2 <= len(cluster["members"]) <= 6, cluster["story"]
        assert cluster["agency"] in AGENCIES
        outlets = [m.split("/")[1] for m in cluster["members"]]
        assert len(outlets) == len(set(outlets)), "one outlet twice in a cluster"


def test_must_stay_apart_and_searches_refer_to_known_articles() -> None:
    truth = expected()
    cluster_of = {m: i for i, c in enumerate(truth["clusters"]) for m in c["members"]}
    for first, second, why in truth["must_stay_apart"]:
        assert {first, second} <= article_files() and why
        assert first not in cluster_of or cluster_of[first] != cluster_of.get(second)
    for search in truth["searches"]:
        assert search["query"] and 0 <= search["expect_members_of_cluster"] < len(truth["clusters"])


def test_feeds_yaml_lists_every_outlet_feed() -> None:
    feeds = yaml.safe_load((CORPUS / "feeds.yaml").read_text(encoding="utf-8"))["feeds"]
    urls = [feed["url"] for feed in feeds]
    assert sorted(urls) == sorted(f"{{{{BASE}}}}/{f.parent.name}/feed.xml" for f in feed_files())
    assert all(feed["name"] and feed["language"] in ("en", "de") and feed["tags"] for feed in feeds)


def test_every_feed_entry_link_is_served_and_every_article_is_in_a_feed(
    server: CorpusServer, client: httpx.Client
) -> None:
    linked: set[str] = set()
    for feed in feed_files():
        links = feed_links(client.get(f"/{feed.parent.name}/feed.xml").text)
        assert links, feed
        for link in links:
            assert link.startswith(server.base_url + "/"), link
            assert client.get(link).status_code == 200, link
            linked.add(urlsplit(link).path)
    assert linked == article_files()
