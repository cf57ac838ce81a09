"""Article extraction and the article-building stage boundary."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from html import unescape
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pipeline.extraction as extraction
import pipeline.pool
from pipeline.candidates import paragraphs, trimmed
from pipeline.demo.server import bundled_corpus_dir
from pipeline.errors import ExtractionError
from pipeline.extraction import ExtractedPage, PageBatch, build_article, extract_page, extract_pages
from pipeline.models import FeedEntry, Fetched, TextSource, Validators
from pipeline.pool import WorkerPool
from pipeline.settings import ExtractionSettings
from pipeline.urls import article_id

URL = "https://ledger.example/local/2025/01/09/harbour-bridge-closes"
NOW = datetime(2025, 1, 10, 12, 0, tzinfo=UTC)
SETTINGS = ExtractionSettings(min_text_chars=400)

ARTICLE_PARAGRAPHS = [
    "The Harbor City council voted on Tuesday to close the old harbour bridge for two years "
    "while engineers replace its corroded steel deck, officials said.",
    "Mayor Dana Ortiz told reporters that the closure would begin on March 3 and that ferry "
    "services would be doubled during rush hours to carry commuters across the bay.",
    "Engineers found last autumn that salt water had eaten through several of the supports "
    "installed when the bridge opened in 1962, according to a report published by the city.",
    "Shop owners on the waterfront said they feared losing customers, and asked the council "
    "for a temporary pedestrian crossing. The council promised to study the request.",
    "The repairs are expected to cost 48 million dollars, most of it paid by a state grant "
    "approved last year.",
]


def realistic_page(
    paragraphs: list[str] = ARTICLE_PARAGRAPHS,
    *,
    charset: str = "utf-8",
    meta_charset: str | None = "utf-8",
    lang: str = "en-US",
    head: str = "",
    after_body: str = "",
) -> bytes:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    meta = f'<meta charset="{meta_charset}">' if meta_charset else ""
    html = f"""<!DOCTYPE html>
<html lang="{lang}">
<head>
  {meta}
  <title>Harbour bridge to close for two years | Harbor City Ledger</title>
  <meta name="author" content="Jamie Rivera">
  <meta property="og:site_name" content="The Ledger">
  <meta property="og:title" content="Harbour bridge to close for two years">
  <meta property="article:published_time" content="2025-01-09T07:45:00+00:00">
  {head}
  <link rel="stylesheet" href="/static/site.css">
  <script>window.dataLayer = window.dataLayer || []; function gtag(){{dataLayer.push(arguments);}}</script>
  <script type="application/ld+json">{{"@context": "https://schema.org", "@type": "NewsArticle",
    "headline": "Harbour bridge to close for two years", "datePublished": "2025-01-09T07:45:00Z",
    "author": {{"@type": "Person", "name": "Jamie Rivera"}}}}</script>
</head>
<body>
  <div class="cookie-banner">We use cookies to improve your experience. <button>Accept all cookies</button></div>
  <header>
    <a class="logo" href="/">Harbor City Ledger</a>
    <nav><ul><li><a href="/local">Local</a></li><li><a href="/sport">Sport</a></li>
    <li><a href="/business">Business</a></li><li><a href="/opinion">Opinion</a></li></ul></nav>
    <form class="search"><input name="q" placeholder="Search the Ledger"></form>
  </header>
  <main>
    <article>
      <h1>Harbour bridge to close for two years</h1>
      <div class="byline">By <a href="/authors/jamie-rivera">Jamie Rivera</a> · January 9, 2025</div>
      <div class="share"><a href="#">Share on Facebook</a> <a href="#">Share on X</a></div>
      <div class="article-body">{body}</div>
      {after_body}
      <div class="newsletter">Sign up for our daily newsletter to get the headlines in your inbox.</div>
    </article>
    <aside class="most-read"><h2>Most read</h2><ol>
      <li><a href="/a">Celebrity chef opens new restaurant downtown</a></li>
      <li><a href="/b">Ten things to do this weekend in Harbor City</a></li>
      <li><a href="/c">High school team wins regional final</a></li></ol></aside>
  </main>
  <section class="comments"><h2>Comments</h2><div class="comment">First! Great article.</div></section>
  <footer><p>Copyright 2025 Harbor City Ledger. All rights reserved.</p>
    <a href="/privacy">Privacy policy</a> <a href="/terms">Terms of use</a></footer>
  <script src="/static/app.js"></script>
