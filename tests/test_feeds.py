"""Feed lists and feed documents: parsing is pure (bytes in, records out), so no HTTP here
except a loopback server that must never be contacted."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.errors import ConfigError, FeedParseError
from pipeline.feeds import (
    html_to_text,
    load_feed_list,
    merge_feed_lists,
    parse_feed,
    read_opml,
    write_feed_list,
)
from pipeline.models import FeedSource, Fetched, ParsedFeed, Validators

FEED_URL = "https://news.example.org/rss/world.xml"
NOW = datetime(2025, 1, 10, 12, 0, tzinfo=UTC)
SOURCE = FeedSource(id="harbor-city-ledger", name="Harbor City Ledger", url=FEED_URL)


def fetched(body: bytes | str, content_type: str | None = "application/rss+xml; charset=utf-8", *, url: str = FEED_URL, status: int = 200) -> Fetched:
    data = body.encode("utf-8") if isinstance(body, str) else body
    return Fetched(
        requested_url=url, url=url, status=status, body=data, content_type=content_type, validators=Validators()
    )


def parse(body: bytes | str, content_type: str | None = "application/rss+xml; charset=utf-8", *, max_entries: int = 500) -> ParsedFeed:
    return parse_feed(SOURCE, fetched(body, content_type), max_entries=max_entries, now=NOW)


def rss(items: str, *, channel_extra: str = "", declaration: str = '<?xml version="1.0" encoding="utf-8"?>') -> str:
    return (
        f'{declaration}\n<rss version="2.0"><channel><title>World news</title>'
        f"<link>https://news.example.org/</link>{channel_extra}{items}</channel></rss>"
    )


def item(link: str | None = "https://news.example.org/a/1", title: str | None = "Storm hits coast", *, guid: str | None = None, date: str | None = "Thu, 09 Jan 2025 08:30:00 GMT", description: str | None = "&lt;p&gt;First.&lt;/p&gt;&lt;p&gt;Second.&lt;/p&gt;") -> str:
    parts = ["<item>"]
    if title is not None:
        parts.append(f"<title>{title}</title>")
    if link is not None:
        parts.append(f"<link>{link}</link>")
    if guid is not None:
        parts.append(f'<guid isPermaLink="false">{guid}</guid>')
    if date is not None:
        parts.append(f"<pubDate>{date}</pubDate>")
    if description is not None:
        parts.append(f"<description>{description}</description>")
    parts.append("</item>")
    return "".join(parts)


# -- RSS, Atom, JSON Feed --------------------------------------------------------------------


def test_rss_entries_are_clean_records() -> None:
    body = rss(
        item("https://news.example.org/a/1?utm_source=rss#top", guid="g-1")
        + item("/a/2", "Second story", date="Thu, 09 Jan 2025 10:00:00 +0100",
               description="Plain &amp;amp; simple")
        + '<item><title>With content</title><link>https://news.example.org/a/3</link>'
        '<dc:creator xmlns:dc="http://purl.org/dc/elements/1.1/">Ann Reporter</dc:creator>'
        '<content:encoded xmlns:content="http://purl.org/rss/1.0/modules/content/"><![CDATA[<p>Body one.</p>'
        "<script>alert(1)</script><p>Body <b>two</b><br/>line two.</p>]]></content:encoded></item>",
        channel_extra="<ttl>30</ttl>",
    )
    parsed = parse(body)
    assert parsed.title == "World news"
    assert parsed.error is None
    assert parsed.ttl_minutes == 30
    first, second, third = parsed.entries
    assert first.feed_id == "harbor-city-ledger"
    assert first.url == "https://news.example.org/a/1"
    assert first.guid == "g-1"
    assert first.title == "Storm hits coast"
    assert first.summary == "First.\n\nSecond."
    assert first.published == datetime(2025, 1, 9, 8, 30, tzinfo=UTC)
    assert second.url == "https://news.example.org/a/2"  # relative link, resolved against the feed URL
    assert second.published == datetime(2025, 1, 9, 9, 0, tzinfo=UTC)
    assert second.summary == "Plain & simple"
    assert third.author == "Ann Reporter"
    assert third.content == "Body one.\n\nBody two\nline two."
    assert third.published is None


def test_atom_feed() -> None:
    body = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://wire.example.com/">
  <title>Wire</title>
  <entry>
    <title type="html">&lt;b&gt;Markets&lt;/b&gt; rally</title>
    <link rel="alternate" type="text/html" href="stories/42"/>
    <link rel="enclosure" href="https://wire.example.com/img/42.jpg"/>
    <id>tag:wire.example.com,2025:42</id>
    <updated>2025-01-08T17:05:00Z</updated>
    <author><name>Bo Writer</name></author>
    <summary>Stocks rose.</summary>
    <content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml"><p>Stocks rose sharply.</p><p>Bonds fell.</p></div></content>
  </entry>
</feed>"""
    parsed = parse(body, "application/atom+xml")
    assert parsed.title == "Wire"
    (entry,) = parsed.entries
    assert entry.url == "https://wire.example.com/stories/42"
    assert entry.title == "Markets rally"
    assert entry.guid == "tag:wire.example.com,2025:42"
    assert entry.author == "Bo Writer"
    assert entry.summary == "Stocks rose."
    assert entry.content == "Stocks rose sharply.\n\nBonds fell."
    assert entry.published == datetime(2025, 1, 8, 17, 5, tzinfo=UTC)


