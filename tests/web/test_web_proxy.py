"""`newsagg serve` behind a reverse proxy that publishes it under a path (https://news.example/news/).

The requests are what such a proxy sends over loopback: the public Host, `X-Forwarded-Proto`
and `X-Forwarded-For`, the path with the prefix stripped (nginx `proxy_pass http://app/;`) or
kept (`proxy_pass http://app;`), from the proxy's own address.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from lxml import etree, html
from test_web_pages import absorbed_into
from test_web_serve import serving

from pipeline.cli import main
from pipeline.settings import Settings

PREFIX = "/news"
PUBLIC = {"host": "news.example", "x-forwarded-proto": "https", "x-forwarded-for": "203.0.113.7"}
ATOM = "{http://www.w3.org/2005/Atom}"


def proxied(base: str, path: str, *, strip: bool, source: str = "127.0.0.1") -> httpx.Response:
    """GET ``path`` (a path under the prefix, as a reader's browser asks for it) as the proxy forwards it."""
    assert path == PREFIX or path.startswith(PREFIX + "/"), f"a link outside the prefix: {path}"
    forwarded = (path[len(PREFIX):] or "/") if strip else path
    with httpx.Client(transport=httpx.HTTPTransport(local_address=source)) as client:
        return client.get(base + forwarded, headers=PUBLIC, follow_redirects=False)


def links_on(page: str) -> list[str]:
    """The site's own links and resources on a page (those that start with "/")."""
    tree = html.fromstring(page)
    found = tree.xpath("//a/@href | //link/@href | //form/@action | //script/@src | //img/@src")
    return [link for link in found if link.startswith("/")]


@pytest.mark.parametrize("strip", [True, False], ids=["prefix-stripped", "prefix-kept"])
def test_every_link_redirect_and_feed_url_carries_the_prefix_and_the_public_address(
    demo_web_settings: Settings, strip: bool
) -> None:
    survivor = absorbed_into(demo_web_settings, "absorbed-proxy")
    with serving(demo_web_settings.data_dir, env={"NEWSAGG_WEB__ROOT_PATH": PREFIX}) as (base, _):
        # Every kind of page a reader can reach from the river and a search (a few of each), and the
        # resources they load; every link on them must lead under the prefix.
        todo = [f"{PREFIX}/", f"{PREFIX}/search?q=desalination", f"{PREFIX}/search?q=the&limit=2"]
        seen: set[str] = set()
        kinds: dict[str, int] = {}
        while todo:
            path = todo.pop(0)
            kind = urlsplit(path).path.split("/")[2] if path.startswith(PREFIX + "/") else path
            if path in seen or kinds.get(kind, 0) >= 3:
                continue
            seen.add(path)
            kinds[kind] = kinds.get(kind, 0) + 1
            response = proxied(base, path, strip=strip)
            assert response.status_code == 200, f"{path}: {response.status_code}"
            if response.headers["content-type"].startswith("text/html"):
                todo += links_on(response.text)
        assert {"", "search", "stories", "articles", "feeds", "runs", "static", "api", "feed.atom"} <= set(kinds)

        moved = proxied(base, f"{PREFIX}/stories/absorbed-proxy", strip=strip)
        assert (moved.status_code, moved.headers["location"]) == (301, f"{PREFIX}/stories/{survivor}")
        moved = proxied(base, f"{PREFIX}/api/stories/absorbed-proxy", strip=strip)
        assert (moved.status_code, moved.headers["location"]) == (301, f"{PREFIX}/api/stories/{survivor}")

        atom = etree.fromstring(proxied(base, f"{PREFIX}/feed.atom?outlet=Metro+Wire+Online", strip=strip).content)
        assert atom.find(f"{ATOM}link[@rel='self']").get("href") == (
            "https://news.example/news/feed.atom?outlet=Metro+Wire+Online")
        assert atom.find(f"{ATOM}link[@rel='alternate']").get("href") == "https://news.example/news/"
        entries = atom.findall(f"{ATOM}entry/{ATOM}link")
        assert entries and all(e.get("href").startswith("https://news.example/news/stories/") for e in entries)
        feed = proxied(base, f"{PREFIX}/feed.json", strip=strip).json()
        assert feed["home_page_url"] == "https://news.example/news/"
        assert feed["feed_url"] == "https://news.example/news/feed.json"
        assert all(item["url"].startswith("https://news.example/news/stories/") for item in feed["items"])
        assert proxied(base, f"{PREFIX}/openapi.json", strip=strip).json()["servers"] == [{"url": PREFIX}]
        missing = proxied(base, f"{PREFIX}/api/stories/no-such-story", strip=strip)
        assert missing.status_code == 404 and missing.json()["status"] == 404  # the API still answers JSON


def test_forwarded_headers_are_believed_only_from_the_trusted_proxies(demo_web_settings: Settings) -> None:
    # 127.0.0.2 is loopback too, but not the default trusted address.
    def feed_home(base: str) -> str:
        url: str = proxied(base, f"{PREFIX}/feed.json", strip=True, source="127.0.0.2").json()["home_page_url"]
        return url

    with serving(demo_web_settings.data_dir, env={"NEWSAGG_WEB__ROOT_PATH": PREFIX}) as (base, _):
        assert feed_home(base) == "http://news.example/news/"
    trusted = {"NEWSAGG_WEB__ROOT_PATH": PREFIX, "NEWSAGG_WEB__TRUSTED_PROXIES": "127.0.0.2"}
    with serving(demo_web_settings.data_dir, env=trusted) as (base, _):
        assert feed_home(base) == "https://news.example/news/"


@pytest.mark.parametrize("value", ["news", "/news?x=1", "/news folder"])
def test_a_root_path_that_is_not_a_path_is_a_settings_error(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NEWSAGG_WEB__ROOT_PATH", value)
    assert main(["--data-dir", str(tmp_path), "serve", "--port", "0"]) == 2
    assert "invalid settings: web.root_path: must be a URL path such as /news" in capsys.readouterr().err