</body>
</html>"""
    return html.encode(charset)


def entry(**overrides: object) -> FeedEntry:
    values: dict[str, object] = {
        "feed_id": "harbor-city-ledger",
        "url": URL,
        "title": "Bridge to close (feed title)",
        "summary": "The old harbour bridge will close for repairs.",
        "content": "The council voted to close the old harbour bridge.\n\nRepairs take two years.",
        "author": "Ledger staff",
        "published": datetime(2025, 1, 9, 7, 30, tzinfo=UTC),
        "guid": "ledger-123",
    }
    values.update(overrides)
    return FeedEntry(**values)  # type: ignore[arg-type]


def page(body: bytes, content_type: str | None = "text/html; charset=utf-8", url: str = URL) -> Fetched:
    return Fetched(requested_url=url, url=url, status=200, body=body, content_type=content_type, validators=Validators())


# -- extract_page -------------------------------------------------------------------------------


def test_realistic_page_drops_boilerplate() -> None:
    result = extract_page(realistic_page(), URL)
    assert result is not None
    for paragraph in ARTICLE_PARAGRAPHS:
        assert paragraph in result.text
    for boilerplate in ("cookies", "Most read", "Celebrity chef", "newsletter", "Copyright", "First! Great", "Share on"):
        assert boilerplate not in result.text
    assert "\n\n" in result.text  # paragraphs separated by a blank line
    assert result.title == "Harbour bridge to close for two years"
    assert result.author == "Jamie Rivera"
    assert result.date == datetime(2025, 1, 9, 7, 45, tzinfo=UTC)
    assert result.site_name == "The Ledger"
    assert result.language == "en"


ACCENTED = [ARTICLE_PARAGRAPHS[0].replace("council voted", "conseil municipal (café crème) a voté"), *ARTICLE_PARAGRAPHS[1:]]


@pytest.mark.parametrize(
    ("charset", "meta_charset", "content_type", "prefix"),
    [
        ("latin-1", "iso-8859-1", None, b""),  # declared in <meta>
        ("latin-1", None, "text/html; charset=ISO-8859-1", b""),  # declared in HTTP
        ("utf-8", "iso-8859-1", None, b""),  # stale Latin-1 label on UTF-8 bytes
        ("utf-8", "gb2312", None, b""),  # stale label of a page re-saved as UTF-8 (Fundus's People.cn page)
        ("utf-8", "shift_jis", None, b""),
        ("latin-1", "utf-8", None, b""),  # a template's UTF-8 default on Latin-1 bytes
        ("latin-1", None, None, b""),  # nothing declared
        ("utf-8", "windows-1252", "text/html; charset=utf-8", b""),  # HTTP wins over <meta>
        ("utf-8", None, None, b"\xef\xbb\xbf"),  # BOM
        ("utf-16", None, None, b""),  # UTF-16 with BOM
    ],
)
def test_charsets(charset: str, meta_charset: str | None, content_type: str | None, prefix: bytes) -> None:
    raw = prefix + realistic_page(ACCENTED, charset=charset, meta_charset=meta_charset)
    result = extract_page(raw, URL, content_type=content_type)
    assert result is not None
    assert ACCENTED[0] in result.text


@pytest.mark.parametrize("label", ["zlib", "base64", "rot13", "hex", "no-such-charset", "utf-16", "x-user-defined"])
def test_unusable_charset_labels_are_ignored(label: str) -> None:
    result = extract_page(realistic_page(ACCENTED, meta_charset=label), URL)
    assert result is not None
    assert ACCENTED[0] in result.text


def test_cyrillic_declared_charset() -> None:
    text = "Городской совет проголосовал за закрытие старого моста на два года ремонта. " * 12
    raw = f'<html lang="ru"><head><meta charset="windows-1251"><title>Мост</title></head><body><article><p>{text}</p><p>{text}</p></article></body></html>'.encode("cp1251")
    result = extract_page(raw, URL)
    assert result is not None
    assert "Городской совет" in result.text
    assert result.language == "ru"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"   \n ",
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00",
        b'{"json": "document", "not": "html"}',
        b"binary \x00\x01\x02 junk",
    ],
)
def test_non_html_gives_none(raw: bytes) -> None:
    assert extract_page(raw, URL) is None


def test_script_only_page_gives_none() -> None:
    raw = b"""<!DOCTYPE html><html><head><title>App</title><script src="/bundle.js"></script>
    <script>window.__STATE__ = {"article": "loaded later"};</script></head>
    <body><div id="root"></div><noscript>You need to enable JavaScript to run this app.</noscript>
    <script>render(document.getElementById('root'))</script></body></html>"""
    assert extract_page(raw, URL) is None


def test_deeply_nested_html_is_bounded() -> None:
    paragraphs = "".join(f"<p>{p}</p>" for p in ARTICLE_PARAGRAPHS)
    for depth in (200, 100_000):
        raw = ("<html><body>" + "<div>" * depth + paragraphs + "</div>" * depth + "</body></html>").encode()
        started = time.perf_counter()
        result = extract_page(raw, URL)
        assert time.perf_counter() - started < 10
        assert result is None or isinstance(result, ExtractedPage)
    # within libxml2's depth limit the article is still found
    shallow = ("<html><body>" + "<div>" * 200 + paragraphs + "</div>" * 200 + "</body></html>").encode()
    assert extract_page(shallow, URL) is not None


def test_enormous_html_is_capped() -> None:
    paragraph = "".join(f"<p>{p}</p>" for p in ARTICLE_PARAGRAPHS)
    raw = ("<html><body><article>" + paragraph * 20_000 + "</article></body></html>").encode()  # ~13 MB
    assert len(raw) > 10_000_000
    started = time.perf_counter()
    result = extract_page(raw, URL, max_bytes=1_000_000)
    assert time.perf_counter() - started < 30
    assert result is not None
    assert len(result.text) < 1_000_000


def test_huge_single_text_node_and_attribute() -> None:
    raw = b"<html><body><p>" + b"word " * 400_000 + b"</p><div title='" + b"x" * 1_000_000 + b"'>t</div></body></html>"
    started = time.perf_counter()
    extract_page(raw, URL)
    assert time.perf_counter() - started < 30


# -- build_article ------------------------------------------------------------------------------


def test_article_from_page() -> None:
    article = build_article(entry(), page(realistic_page()), outlet="Harbor City Ledger", settings=SETTINGS, now=NOW)
    assert article.text_source is TextSource.PAGE
    assert article.text_source_reason is None
    assert article.id == article_id(URL)
    assert article.url == URL
    assert article.outlet == "Harbor City Ledger"  # the feed's name, not og:site_name
    assert article.title == "Harbour bridge to close for two years"
    assert article.author == "Jamie Rivera"
    assert article.published == datetime(2025, 1, 9, 7, 45, tzinfo=UTC)
    assert article.language == "en"
    assert article.feed_id == "harbor-city-ledger"
    assert article.fetched_at == NOW
    assert ARTICLE_PARAGRAPHS[2] in article.text


def test_paywall_falls_back_to_feed_content() -> None:
    teaser = realistic_page(["Subscribe to keep reading. Already a subscriber? Log in to continue reading this story."])
    article = build_article(entry(), page(teaser), outlet="Ledger", settings=SETTINGS, now=NOW)
    assert article.text_source is TextSource.FEED_CONTENT
    assert article.text == "The council voted to close the old harbour bridge.\n\nRepairs take two years."
    assert article.text_source_reason is not None
    assert article.text_source_reason.startswith("page text too short (")
    assert article.text_source_reason.endswith("chars): paywall or script-only page")
    assert article.title == "Harbour bridge to close for two years"  # page metadata still used


def test_falls_back_to_summary_without_content() -> None:
    article = build_article(
        entry(content=None), None, outlet="Ledger", settings=SETTINGS, page_error="page fetch failed: 404", now=NOW
    )
    assert article.text_source is TextSource.FEED_SUMMARY
    assert article.text == "The old harbour bridge will close for repairs."
    assert article.text_source_reason == "page fetch failed: 404"
    assert article.title == "Bridge to close (feed title)"
    assert article.author == "Ledger staff"
    assert article.published == datetime(2025, 1, 9, 7, 30, tzinfo=UTC)
    assert article.language == "en"  # detected: neither page nor feed declares one


def test_page_fetch_failure_uses_feed_content() -> None:
    article = build_article(entry(), None, outlet="Ledger", settings=SETTINGS, page_error="page fetch failed: 404", now=NOW)
    assert article.text_source is TextSource.FEED_CONTENT
    assert article.text_source_reason == "page fetch failed: 404"
    unexplained = build_article(entry(), None, outlet="Ledger", settings=SETTINGS, now=NOW)
    assert unexplained.text_source_reason == "page not fetched"


def test_non_html_page_falls_back() -> None:
    pdf = page(b"%PDF-1.7 ...", content_type="application/pdf")
    article = build_article(entry(), pdf, outlet="Ledger", settings=SETTINGS, now=NOW)
    assert article.text_source is TextSource.FEED_CONTENT
    assert article.text_source_reason == "page is not HTML (application/pdf)"


def test_script_only_page_falls_back() -> None:
    app = page(b"<html><head><script>boot()</script></head><body><div id=root></div></body></html>")
    article = build_article(entry(), app, outlet="Ledger", settings=SETTINGS, now=NOW)
    assert article.text_source is TextSource.FEED_CONTENT
    assert article.text_source_reason == "no article text found on the page"


def test_nothing_yields_text() -> None:
    with pytest.raises(ExtractionError, match=rf"{URL}: no article text \(page fetch failed: 500"):
        build_article(
            entry(content=None, summary="   "), None, outlet="Ledger", settings=SETTINGS,
            page_error="page fetch failed: 500", now=NOW,
        )


def test_already_extracted_page_is_not_extracted_again() -> None:
    given_page = ExtractedPage(
        title="Given", text="x" * 500, author=None, date=None, site_name=None, language="de"
    )
    garbage = page(b"<html><body>not what counts</body></html>")
    article = build_article(entry(), garbage, outlet="Ledger", settings=SETTINGS, now=NOW, extracted=given_page)
    assert (article.title, article.text, article.language) == ("Given", "x" * 500, "de")
    nothing = build_article(entry(), page(realistic_page()), outlet="Ledger", settings=SETTINGS, now=NOW, extracted=None)
    assert nothing.text_source is TextSource.FEED_CONTENT
    assert nothing.text_source_reason == "no article text found on the page"


def test_the_article_credits_the_agency_of_its_byline_metadata() -> None:
    # Extraction leaves the byline out of the text: the page's author metadata carries the credit.
    found = ExtractedPage(title="T", text="The central bank held rates.\n\n" + "y" * 500, author="Jovan Kesler, Reuters",
                          date=None, site_name=None, language="en")
    article = build_article(entry(), page(b"<html/>"), outlet="L", settings=SETTINGS, now=NOW, extracted=found)
    assert article.credit is not None
    assert (article.credit.agency, article.credit.kind, article.credit.rule) == ("Reuters", "full", "author")
    assert article.credit.evidence == "author: Jovan Kesler, Reuters"
    own = build_article(entry(), page(b"<html/>"), outlet="L", settings=SETTINGS, now=NOW,
                        extracted=replace(found, author="Dana Kessling"))
    assert own.credit is None


def test_day_only_page_date_defers_to_the_feed_time() -> None:
    found = ExtractedPage(title="T", text="y" * 500, author=None, date=datetime(2025, 1, 9, tzinfo=UTC), site_name=None, language=None)
    same_day = build_article(entry(), page(b"<html/>"), outlet="L", settings=SETTINGS, now=NOW, extracted=found)
    assert same_day.published == datetime(2025, 1, 9, 7, 30, tzinfo=UTC)
    other_day = build_article(
        entry(published=datetime(2025, 1, 5, 9, 0, tzinfo=UTC)), page(b"<html/>"), outlet="L", settings=SETTINGS, now=NOW, extracted=found
    )
    assert other_day.published == datetime(2025, 1, 9, tzinfo=UTC)


def test_title_falls_back_to_first_words() -> None:
    article = build_article(entry(title="", content=None, summary="one two three"), None, outlet="L", settings=SETTINGS, now=NOW)
    assert article.title == "one two three"


def test_feed_language_and_tags_when_the_page_declares_none() -> None:
    undeclared = realistic_page(lang="")
    article = build_article(entry(), page(undeclared), outlet="L", settings=SETTINGS, now=NOW,
                            feed_language="fr-CA", tags=("local", "transport"))
    assert article.text_source is TextSource.PAGE
    assert article.language == "fr"
    assert article.tags == ("local", "transport")
    declared = build_article(entry(), page(realistic_page()), outlet="L", settings=SETTINGS, now=NOW, feed_language="fr")
    assert declared.language == "en"  # the page says so
    feed_text = build_article(entry(), None, outlet="L", settings=SETTINGS, now=NOW, feed_language="de")
    assert feed_text.language == "de"


def test_language_is_detected_only_when_neither_page_nor_feed_declares_one() -> None:
    german = entry(title="Hafenarbeiter streiken weiter", content=None,
                   summary="Die Hafenarbeiter in Hamburg haben am Montag ihre Arbeit niedergelegt.")
    assert build_article(german, None, outlet="L", settings=SETTINGS, now=NOW).language == "de"
    assert build_article(german, None, outlet="L", settings=SETTINGS, now=NOW, feed_language="nl").language == "nl"
    undeclared = realistic_page(lang="")
    assert build_article(german, page(undeclared), outlet="L", settings=SETTINGS, now=NOW).language == "en"
    chinese = entry(title="上海港码头工人罢工", content=None, summary="上海港的码头工人周一停工，集装箱运输陷入停顿。")
    assert build_article(chinese, None, outlet="L", settings=SETTINGS, now=NOW).language == "zh"
    nothing = entry(title="", content=None, summary="12:30 — 14:00")
    assert build_article(nothing, None, outlet="L", settings=SETTINGS, now=NOW).language is None


def test_entry_without_a_link_is_its_feed_text() -> None:
    key = "urn:newsagg:harbor-city-ledger:0123456789abcdef0123456789abcdef"
    article = build_article(entry(url=key), None, outlet="Ledger", settings=SETTINGS, now=NOW)
    assert article.text_source is TextSource.FEED_CONTENT
    assert article.text_source_reason == "the feed entry has no link"
    assert (article.url, article.id) == (key, article_id(key))


# -- extract_pages ------------------------------------------------------------------------------


@pytest.fixture
def pool() -> Iterator[WorkerPool]:
    """Two worker processes, stopped after the test."""
    with WorkerPool(2) as workers:
        yield workers


def _batch(count: int) -> list[tuple[str, bytes]]:
    items = []
    for i in range(count):
        paragraphs = [f"Story {i}: {p}" for p in ARTICLE_PARAGRAPHS]
        if i % 5 == 3:
            items.append((f"https://ledger.example/s/{i}", b"<html><body><script>x()</script></body></html>"))
        elif i % 7 == 6:
            items.append((f"https://ledger.example/s/{i}", b"%PDF-1.4"))
        else:
            items.append((f"https://ledger.example/s/{i}", realistic_page(paragraphs)))
    return items


def test_extract_pages_parallel_equals_serial(pool: WorkerPool) -> None:
    items = _batch(40)
    serial = [extract_page(html, url) for url, html in items]
    assert extract_pages(items, pool) == serial
    assert extract_pages(items, pool) == serial  # the kept pool, second batch
    assert extract_pages(items, WorkerPool(1)) == serial
    assert extract_pages(items) == serial
    assert sum(page is None for page in serial) >= 8


def test_extract_pages_with_spawned_workers(pool: WorkerPool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pool must work when workers are spawned (threaded callers, macOS, Windows)."""
    monkeypatch.setattr(pipeline.pool, "start_method", lambda: "spawn")
    items = _batch(16)
    assert extract_pages(items, pool) == [extract_page(html, url) for url, html in items]