def test_rss1_rdf_feed() -> None:
    body = b"""<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/">
  <channel rdf:about="https://old.example.net/"><title>Old</title></channel>
  <item rdf:about="https://old.example.net/1"><title>One</title><link>https://old.example.net/1</link></item>
</rdf:RDF>"""
    parsed = parse(body, "application/rdf+xml")
    assert [e.url for e in parsed.entries] == ["https://old.example.net/1"]


def json_feed(items: list[dict[str, object]], version: str = "https://jsonfeed.org/version/1.1") -> bytes:
    return json.dumps({"version": version, "title": "JSON News", "home_page_url": "https://j.example/", "items": items}).encode()


def test_json_feed() -> None:
    body = json_feed(
        [
            {
                "id": "1",
                "url": "https://j.example/posts/1?fbclid=x",
                "title": "Bridge reopens",
                "content_html": "<p>The bridge <em>reopened</em>.</p><p>Traffic resumed.</p>",
                "summary": "Bridge reopened",
                "date_published": "2025-01-09T07:00:00+02:00",
                "authors": [{"name": "Cy"}, {"name": "Di"}],
            },
            {"id": 2, "url": "/posts/2", "content_text": "No title here but some words to borrow for one", "date_modified": "2025-01-09T08:00:00Z"},
            {"id": "3", "title": "no link"},
            "not an item",
        ]
    )
    parsed = parse(body, "application/feed+json")
    assert parsed.title == "JSON News"
    assert parsed.error is None
    first, second = parsed.entries
    assert first.url == "https://j.example/posts/1"
    assert first.content == "The bridge reopened.\n\nTraffic resumed."
    assert first.summary == "Bridge reopened"
    assert first.author == "Cy, Di"
    assert first.published == datetime(2025, 1, 9, 5, 0, tzinfo=UTC)
    assert second.url == "https://news.example.org/posts/2"  # relative to the document URL
    assert second.guid == "2"
    assert second.title.startswith("No title here but some words")
    assert second.published == datetime(2025, 1, 9, 8, 0, tzinfo=UTC)


def test_json_feed_detected_by_content_and_version_1() -> None:
    body = json_feed(
        [{"id": "a", "url": "https://j.example/a", "title": "A", "author": {"name": "Old Style"}}],
        version="https://jsonfeed.org/version/1",
    )
    (entry,) = parse(body, "text/plain").entries
    assert entry.author == "Old Style"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": [', "invalid JSON"),
        (b'{"title": "x"}', "not a JSON Feed"),
        (b"[" * 100_000 + b"]" * 100_000, "invalid JSON"),
    ],
)
def test_broken_json_feeds(body: bytes, reason: str) -> None:
    with pytest.raises(FeedParseError, match=reason):
        parse(body, "application/json")


# -- malformed and non-feeds -------------------------------------------------------------------


def test_bozo_feed_still_yields_entries() -> None:
    body = rss(item("https://news.example.org/a/1", "AT&T&nbsp;deal") + item("https://news.example.org/a/2", "Two"))
    body = body.replace("</channel></rss>", "")  # unclosed, and an undefined entity
    parsed = parse(body)
    assert [e.url for e in parsed.entries] == ["https://news.example.org/a/1", "https://news.example.org/a/2"]
    assert parsed.error is not None
    assert "SAXParseException" in parsed.error


def test_html_page_is_not_a_feed() -> None:
    page = b"""<!DOCTYPE html><html><head><title>Home</title>
    <link rel="alternate" type="application/rss+xml" href="/rss/all.xml"></head>
    <body><p>Welcome</p></body></html>"""
    with pytest.raises(FeedParseError, match=r"HTML page, not a feed \(it links to the feed https://news.example.org/rss/all.xml\)"):
        parse(page, "text/html; charset=utf-8")


@pytest.mark.parametrize(
    "prolog", ["<!DOCTYPE html>", '<?xml version="1.0"?>\n<!-- generated -->\n<!doctype HTML PUBLIC "-//W3C//DTD HTML 4.01//EN">']
)
def test_feed_after_an_html_doctype_is_a_feed(prolog: str) -> None:
    rss_body = rss(item(), declaration="").replace("\n", "", 1)
    parsed = parse(prolog + "\n" + rss_body, "text/html; charset=utf-8")
    assert [e.url for e in parsed.entries] == ["https://news.example.org/a/1"]
    atom = parse(
        prolog + '<feed xmlns="http://www.w3.org/2005/Atom"><title>Wire</title><entry><title>Markets</title>'
        '<link href="https://wire.example.com/s/1"/><id>tag:wire,2025:1</id><updated>2025-01-08T17:05:00Z</updated>'
        "<summary>Stocks rose.</summary></entry></feed>",
        "text/html",
    )
    assert [e.url for e in atom.entries] == ["https://wire.example.com/s/1"]


@pytest.mark.parametrize("body", [b"", b"   \n\t ", b"\xef\xbb\xbf"])
def test_empty_body(body: bytes) -> None:
    with pytest.raises(FeedParseError, match="empty body"):
        parse(body)


@pytest.mark.parametrize("body", [b"garbage \x00\xff not xml", b"<notafeed><x/></notafeed>", b"hello"])
def test_garbage_is_not_a_feed(body: bytes) -> None:
    with pytest.raises(FeedParseError, match="not a feed|not an RSS"):
        parse(body)