def test_progress_bars_leave_the_pools_forkable() -> None:
    """A stage's progress bar, shown or not, must not start a thread that turns later pools to spawn."""
    script = (
        "from pipeline.progress import ProgressBar\n"
        "from pipeline.pool import start_method\n"
        "ProgressBar(range(3), disable=True).close()\n"
        "for _ in ProgressBar(range(3)): pass\n"
        "print(start_method())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split() == ["fork"]


def test_a_dying_worker_loses_only_its_pages(pool: WorkerPool, monkeypatch: pytest.MonkeyPatch) -> None:
    items = _batch(24)
    serial = [extract_page(html, url) for url, html in items]
    parent = os.getpid()
    real = extraction.extract_page

    def crash_in_worker(html: bytes, url: str, **kwargs: object) -> ExtractedPage | None:
        if os.getpid() != parent:
            os._exit(1)  # what an out-of-memory kill looks like to the pool
        return real(html, url)

    monkeypatch.setattr(pipeline.pool, "start_method", lambda: "fork")  # the child inherits the patch
    monkeypatch.setattr(extraction, "extract_page", crash_in_worker)
    batch = PageBatch(pool, len(items))
    for item in items:
        batch.add(item)
    results = batch.result()
    assert len(results) == len(items)
    assert results[0] is None and 0 in batch.lost  # the workers take the head of the queue, and died on it
    assert all((got is None) == (i in batch.lost) for i, got in enumerate(results))
    assert all(got is None or got == want for got, want in zip(results, serial, strict=True))
    monkeypatch.setattr(extraction, "extract_page", real)
    assert extract_pages(items, pool) == serial  # the broken pool was replaced


@pytest.mark.parametrize("workers", [False, True])
def test_a_page_that_makes_extraction_raise_costs_only_itself(
    workers: bool, pool: WorkerPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = _batch(24)
    serial = [extract_page(html, url) for url, html in items]
    real = extraction._declared_canonical

    def fault_on_one_page(tree: object, url: str) -> str | None:
        if url.endswith("/s/10"):
            raise RecursionError("a fault of ours that this page meets")
        return real(tree, url)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline.pool, "start_method", lambda: "fork")  # the children inherit the patch
    monkeypatch.setattr(extraction, "_declared_canonical", fault_on_one_page)
    batch = PageBatch(pool if workers else None, len(items))
    for item in items:
        batch.add(item)
    results = batch.result()
    assert batch.lost == []
    assert results == [None if i == 10 else want for i, want in enumerate(serial)]
    assert serial[10] is not None


RUSSIAN = "Городской совет проголосовал за закрытие старого моста на два года ремонта. " * 12
RUSSIAN_PAGE = (
    '<html><head><meta charset="koi8-r"><title>Мост</title></head>'  # the <meta> is wrong
    f"<body><article><p>{RUSSIAN}</p><p>{RUSSIAN}</p></article></body></html>"
).encode("cp1251")


def test_http_charset_wins_over_meta() -> None:
    told = extract_page(RUSSIAN_PAGE, URL, content_type="text/html; charset=windows-1251")
    assert told is not None and "Городской совет" in told.text
    untold = extract_page(RUSSIAN_PAGE, URL)
    assert untold is None or "Городской совет" not in untold.text


def test_extract_pages_honours_http_charset(pool: WorkerPool) -> None:
    items = [(f"{URL}/{i}", RUSSIAN_PAGE, "text/html; charset=windows-1251") for i in range(10)]
    results = extract_pages(items, pool)
    assert all(page is not None and "Городской совет" in page.text for page in results)


def test_extract_pages_small_and_empty_batches() -> None:
    with WorkerPool(4) as pool:
        assert extract_pages([], pool) == []
        items = _batch(3)
        assert extract_pages(items, pool) == [extract_page(html, url) for url, html in items]


# -- fuzz -------------------------------------------------------------------------------------------

_SEED = realistic_page()


@st.composite
def mutated_page(draw: st.DrawFn) -> bytes:
    data = bytearray(_SEED)
    for _ in range(draw(st.integers(1, 10))):
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["flip", "delete", "insert", "truncate"]))
        if op == "flip":
            data[pos] = draw(st.integers(0, 255))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 200))]
        elif op == "insert":
            data[pos:pos] = draw(
                st.sampled_from([b"<", b"<div>" * 50, b"</p>", b"\x00", b"<![CDATA[", b"<!--", b"&#0;", b"<?xml ", b"\xff\xfe", b"<meta charset='bogus'>", b"<meta charset='utf-16'>", b"<meta charset='zlib'>", b"<meta charset='base64'>"])
            )
        else:
            del data[pos:]
    return bytes(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.one_of(st.binary(max_size=2000), mutated_page()), url=st.sampled_from([URL, "", "not a url"]))