def test_not_modified_has_nothing_to_parse() -> None:
    with pytest.raises(FeedParseError, match="304"):
        parse_feed(SOURCE, fetched(b"", status=304), max_entries=10, now=NOW)


def test_well_formed_feed_without_items_is_empty_not_an_error() -> None:
    parsed = parse(rss(""))
    assert parsed.entries == []
    assert parsed.title == "World news"


# -- encodings --------------------------------------------------------------------------------


def test_utf8_bom() -> None:
    parsed = parse(b"\xef\xbb\xbf" + rss(item(title="Caf\u00e9")).encode("utf-8"))
    assert parsed.entries[0].title == "Caf\u00e9"


def test_utf16_with_bom() -> None:
    body = rss(item(title="Caf\u00e9 \u65b0\u805e"), declaration='<?xml version="1.0" encoding="utf-16"?>')
    parsed = parse(body.encode("utf-16"), "application/xml")
    assert parsed.entries[0].title == "Caf\u00e9 \u65b0\u805e"


def test_latin1_bytes_declared_utf8() -> None:
    parsed = parse(rss(item(title="Caf\u00e9 cr\u00e8me")).encode("latin-1"), "application/rss+xml; charset=utf-8")
    assert parsed.entries[0].title == "Caf\u00e9 cr\u00e8me"
    assert parsed.error is not None and "declared as utf-8" in parsed.error


def test_utf8_bytes_declared_latin1() -> None:
    body = rss(item(title="Caf\u00e9 cr\u00e8me"), declaration='<?xml version="1.0" encoding="iso-8859-1"?>')
    for content_type in ("application/rss+xml; charset=iso-8859-1", "text/xml", None):
        parsed = parse(body.encode("utf-8"), content_type)
        assert parsed.entries[0].title == "Caf\u00e9 cr\u00e8me", content_type


@pytest.mark.parametrize("content_type", ["application/rss+xml; charset=utf-16", "application/rss+xml"])
def test_utf16_label_on_utf8_bytes(content_type: str) -> None:
    body = rss(item(title="Caf\u00e9"), declaration='<?xml version="1.0" encoding="utf-16"?>')
    assert parse(body.encode("utf-8"), content_type).entries[0].title == "Caf\u00e9"


def test_utf16_with_bom_and_charset_header() -> None:
    body = rss(item(title="Caf\u00e9"), declaration='<?xml version="1.0" encoding="utf-16"?>')
    parsed = parse(body.encode("utf-16"), "application/rss+xml; charset=utf-16")
    assert parsed.entries[0].title == "Caf\u00e9"
    assert parsed.error is None


def test_genuine_latin1_declared_latin1_is_untouched() -> None:
    body = rss(item(title="Caf\u00e9"), declaration='<?xml version="1.0" encoding="iso-8859-1"?>')
    parsed = parse(body.encode("latin-1"), "application/rss+xml; charset=iso-8859-1")
    assert parsed.entries[0].title == "Caf\u00e9"
    assert parsed.error is None


@pytest.mark.parametrize("content_type", [None, "text/html", "text/plain", "application/octet-stream"])
def test_missing_or_wrong_content_type(content_type: str | None) -> None:
    parsed = parse(rss(item(title="Caf\u00e9")).encode("utf-8"), content_type)
    assert parsed.entries[0].title == "Caf\u00e9"
    assert parsed.error is None


def test_latin1_without_any_declaration() -> None:
    body = rss(item(title="Caf\u00e9"), declaration="").encode("latin-1")
    assert parse(body, None).entries[0].title == "Caf\u00e9"


LEGACY_FEEDS = {
    "big5": [
        ("颱風逼近台灣 全台停班停課", "中央氣象局表示，強烈颱風預計明天登陸，各地政府宣布停班停課。"),
        ("立法院三讀通過預算案", "立法院今天三讀通過明年度總預算案。"),
        ("股市大漲 外資買超百億", "台股今天大漲，外資買超超過百億元。"),
    ],
    "koi8-r": [
        ("Шторм обрушился на побережье", "Сильный шторм обрушился на восточное побережье, оставив тысячи домов без света."),
        ("Парламент принял бюджет", "Депутаты приняли бюджет на следующий год после долгих споров."),
        ("Биржевые индексы выросли", "Основные биржевые индексы выросли на фоне новостей о снижении ставки."),
    ],
    "shift_jis": [
        ("台風が沖縄に接近 警報発令", "気象庁によると、大型の台風が明日にも沖縄本島に接近する見込みです。"),
        ("国会で予算案が可決", "来年度の予算案が参議院本会議で可決、成立しました。"),
        ("株価が大幅に上昇", "東京株式市場では日経平均株価が大幅に値上がりしました。"),
    ],
}


@pytest.mark.parametrize("encoding", sorted(LEGACY_FEEDS))
def test_undeclared_legacy_encoding_is_detected(encoding: str) -> None:
    stories = LEGACY_FEEDS[encoding]
    items = "".join(item(f"https://news.example.org/a/{n}", title, description=text) for n, (title, text) in enumerate(stories))
    body = rss(items, declaration='<?xml version="1.0"?>').encode(encoding)
    parsed = parse(body, "text/xml")
    assert [e.title for e in parsed.entries] == [title for title, _ in stories]
    assert [e.summary for e in parsed.entries] == [text for _, text in stories]
    assert parsed.error is not None and "no declared encoding" in parsed.error