def test_extract_page_never_raises(raw: bytes, url: str) -> None:
    result = extract_page(raw, url)
    assert result is None or (isinstance(result, ExtractedPage) and result.text)


def _demo_pages() -> list[Path]:
    return sorted(bundled_corpus_dir().glob("*/articles/*.html"))


@pytest.mark.parametrize("path", _demo_pages(), ids=lambda path: f"{path.parts[-3]}/{path.stem}")
def test_extract_page_gives_what_trafilatura_gives_on_its_own(path: Path) -> None:
    """Our decoding, parser and pruning change nothing trafilatura would find on its own (pages with forms
    included): its text differs only by what our rules cut (a repeated headline, furniture, the author's
    biography; tests/test_candidates.py tests each) and a standfirst."""
    _assert_as_trafilatura(path.read_bytes(), f"http://127.0.0.1:8000/{path.parts[-3]}/articles/{path.name}")


def _assert_as_trafilatura(body: bytes, url: str) -> None:
    from trafilatura import bare_extraction

    ours = extract_page(body, url)
    theirs = bare_extraction(body, url=url, **extraction.TRAFILATURA_OPTIONS)
    assert ours is not None and theirs is not None
    text = paragraphs(theirs.text or "")
    text = trimmed(text, theirs.title, theirs.author)
    if ours.text != text:  # only a news page's standfirst, its description, may lead ours
        lead, _, rest = ours.text.partition("\n\n")
        description = re.search(rb'<meta name="description"\s+content="([^"]+)"', body)
        assert rest == text and lead not in text and b'"NewsArticle"' in body
        assert description and " ".join(unescape(description.group(1).decode()).split()) == lead
    assert (ours.title, ours.author, ours.site_name) == (
        extraction._clean(theirs.title),
        extraction._clean(theirs.author),
        extraction._clean(theirs.sitename),
    )