def test_declared_encoding_is_not_second_guessed() -> None:
    stories = LEGACY_FEEDS["koi8-r"]
    items = "".join(item(f"https://news.example.org/a/{n}", title, description=text) for n, (title, text) in enumerate(stories))
    body = rss(items, declaration='<?xml version="1.0" encoding="koi8-r"?>').encode("koi8-r")
    parsed = parse(body, "text/xml")
    assert [e.title for e in parsed.entries] == [title for title, _ in stories]
    assert parsed.error is None


# -- entries ----------------------------------------------------------------------------------


def test_entries_without_usable_links_become_feed_text_entries() -> None:
    body = rss(
        item(None, "No link")
        + item("javascript:alert(1)", "JS")
        + item("data:text/html,<b>x</b>", "Data")
        + item("mailto:desk@example.org", "Mail")
        + item("#", "Self")
        + item("   ", "Blank")
        + item("../local/7", "Relative")
    )
    parsed = parse(body)
    assert parsed.entries[-1].url == "https://news.example.org/local/7"
    linkless = parsed.entries[:-1]
    assert [e.title for e in linkless] == ["No link", "JS", "Data", "Mail", "Self", "Blank"]
    # A key of their own that is no link (never fetched), the same at every poll.
    assert all(e.url.startswith("urn:newsagg:harbor-city-ledger:") for e in linkless)
    assert len({e.url for e in linkless}) == 6
    assert [e.url for e in parse(body).entries] == [e.url for e in parsed.entries]
    assert all(e.summary == "First.\n\nSecond." for e in linkless)


def test_linkless_entries_are_keyed_by_guid_else_by_their_text() -> None:
    def keys(items: str) -> list[str]:
        return [e.url for e in parse(rss(items)).entries]

    by_guid = keys(item(None, "Toot", guid="tag:social.example,2025:1", description="Ferry delayed."))
    assert by_guid == keys(item(None, "Toot edited", guid="tag:social.example,2025:1", description="Ferry late."))
    other_feed = parse_feed(
        FeedSource(id="other", name="Other", url=FEED_URL),
        fetched(rss(item(None, "Toot", guid="tag:social.example,2025:1", description="Ferry delayed."))),
        max_entries=10, now=NOW,
    ).entries
    assert other_feed[0].url.startswith("urn:newsagg:other:") and other_feed[0].url != by_guid[0]
    by_text = keys(item(None, "Toot", description="Ferry delayed."))
    assert by_text == keys(item(None, "Toot", description="Ferry delayed."))
    assert by_text != keys(item(None, "Toot", description="Ferry cancelled."))
    # Two linkless entries with the same guid are one entry.
    assert len(keys(item(None, "A", guid="g") + item(None, "B", guid="g"))) == 1


def test_guid_permalink_is_used_when_link_is_missing() -> None:
    body = rss("<item><title>Perma</title><guid>https://news.example.org/p/1</guid></item>")
    assert parse(body).entries[0].url == "https://news.example.org/p/1"


def test_entries_without_link_and_text_are_dropped() -> None:
    parsed = parse(rss(item(None, "Title only", description=None) + item("https://news.example.org/a/1")))
    assert [e.url for e in parsed.entries] == ["https://news.example.org/a/1"]


def test_no_usable_entry_anywhere_is_an_error() -> None:
    with pytest.raises(FeedParseError, match="none of its 2 entries has a usable link or any text"):
        parse(rss(item(None, description=None) + item("javascript:void(0)", description=None)))


def test_entries_without_dates_or_titles() -> None:
    body = rss(item("https://news.example.org/a/1", None, date=None,
                    description="The council voted on Tuesday to close the old harbour bridge for two years of repairs."))
    (entry,) = parse(body).entries
    assert entry.published is None
    assert entry.title == "The council voted on Tuesday to close the old harbour bridge for…"