_DEMO_PAGE = bundled_corpus_dir() / "coastline-daily" / "articles" / "automated-cranes-south-terminal.html"


def _in_article(body: bytes, insert: bytes) -> bytes:
    """The page with ``insert`` inside the text of its first long paragraph."""
    found = re.search(rb"<p>[^<]{200}", body)
    assert found is not None
    return body[: found.start() + 100] + insert + body[found.start() + 100 :]


def _faulty_pages() -> Iterator[tuple[str, bytes]]:
    body = _DEMO_PAGE.read_bytes()
    doctype_end = body.index(b">") + 1
    # Every C0 control character but tab, newline and carriage return, one per page:
    # browsers show nothing for them (or drop them), libxml2 keeps them in the text.
    for code in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20)):
        yield f"control-{code:02x}-in-the-text", _in_article(body, bytes([code]))
    yield "controls-in-title-and-attribute", body.replace(b"<title>", b"<title>\x08", 1).replace(
        b"<meta ", b'<meta data-x="\x1b\x0c" ', 1
    )
    yield "noncharacters-in-the-text", _in_article(body, "\ufffe\uffff".encode())
    yield "nul-in-the-head", body.replace(b"<head>", b"<head>\x00", 1)
    yield "control-before-the-doctype", b"\x08" + body
    yield "self-closed-html-tag-ending-its-line", body.replace(b'<html lang="en-GB">', b'<html lang="en-GB"/>', 1)
    yield "xhtml-doctype", (
        b'<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">'
        + body[doctype_end:]
    )
    yield "self-closed-doctype", b"<!DOCTYPE html/>" + body[doctype_end:]
    yield "empty-doctype", b"<!DOCTYPE>" + body[doctype_end:]
    yield "no-doctype", body[doctype_end:].lstrip()
    yield "unterminated-comment-after-the-article", body.replace(b"</body>", b"<!-- tracking pixel </body>", 1)


@pytest.mark.parametrize(("fault", "body"), list(_faulty_pages()), ids=[fault for fault, _ in _faulty_pages()])
def test_faulty_pages_a_browser_renders_give_what_trafilatura_gives(fault: str, body: bytes) -> None:
    """trafilatura repairs such pages before parsing (issue 18: one \\x08 lost the whole text)."""
    assert _DEMO_PAGE.read_bytes() != body
    _assert_as_trafilatura(body, "http://127.0.0.1:8000/coastline-daily/articles/automated-cranes-south-terminal.html")


def test_a_self_closed_html_tag_is_read_as_browsers_read_it() -> None:
    """Browsers ignore the slash; libxml2 would drop the page, and trafilatura repairs the tag only at a line end."""
    from trafilatura import bare_extraction

    body = _DEMO_PAGE.read_bytes()
    for tag in (b'<html lang="en-GB"/><head>', b'<HTML lang="en-GB" /><head>'):
        faulty = body.replace(b'<html lang="en-GB">\n<head>', tag, 1)
        assert faulty != body and bare_extraction(faulty, **extraction.TRAFILATURA_OPTIONS) is None
        assert extract_page(faulty, URL) == extract_page(body, URL)