def test_implausible_dates_become_none() -> None:
    future = (NOW + timedelta(days=3)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    near_future = (NOW + timedelta(hours=12)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    body = rss(
        item("https://news.example.org/a/1", date=future)
        + item("https://news.example.org/a/2", date="Thu, 01 Jan 1970 00:00:00 GMT")
        + item("https://news.example.org/a/3", date="Sun, 31 Dec 1994 23:59:59 GMT")
        + item("https://news.example.org/a/4", date=near_future)
        + item("https://news.example.org/a/5", date="not a date")
    )
    dates = [e.published for e in parse(body).entries]
    assert dates == [None, None, None, NOW + timedelta(hours=12), None]


def test_duplicates_within_a_feed_are_dropped() -> None:
    body = rss(
        item("https://news.example.org/a/1", "first", guid="g1")
        + item("HTTPS://NEWS.example.org/a/1?utm_campaign=x#frag", "same url", guid="g2")
        + item("https://news.example.org/a/9", "same guid", guid="g1")
        + item("https://news.example.org/a/2", "second", guid="g3")
    )
    assert [e.title for e in parse(body).entries] == ["first", "second"]


def test_max_entries_keeps_the_first() -> None:
    body = rss("".join(item(f"https://news.example.org/a/{i}", f"n{i}") for i in range(20)))
    assert [e.title for e in parse(body, max_entries=5).entries] == [f"n{i}" for i in range(5)]


def test_ttl_garbage_is_ignored() -> None:
    assert parse(rss(item(), channel_extra="<ttl>soon</ttl>")).ttl_minutes is None
    assert parse(rss(item(), channel_extra="<ttl>-5</ttl>")).ttl_minutes is None


@pytest.mark.parametrize("kind", ["rss", "atom", "json"])
def test_huge_feed_is_capped_quickly(kind: str) -> None:
    count = 100_000
    if kind == "rss":
        items = "".join(
            f"<item><title>Story {i}</title><link>https://news.example.org/s/{i}</link><guid>g{i}</guid>"
            f"<description><![CDATA[<p>para {i} with <item> text</p>]]></description></item>"
            for i in range(count)
        )
        body = rss(items).encode()
    elif kind == "json":
        body = json_feed(
            [{"id": f"g{i}", "url": f"https://news.example.org/s/{i}", "title": f"Story {i}",
              "content_html": f"<p>para {i}</p>"} for i in range(count)],
        )
    else:
        entries = "".join(
            f'<entry><title>Story {i}</title><link href="https://news.example.org/s/{i}"/><id>t{i}</id>'
            f"<updated>2025-01-09T00:00:00Z</updated><!-- <entry> --></entry>"
            for i in range(count)
        )
        body = f'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>Big</title>{entries}</feed>'.encode()
    started = time.perf_counter()
    parsed = parse(body, max_entries=500)
    elapsed = time.perf_counter() - started
    assert len(parsed.entries) == 500
    assert parsed.entries[0].title == "Story 0" and parsed.entries[-1].title == "Story 499"
    assert parsed.error is None  # the cut document is closed properly
    assert parsed.title == {"rss": "World news", "atom": "Big", "json": "JSON News"}[kind]
    assert elapsed < 5, f"{elapsed:.1f}s for a {len(body) // 1_000_000} MB feed"


# -- XML attacks ------------------------------------------------------------------------------


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        type(self).hits.append(self.path)
        body = b'<!ENTITY secret "LEAKED">' if self.path.endswith(".dtd") else b"LEAKED"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[str]]]:
    """A loopback server that records every request: XML parsing must never make one."""
    _Recorder.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder.hits
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def billion_laughs(levels: int = 10) -> str:
    decls = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, levels)
    ]
    return (
        '<?xml version="1.0"?>\n<!DOCTYPE rss [\n' + "\n".join(decls) + "\n]>\n"
        f'<rss version="2.0"><channel><title>&lol{levels - 1};</title>'
        f"<item><title>&lol{levels - 1};</title><link>https://news.example.org/a</link></item></channel></rss>"
    )


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-16-le-no-bom"])
@pytest.mark.parametrize("one_line", [False, True])
def test_billion_laughs_is_refused_without_expansion(encoding: str, one_line: bool) -> None:
    doc = billion_laughs()
    if one_line:
        doc = doc.replace("\n", "")
    body = doc.encode("utf-16-le") if encoding == "utf-16-le-no-bom" else doc.encode(encoding)
    started = time.perf_counter()
    with pytest.raises(FeedParseError, match="declares XML entities"):
        parse(body)
    assert time.perf_counter() - started < 5  # expanded, it would take minutes


def test_xxe_file_is_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    for layout in ("\n", ""):
        doc = (
            f'<?xml version="1.0"?>{layout}<!DOCTYPE rss [{layout}<!ENTITY xxe SYSTEM "file://{secret}">{layout}]>{layout}'
            '<rss version="2.0"><channel><title>t</title><item><title>&xxe;</title>'
            "<link>https://news.example.org/a</link></item></channel></rss>"
        )
        with pytest.raises(FeedParseError) as caught:
            parse(doc)
        assert "TOP-SECRET" not in str(caught.value)


def test_xxe_http_is_not_fetched(recorder: tuple[str, list[str]]) -> None:
    base, hits = recorder
    for target in ("http://127.0.0.1:1/", f"{base}/entity"):
        doc = (
            f'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY xxe SYSTEM "{target}">\n]>\n'
            '<rss version="2.0"><channel><title>t</title><item><title>&xxe;</title>'
            "<link>https://news.example.org/a</link></item></channel></rss>"
        )
        with pytest.raises(FeedParseError, match="declares XML entities"):
            parse(doc)
    assert hits == []


def test_parameter_entities_are_refused(recorder: tuple[str, list[str]]) -> None:
    base, hits = recorder
    doc = (
        f'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY % remote SYSTEM "{base}/evil.dtd">\n%remote;\n]>\n'
        '<rss version="2.0"><channel><title>&secret;</title><item><title>x</title>'
        "<link>https://news.example.org/a</link></item></channel></rss>"
    )
    with pytest.raises(FeedParseError):
        parse(doc)
    assert hits == []


def test_external_dtd_is_not_fetched(recorder: tuple[str, list[str]]) -> None:
    """A DOCTYPE with only an external DTD (old RSS 0.91 style) parses; the DTD is never fetched."""
    base, hits = recorder
    doc = (
        f'<?xml version="1.0"?>\n<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" "{base}/rss.dtd">\n'
        '<rss version="0.91"><channel><title>Old &secret;</title><item><title>x &secret;</title>'
        "<link>https://news.example.org/a</link></item></channel></rss>"
    )
    parsed = parse(doc)
    assert [e.url for e in parsed.entries] == ["https://news.example.org/a"]
    assert "LEAKED" not in parsed.entries[0].title
    assert hits == []


def test_feed_bytes_are_never_treated_as_a_location(recorder: tuple[str, list[str]], tmp_path: Path) -> None:
    base, hits = recorder
    secret = tmp_path / "feed.xml"
    secret.write_text(rss(item()))
    for body in (f"{base}/feed.xml", str(secret)):
        with pytest.raises(FeedParseError):
            parse(body.encode())
    assert hits == []


# -- html_to_text ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("markup", "text"),
    [
        ("<p>One</p><p>Two</p>", "One\n\nTwo"),
        ("Line<br>next<br/>last", "Line\nnext\nlast"),
        ("<div>a <b>bold</b>\n  move</div><script>x()</script><style>p{}</style>tail", "a bold move\n\ntail"),
        ("Fish &amp; chips &eacute;t&eacute; &#8212; ok", "Fish & chips été — ok"),
        ("plain\n\n\ntext   here", "plain\n\ntext here"),
        ("<ul><li>a</li><li>b</li></ul>", "a\n\nb"),
        ("", ""),
        ("<p></p><!-- c -->", ""),
        ('<?xml version="1.0" encoding="utf-8"?><p>decl</p>', "decl"),
    ],
)
def test_html_to_text(markup: str, text: str) -> None:
    assert html_to_text(markup) == text


# -- property: nothing but ParsedFeed or FeedParseError --------------------------------------

_SEEDS = [
    rss(item() + item("/a/2", "Two", guid="g2")).encode(),
    b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>A</title><entry><title>x</title>'
    b'<link href="https://e.example/1"/><updated>2025-01-01T00:00:00Z</updated></entry></feed>',
    json_feed([{"id": "1", "url": "https://j.example/1", "title": "t", "date_published": "2025-01-01T00:00:00Z"}]),
    billion_laughs(3).encode(),
]


@st.composite
def mutated_feed(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(_SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "delete", "insert", "truncate"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 20))]
        elif op == "insert":
            data[pos:pos] = draw(st.sampled_from([b"<", b"&", b"]]>", b"<![CDATA[", b"<!ENTITY x 'y'>", b"\x00", b"\xff\xfe", b"&#0;", b"<item>", "é".encode()]))
        else:
            del data[pos:]
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.one_of(st.binary(max_size=400), mutated_feed()),
    content_type=st.sampled_from(
        [None, "application/rss+xml", "application/json", "text/html; charset=latin-1", "text/xml; charset=bogus",
         "application/xml; charset=zlib", "application/xml; charset=utf-16"]
    ),
)
def test_parse_feed_returns_a_feed_or_raises_feed_parse_error(body: bytes, content_type: str | None) -> None:
    try:
        result = parse(body, content_type, max_entries=10)
    except FeedParseError:
        return
    assert isinstance(result, ParsedFeed)
    assert len(result.entries) <= 10
    for entry in result.entries:
        assert entry.url.startswith(("http://", "https://")) or (
            entry.url.startswith("urn:newsagg:harbor-city-ledger:") and (entry.content or entry.summary)
        )


# -- feed lists: YAML ----------------------------------------------------------------------------