@pytest.mark.parametrize("key", ["articleBody", "isAccessibleForFree"])
def test_json_ld_nested_too_deep_to_read_costs_only_itself(key: str) -> None:
    """50,000 nested arrays: json.loads gives up with RecursionError, which ended the whole extraction."""
    body = _DEMO_PAGE.read_bytes()
    nested = b'<script type="application/ld+json">{"' + key.encode() + b'": ' + b"[" * 50_000 + b"]" * 50_000 + b"}</script>"
    hostile = body.replace(b"</head>", nested + b"</head>", 1)
    assert hostile != body
    assert extract_page(hostile, URL).text == extract_page(body, URL).text


# -- dates: the page's, checked against the feed's ----------------------------------------------


def test_the_page_update_date_is_kept_beside_the_publication_date() -> None:
    updated = realistic_page(head='<meta property="article:modified_time" content="2025-01-09T15:10:00+01:00">')
    result = extract_page(updated, URL)
    assert result is not None
    assert result.modified == datetime(2025, 1, 9, 14, 10, tzinfo=UTC)
    article = build_article(entry(), page(updated), outlet="L", settings=SETTINGS, now=NOW)
    assert article.published == article.page_published == datetime(2025, 1, 9, 7, 45, tzinfo=UTC)
    assert article.page_modified == datetime(2025, 1, 9, 14, 10, tzinfo=UTC)
    assert article.feed_published == datetime(2025, 1, 9, 7, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    "stated",
    [
        b'"datePublished": "2025-01-09T07:45:00-07:00"',
        b'"headline": "x"}</script><meta name="date" content="2025-01-09T07:45:00-07:00"><script>{"a": 1',
    ],
)
def test_a_local_publication_time_gets_the_offset_the_page_states(stated: bytes) -> None:
    # With the time stated only there, trafilatura reports "2025-01-09T07:45:00", without the offset.
    meta = b'  <meta property="article:published_time" content="2025-01-09T07:45:00+00:00">\n'
    western = realistic_page().replace(meta, b"").replace(b'"datePublished": "2025-01-09T07:45:00Z"', stated)
    assert b"published_time" not in western and western.count(b"07:45:00-07:00") == 1
    result = extract_page(western, "https://ledger.example/local/harbour-bridge-closes")
    assert result is not None
    assert result.date == datetime(2025, 1, 9, 14, 45, tzinfo=UTC)


def test_a_json_ld_update_date_is_found() -> None:
    head = '<script type="application/ld+json">{"@type": "NewsArticle", "dateModified": "2025-01-10T08:00:00Z"}</script>'
    result = extract_page(realistic_page(head=head), URL)
    assert result is not None
    assert result.modified == datetime(2025, 1, 10, 8, 0, tzinfo=UTC)


def dated(day: datetime) -> ExtractedPage:
    return ExtractedPage(title="T", text="y" * 500, author=None, date=day, site_name=None, language=None)


@pytest.mark.parametrize(
    ("page_date", "trusted"),
    [
        (datetime(2025, 1, 11, 6, 0, tzinfo=UTC), True),  # within a day of the fetch time (NOW)
        (datetime(2025, 1, 11, 13, 0, tzinfo=UTC), False),  # more than a day after it
        (datetime(2030, 6, 1, tzinfo=UTC), False),
        (datetime(2023, 3, 1, 8, 0, tzinfo=UTC), True),  # under two years before the feed's date
        (datetime(2022, 12, 1, 8, 0, tzinfo=UTC), False),  # over two years before it
        (datetime(2019, 1, 1, tzinfo=UTC), False),  # a copyright year
    ],
)
def test_a_page_date_in_the_future_or_years_before_the_feed_date_is_not_trusted(
    page_date: datetime, trusted: bool
) -> None:
    article = build_article(entry(), page(b"<html/>"), outlet="L", settings=SETTINGS, now=NOW, extracted=dated(page_date))
    assert article.published == (page_date if trusted else datetime(2025, 1, 9, 7, 30, tzinfo=UTC))
    assert article.page_published == page_date  # kept as found, trusted or not
    assert article.feed_published == datetime(2025, 1, 9, 7, 30, tzinfo=UTC)


def test_a_future_page_date_without_a_feed_date_leaves_the_article_undated() -> None:
    article = build_article(
        entry(published=None), page(b"<html/>"), outlet="L", settings=SETTINGS, now=NOW,
        extracted=dated(datetime(2031, 1, 1, tzinfo=UTC)),
    )
    assert article.published is None
    assert article.arrival_key[0] == NOW


# -- paywalls -----------------------------------------------------------------------------------

FULL_TEXT = "\n\n".join(ARTICLE_PARAGRAPHS)


def ld(data: str) -> str:
    return f'<script type="application/ld+json">{data}</script>'


@pytest.mark.parametrize(
    ("head", "after_body", "evidence"),
    [
        (ld('{"@type": "NewsArticle", "isAccessibleForFree": false}'), "", "isAccessibleForFree is false"),
        (
            ld('{"@graph": [{"@type": "NewsArticle", "isAccessibleForFree": "False", "hasPart": '
               '{"@type": "WebPageElement", "isAccessibleForFree": "False", "cssSelector": ".meteredContent"}}]}'),
            "",
            "isAccessibleForFree is false",
        ),
        (ld('{"@type": "NewsArticle", "hasPart": [{"isAccessibleForFree": false}]}'), "", "isAccessibleForFree is false"),
        ("", '<div class="article-paywall paywall"><p>Keep reading for $1.</p></div>', "class=paywall"),
        ("", '<div id="paywall"></div>', "id=paywall"),
        ("", '<div class="tp-modal tp-active"></div>', "class=tp-modal"),
        ("", '<section class="meteredContent"></section>', "class=meteredContent"),
        ("", '<div class="box subscriber-only">The rest is for subscribers.</div>', "class=subscriber-only"),
    ],
)
def test_a_paywalled_page_falls_back_to_the_feed_content(head: str, after_body: str, evidence: str) -> None:
    locked = realistic_page(head=head, after_body=after_body)
    found = extract_page(locked, URL)
    assert found is not None and found.paywall == evidence
    article = build_article(entry(content=FULL_TEXT), page(locked), outlet="L", settings=SETTINGS, now=NOW)
    assert (article.text_source, article.text) == (TextSource.FEED_CONTENT, FULL_TEXT)
    assert article.text_source_reason == f"paywalled: {evidence}"
    assert article.paywalled
    assert article.title == "Harbour bridge to close for two years"  # page metadata still used


def test_a_free_article_with_a_subscribe_box_is_not_paywalled() -> None:
    free = realistic_page(
        head=ld('{"@type": "NewsArticle", "isAccessibleForFree": true, "hasPart": {"isAccessibleForFree": "True"}}'),
        after_body='<div class="subscribe-box" id="newsletter-subscribe"><h3>Subscribe</h3>'
        "<p>Subscribe to our newsletter. Subscribers get the morning briefing.</p></div>"
        '<div class="paywall-free-notice no-paywall">This article is free to read.</div>',
    )
    found = extract_page(free, URL)
    assert found is not None and found.paywall is None
    article = build_article(entry(content=FULL_TEXT), page(free), outlet="L", settings=SETTINGS, now=NOW)
    assert (article.text_source, article.text_source_reason, article.paywalled) == (TextSource.PAGE, None, False)


def test_teaser_length_page_text_is_a_paywall() -> None:
    # The page shows the first paragraph (trafilatura adds the byline and the newsletter
    # line around so short a text); the feed carries the whole article.
    teaser = realistic_page(ARTICLE_PARAGRAPHS[:1])
    whole = FULL_TEXT + "\n\n" + "\n\n".join(
        [
            "Ferry operators said they would add two boats on the morning and evening runs, and "
            "that fares would stay the same for holders of monthly passes.",
            "Cyclists will be allowed on the ferries free of charge, the city's transport office "
            "said, and a shuttle bus will link the two landings with the train station.",
            "The council will review the ferry timetable after six months and publish the number "
            "of passengers it carried, the mayor's office said in a statement.",
        ]
    )
    short_ok = ExtractionSettings(min_text_chars=100)  # the teaser is long enough to count as text
    article = build_article(entry(content=whole), page(teaser), outlet="L", settings=short_ok, now=NOW)
    assert (article.text_source, article.text, article.paywalled) == (TextSource.FEED_CONTENT, whole, True)
    assert article.text_source_reason is not None
    assert re.fullmatch(rf"paywalled: page text is a teaser \(\d+ chars, the feed's content {len(whole)}\)", article.text_source_reason)
    # The same page against a feed without more text is simply a short article.
    summary_only = build_article(entry(content=None), page(teaser), outlet="L", settings=short_ok, now=NOW)
    assert (summary_only.text_source, summary_only.paywalled) == (TextSource.PAGE, False)


def test_a_paywalled_page_without_feed_text_keeps_what_the_page_shows() -> None:
    locked = realistic_page(after_body='<div class="paywall"></div>')
    article = build_article(entry(content=None, summary=None), page(locked), outlet="L", settings=SETTINGS, now=NOW)
    assert (article.text_source, article.paywalled, article.text_source_reason) == (
        TextSource.PAGE, True, "paywalled: class=paywall"
    )
    assert ARTICLE_PARAGRAPHS[2] in article.text


# -- canonical identity -------------------------------------------------------------------------

CANONICAL = "https://ledger.example/news/harbour-bridge-closes"


@pytest.mark.parametrize(
    ("head", "found"),
    [
        ('<link rel="canonical" href="/news/harbour-bridge-closes">', CANONICAL),  # relative to the page
        ('<link rel="Canonical" href="HTTPS://Ledger.EXAMPLE:443/news/harbour-bridge-closes?utm_source=amp#top">', CANONICAL),
        ('<meta property="og:url" content="https://ledger.example/news/harbour-bridge-closes">', CANONICAL),
        # <link rel=canonical> wins over og:url; an unusable one gives way to the next
        ('<link rel="canonical" href="/news/harbour-bridge-closes"><meta property="og:url" content="/other">', CANONICAL),
        ('<link rel="canonical" href="javascript:void(0)"><meta property="og:url" content="/news/harbour-bridge-closes">', CANONICAL),
        ('<link rel="alternate" href="/amp/harbour-bridge-closes">', None),
        ("", None),
    ],
)
def test_the_page_canonical_url_is_found_in_canonical_spelling(head: str, found: str | None) -> None:
    result = extract_page(realistic_page(head=head), URL)
    assert result is not None and result.canonical == found


@pytest.mark.parametrize(
    ("page_url", "canonical", "trusted"),
    [
        (URL, CANONICAL, True),  # another path on the same site
        # the same registrable domain (".example" is no public suffix: each name is its own domain)
        ("https://amp.ledger.co.uk/harbour-bridge-closes", "https://www.ledger.co.uk/news/harbour-bridge-closes", True),
        (URL, "https://wire.example/news/harbour-bridge-closes", False),  # a syndicated copy naming the original
        ("https://ledger.example.co.uk/a", "https://other.co.uk/a", False),  # a public suffix is no site
        (URL, "https://ledger.example/", False),  # a misconfigured site naming its home page on every article
    ],
)
def test_a_canonical_url_on_the_page_site_is_the_article_identity(page_url: str, canonical: str, trusted: bool) -> None:
    body = realistic_page(head=f'<link rel="canonical" href="{canonical}">')
    article = build_article(entry(), page(body, url=page_url), outlet="L", settings=SETTINGS, now=NOW)
    expected = canonical if trusted else URL
    assert (article.url, article.id) == (expected, article_id(expected))


def test_a_page_without_canonical_url_keeps_the_entry_url() -> None:
    article = build_article(entry(), page(realistic_page()), outlet="L", settings=SETTINGS, now=NOW)
    assert (article.url, article.id) == (URL, article_id(URL))


# -- candidates: a body split into parts --------------------------------------------------------

_SPLIT_WORDS = "The river authority said the new flood barrier would be finished before the winter storms arrived in the valley".split()


def _split_paragraph(number: int) -> str:
    shift = (number * 3) % len(_SPLIT_WORDS)
    return " ".join(_SPLIT_WORDS[shift:] + _SPLIT_WORDS[:shift]) + f" (paragraph {number})."