def write(tmp_path: Path, text: str, name: str = "feeds.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_yaml_feed_list(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
feeds:
  - name: Harbor City Ledger
    url: "https://example.org/feed.xml"
    language: en
    tags: [local]
    poll_interval: 900
  - name: Harbor City Ledger
    url: https://example.org/other.xml
  - name: "Zürich Zeitung"
    url: https://zeitung.example.ch/rss
  - name: 新聞
    url: https://shinbun.example.jp/feed
  - name: "!!!"
    url: https://example.net/feed
""",
    )
    feeds = load_feed_list(path)
    assert [f.id for f in feeds] == [
        "harbor-city-ledger",
        "harbor-city-ledger-2",
        "zurich-zeitung",
        "shinbun-example-jp",
        "example-net",
    ]
    first = feeds[0]
    assert first == FeedSource(
        id="harbor-city-ledger", name="Harbor City Ledger", url="https://example.org/feed.xml",
        language="en", tags=("local",), poll_interval=900,
    )
    assert feeds[1].language is None and feeds[1].tags == () and feeds[1].poll_interval is None


def test_a_sitemap_source_and_its_cross_host_flag_survive_yaml_and_opml(tmp_path: Path) -> None:
    path = write(tmp_path, "feeds:\n  - name: A\n    url: https://a.example/news.xml\n    type: sitemap\n"
                           "    cross_host: true\n  - name: B\n    url: https://b.example/feed\n")
    feeds = load_feed_list(path)
    assert [(f.kind, f.cross_host) for f in feeds] == [("sitemap", True), ("feed", False)]
    write_feed_list(path, feeds)
    assert load_feed_list(path) == feeds
    assert "type: sitemap" in path.read_text() and path.read_text().count("type:") == 1
    opml = read_opml(b'<opml version="2.0"><body><outline text="A" type="sitemap" xmlUrl="https://a.example/s.xml"/>'
                     b'<outline text="B" type="rss" xmlUrl="https://b.example/feed"/></body></opml>')
    assert [f.kind for f in opml] == ["sitemap", "feed"]


def test_yaml_empty_feeds_list(tmp_path: Path) -> None:
    assert load_feed_list(write(tmp_path, "feeds: []\n")) == []
    assert load_feed_list(write(tmp_path, "feeds:\n")) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("feeds:\n  - name: A\n    url: https://a.example/f\n    interval: 5\n", r"feed #1 \('A'\): unknown key\(s\) interval"),
        ("feeds:\n  - name: A\n", r"feed #1 \('A'\): missing 'url'"),
        ("feeds:\n  - url: https://a.example/f\n", r"feed #1 \('https://a.example/f'\): missing 'name'"),
        ("feeds:\n  - name: A\n    url: 42\n", "'url' must be a string, not int"),
        ("feeds:\n  - name: A\n    url: ftp://a.example/f\n", "not an absolute http"),
        ("feeds:\n  - name: A\n    url: /relative/feed\n", "not an absolute http"),
        (f"feeds:\n  - name: A\n    url: https://a.example/f?{'q=1&' * 600}\n", "'url' 'https://a.example/f.q=1&q=1&.*…' is 2420 characters long, over the 2048"),
        (f"feeds:\n  - name: {'Ledger ' * 500}\n    url: /f\n", r"feed #1 \('Ledger Ledger .*…'\): 'url' '/f' is not"),
        ("feeds:\n  - name: [A]\n    url: https://a.example/f\n", "'name' must be a non-empty string"),
        ("feeds:\n  - name: A\n    url: https://a.example/f\n    tags: local\n", "'tags' must be a list of strings"),
        ("feeds:\n  - name: A\n    url: https://a.example/f\n    tags: [1, 2]\n", "'tags' must be a list of strings"),
        ("feeds:\n  - name: A\n    url: https://a.example/f\n    poll_interval: fast\n", "'poll_interval' must be a positive"),
        ("feeds:\n  - name: A\n    url: https://a.example/f\n    poll_interval: true\n", "'poll_interval' must be a positive"),
        ("feeds:\n  - name: A\n    url: https://a.example/f\n    poll_interval: -1\n", "'poll_interval' must be a positive"),
        ("feeds:\n  - name: A\n    url: https://a.example/f\n    language: 5\n", "'language' must be a string"),
        ("feeds:\n  - name: A\n    url: https://a.example/f\n    language: English (UK)\n", "'language' 'English .UK.' is not a language tag"),
        (f"feeds:\n  - name: A\n    url: https://a.example/f\n    language: {'en-' + 'x' * 20}\n", "at most 20 characters"),
        ("feeds:\n  - just a string\n", "feed #1: expected a mapping"),
        ("feeds: {name: A}\n", "'feeds' must be a list"),
        ("- name: A\n", "expected a mapping with a 'feeds' list"),
        ("", "expected a mapping with a 'feeds' list"),
        ("feeds: []\nextra: 1\n", "unknown top-level key"),
        ("feeds:\n  - name: A\n    url: https://a.example/f\n    type: atom\n", "'type' must be one of feed, sitemap"),
        ("feeds:\n  - name: A\n    url: https://a.example/f\n    cross_host: yes please\n", "'cross_host' must be true or false"),
        ("feeds:\n  - name: A\n    url: [unclosed\n", "invalid YAML at line"),
        # Given twice, YAML readers keep the last: the first list of feeds, or URL, was dropped.
        ("feeds:\n  - name: A\n    url: https://a.example/f\nfeeds:\n  - name: B\n    url: https://b.example/f\n",
         r"invalid YAML at line 4, column 1: key 'feeds' is given twice, first on line 1"),
        ("feeds:\n  - name: A\n    url: https://a.example/f\n    url: https://a.example/g\n",
         r"invalid YAML at line 4, column 5: key 'url' is given twice, first on line 3"),
        (
            "feeds:\n  - name: A\n    url: https://a.example/f\n  - name: B\n    url: HTTPS://A.example:443/f#top\n",
            r"feed #2 \('B'\): url .* is already listed as feed #1",
        ),
    ],
)
def test_yaml_errors_name_file_and_entry(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_feed_list(path)
    assert str(path) in str(caught.value) and len(str(caught.value)) < len(str(path)) + 400  # values quoted short


def test_yaml_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_bytes("feeds:\n  - name: Caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_feed_list(path)


def test_missing_feed_list(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="feed list not found"):
        load_feed_list(tmp_path / "nope.yaml")


# -- feed lists: OPML ----------------------------------------------------------------------------

OPML = b"""<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0">
  <head><title>Subscriptions</title></head>
  <body>
    <outline text="News">
      <outline text="Local">
        <outline type="rss" text="Harbor City Ledger" title="Harbor City Ledger" xmlUrl="https://example.org/feed.xml" htmlUrl="https://example.org/"/>
        <outline type="rss" text="harbor city ledger" xmlUrl="https://example.org/other.xml" category="/Weekly,city"/>
      </outline>
      <outline type="rss" text="Wire" xmlUrl="feed://wire.example.com/rss" language="fr_CA"/>
    </outline>
    <outline text="Empty folder"/>
    <outline type="rss" title="Top Level" text="ignored" xmlURL="https://top.example/atom" language="Deutsch, bitte"/>
    <outline type="rss" text="Dup" xmlUrl="HTTPS://EXAMPLE.org:443/feed.xml#dup"/>
  </body>
</opml>"""


def test_read_opml_nested_categories_become_tags(caplog: pytest.LogCaptureFixture) -> None:
    feeds = read_opml(OPML)
    assert [(f.id, f.name, f.url, f.tags, f.language) for f in feeds] == [
        ("harbor-city-ledger", "Harbor City Ledger", "https://example.org/feed.xml", ("News", "Local"), None),
        ("harbor-city-ledger-2", "harbor city ledger", "https://example.org/other.xml", ("News", "Local", "Weekly", "city"), None),
        ("wire", "Wire", "http://wire.example.com/rss", ("News",), "fr-CA"),
        ("top-level", "Top Level", "https://top.example/atom", (), None),
    ]
    # A language attribute that is no language tag costs the feed its language, not the import.
    assert "outline #7 ('Top Level'): language 'Deutsch, bitte' is not a language tag" in caplog.text


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"<opml><body><outline type='rss' text='No URL'/></body></opml>", r"outline #1 \('No URL'\) is a feed without xmlUrl"),
        (b"<opml><body><outline text='Bad' xmlUrl='javascript:alert(1)'/></body></opml>", "unusable xmlUrl"),
        (b"<opml><body><outline text='x'", "not well-formed XML"),
        (b"<rss><channel/></rss>", "not an OPML document"),
        (b"<opml><head/></opml>", "has no <body>"),
        (
            b'<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
            b"<opml><body><outline text='&b;' xmlUrl='https://e.example/f'/></body></opml>",
            "DOCTYPE and entity declarations are not allowed",
        ),
        (
            b'<?xml version="1.0"?><!DOCTYPE opml SYSTEM "http://127.0.0.1:1/opml.dtd"><opml><body/></opml>',
            "DOCTYPE and entity declarations are not allowed",
        ),
    ],
)
def test_read_opml_errors(data: bytes, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        read_opml(data)


def test_read_opml_errors_quote_a_hostile_outline_cut_short() -> None:
    # A 5,000-character xmlUrl or title was written whole into the one-line error (5,108 characters).
    long_url, long_title = "https://e.example/" + "a" * 5000, "T" * 5000
    for outline in (f"<outline text='x' xmlUrl='{long_url}'/>", f"<outline type='rss' text='{long_title}'/>"):
        with pytest.raises(ConfigError) as raised:
            read_opml(f"<opml><body>{outline}</body></opml>".encode())
        assert len(str(raised.value)) < 300 and "…" in str(raised.value)


def test_deeply_nested_opml() -> None:
    depth = 5000
    data = b"<opml><body>" + b"<outline text='c'>" * depth + b"<outline text='F' xmlUrl='https://deep.example/f'/>" + b"</outline>" * depth + b"</body></opml>"
    (feed,) = read_opml(data)
    assert feed.url == "https://deep.example/f"
    assert feed.tags == ("c",)


def test_load_feed_list_detects_opml_by_content(tmp_path: Path) -> None:
    path = tmp_path / "subscriptions.yaml"  # misleading extension
    path.write_bytes(b"\xef\xbb\xbf\n  " + OPML)
    assert len(load_feed_list(path)) == 4
    bad = tmp_path / "bad.opml"
    bad.write_bytes(b"<opml><body><outline type='rss' text='x'/></body></opml>")
    with pytest.raises(ConfigError, match=str(bad)):
        load_feed_list(bad)


def test_merge_and_write_round_trip(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "feeds:\n  - name: Harbor City Ledger\n    url: https://example.org/feed.xml\n    tags: [local]\n",
    )
    existing = load_feed_list(path)
    merged = merge_feed_lists(existing, read_opml(OPML))
    assert merged[0] == existing[0]
    assert [f.url for f in merged] == [
        "https://example.org/feed.xml",
        "https://example.org/other.xml",
        "http://wire.example.com/rss",
        "https://top.example/atom",
    ]
    assert len({f.id for f in merged}) == len(merged)
    write_feed_list(path, merged)
    assert load_feed_list(path) == merged
    assert merge_feed_lists(merged, read_opml(OPML)) == merged  # importing twice adds nothing
    assert not list(tmp_path.glob(".*.partial"))


def test_write_feed_list_into_new_directory(tmp_path: Path) -> None:
    target = tmp_path / "config" / "feeds.yaml"
    feeds = [FeedSource(id="a", name="A", url="https://a.example/f", poll_interval=600, language="de")]
    write_feed_list(target, feeds)
    assert load_feed_list(target) == feeds


def test_entries_carry_the_feed_update_time_and_an_implausible_one_is_dropped() -> None:
    atom = (
        '<feed xmlns="http://www.w3.org/2005/Atom"><title>T</title>'
        '<entry><title>A</title><link href="https://x.example/a"/><published>2024-11-01T08:00:00Z</published>'
        "<updated>2024-11-01T10:30:00Z</updated></entry>"
        '<entry><title>B</title><link href="https://x.example/b"/><updated>2091-01-01T00:00:00Z</updated></entry></feed>'
    )
    json_feed = json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "T", "items": [
        {"id": "1", "url": "https://x.example/c", "content_text": "c", "date_published": "2024-11-01T08:00:00Z",
         "date_modified": "2024-11-01T11:00:00Z"}]})
    a, b = parse(atom, "application/atom+xml").entries
    (c,) = parse(json_feed, "application/feed+json").entries
    assert a.updated == datetime(2024, 11, 1, 10, 30, tzinfo=UTC) and b.updated is None
    assert c.updated == datetime(2024, 11, 1, 11, 0, tzinfo=UTC)