def _split_page(parts: int, extra: str = "") -> bytes:
    """An article cut into ``parts`` containers of one class between ads, as long reads are laid out."""
    chunks = "".join(
        '<div class="grid"><div class="grid-item"><div class="article-body">'
        + "".join(f"<p>{_split_paragraph(part * 4 + line)}</p>" for line in range(4))
        + '</div></div></div><div class="ad-slot"><div class="ad">Advertisement</div></div>'
        for part in range(parts)
    )
    return (
        "<html><head><title>Flood barrier</title></head><body><header><nav><a href='/'>Home</a></nav></header>"
        f"<main><h1>Flood barrier</h1><div class='chunks'>{chunks}</div>{extra}</main>"
        "<footer><p>Copyright Example</p></footer></body></html>"
    ).encode()


def test_a_body_split_into_parts_is_extracted_whole() -> None:
    found = extract_page(_split_page(3), URL)
    assert found is not None
    assert found.text.split("\n\n") == [_split_paragraph(n) for n in range(12)]


def test_a_teaser_list_styled_as_a_part_is_not_added() -> None:
    teasers = "".join(
        f'<p><a href="/story/{n}">Another story about the valley and its long wet winter, number {n}</a></p>' for n in range(8)
    )
    found = extract_page(_split_page(1, f'<div class="grid"><div class="article-body">{teasers}</div></div>'), URL)
    assert found is not None
    assert found.text.split("\n\n") == [_split_paragraph(n) for n in range(4)]



# -- candidates: a news page's standfirst, the JSON-LD articleBody --------------------------------

_LEAD = "The harbour bridge will close for two years while engineers replace its three cracked supports."
_NEWS_LD = '<script type="application/ld+json">{"@context": "https://schema.org", "@type": "NewsArticle", "headline": "Bridge closes"}</script>'


def _news_page(head: str, lead: str, after: str = "") -> bytes:
    body = "".join(f"<p>{_split_paragraph(n)}</p>" for n in range(4))
    return (
        f"<html><head><title>Bridge closes</title>{head}</head><body><header><nav><a href='/'>Home</a></nav></header>"
        f"<main><article><h1>Bridge closes</h1>{lead}<div class='article-body'>{body}{after}</div></article></main>"
        "<footer><p>Copyright Example</p></footer></body></html>"
    ).encode()


def test_a_news_page_standfirst_leads_the_text() -> None:
    page = _news_page(f'<meta name="description" content="{_LEAD}">{_NEWS_LD}', f'<p class="dek">{_LEAD}</p>')
    found = extract_page(page, URL)
    assert found is not None
    assert found.text.split("\n\n") == [_LEAD] + [_split_paragraph(n) for n in range(4)]


@pytest.mark.parametrize(
    ("head", "lead"),
    [
        (f'<meta name="description" content="{_LEAD}">', f'<p class="dek">{_LEAD}</p>'),  # not a news article: a blog's excerpt
        (f'<meta name="description" content="{_LEAD}">{_NEWS_LD}', ""),  # a description the page does not show
    ],
    ids=["not-news", "not-shown"],
)
def test_a_description_that_is_no_standfirst_is_left_out(head: str, lead: str) -> None:
    found = extract_page(_news_page(head, lead), URL)
    assert found is not None
    assert found.text.split("\n\n") == [_split_paragraph(n) for n in range(4)]


_NEXT_STORY = [
    "Next story: the town's summer festival returns to the market square with three stages and a night market for everyone.",
    "Organisers said tickets for the festival go on sale on Monday and that the parade will follow its old route this year.",
]


def _body_ld(paragraphs: list[str]) -> str:
    data = {"@context": "https://schema.org", "@graph": [{"@type": "WebPage"}, {"@type": "NewsArticle", "articleBody": " ".join(paragraphs)}]}
    return f'<script type="application/ld+json">{json.dumps(data)}</script>'


def test_text_after_the_stated_article_body_is_cut() -> None:
    after = "".join(f"<p>{p}</p>" for p in _NEXT_STORY)
    found = extract_page(_news_page(_body_ld([_split_paragraph(n) for n in range(4)]), "", after), URL)
    assert found is not None
    assert found.text.split("\n\n") == [_split_paragraph(n) for n in range(4)]


def test_a_teaser_article_body_cuts_nothing() -> None:
    # A paywalled page's JSON-LD may state only the start: under 500 characters and half the text's words, it says nothing of its end.
    after = "".join(f"<p>{p}</p>" for p in _NEXT_STORY)
    teaser = [_split_paragraph(0) + " " + _split_paragraph(1) + " " + _split_paragraph(2)]
    found = extract_page(_news_page(_body_ld(teaser), "", after), URL)
    assert found is not None
    assert found.text.split("\n\n") == [_split_paragraph(n) for n in range(4)] + _NEXT_STORY


def test_the_stated_article_body_replaces_a_text_without_its_words() -> None:
    # A page its scripts render: its HTML shows only a promotion, its JSON-LD states the article.
    story = [_split_paragraph(n) for n in range(4)]
    promo = "".join(f"<p>{p}</p>" for p in _NEXT_STORY * 8)
    page = (
        f"<html><head><title>Bridge closes</title>{_body_ld(story)}</head><body>"
        f"<div class='promo'>{promo}</div><div id='app'></div></body></html>"
    ).encode()
    found = extract_page(page, URL)
    assert found is not None
    assert found.text == " ".join(story)


def test_an_agency_sign_off_after_the_stated_article_body_is_kept() -> None:
    # The cut must not take what credits a wire agency: the sign-off is not in the articleBody.
    sign_off = "(Reporting by Jane Doe in Valmora; Editing by John Roe)"
    after = f"<p>{sign_off}</p>" + "".join(f"<p>{p}</p>" for p in _NEXT_STORY)
    story = [_split_paragraph(n) for n in range(4)]
    found = extract_page(_news_page(_body_ld(story), "", after), URL)
    assert found is not None
    assert found.text.split("\n\n") == story + [sign_off]
