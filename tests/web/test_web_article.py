"""An article's page and its JSON: the template paragraphs stripped from it, its revisions, its archived page."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from lxml import html

from pipeline.models import ArchiveRecord, Article, TextSource
from pipeline.settings import ExtractionSettings, load_settings
from pipeline.storage import Store
from pipeline.web import create_app

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
BOX = "Sign up to the Ledger Morning briefing, in your inbox every weekday at 7am."
FIRST_PAGE = ArchiveRecord("newsagg-20261102-0001.warc.gz", 4096, 2345)
ARCHIVED = ArchiveRecord("newsagg-20261102-0002.warc.gz", 512, 2401)  # the corrected page, its latest


def article(n: int, topic: str, *, title: str = "", hours: float = 0) -> Article:
    paragraphs = [f"The {topic} board met on Tuesday to discuss the {item} part of its plan, which residents have"
                  f" argued about for months, and agreed to publish the {topic} costs by spring."
                  for item in ("budget", "timetable", "staffing", "parking")]
    return Article(
        id=f"ledger-{n}", url=f"https://www.ledger.example/news/{n}", outlet="Ledger", title=title or f"Story {n}",
        text="\n\n".join([*paragraphs, BOX]), published=T0, fetched_at=T0 + timedelta(hours=hours),
        text_source=TextSource.PAGE,
    )


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """A store where ledger-9 had the Ledger's newsletter box stripped, was corrected once and is archived."""
    settings = load_settings(data_dir=tmp_path_factory.mktemp("article") / "data", search_backend="sqlite",
                             store_url=None)
    templates = ExtractionSettings()  # a block on 5 of an outlet's articles is its template
    store = Store(settings.resolved_store_url)
    for n, topic in enumerate(["harbour", "rail", "school", "water", "market"]):
        store.save_article(article(n, topic), templates=templates)
    first = article(9, "bridge", title="Bridge costs to be published")
    store.save_article(first, templates=templates, archived=FIRST_PAGE)
    corrected = replace(first, title="Bridge costs to be published in spring", fetched_at=T0 + timedelta(hours=5),
                        text=first.text.replace("Tuesday", "Wednesday"))
    assert store.revise_article(corrected, corrected.url, reason="page changed", templates=templates,
                                archived=ARCHIVED)
    store.close()
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_the_article_page_shows_the_stripped_template_its_revisions_and_its_archived_page(
    client: TestClient,
) -> None:
    page = html.fromstring(client.get("/articles/ledger-9").text)
    assert BOX not in page.xpath("string(//section[@class='text'])")
    stripped = [" ".join(li.text_content().split()) for li in page.xpath("//section[@class='stripped']//li")]
    # On the 5 articles before it, then on itself too when its correction was stripped again.
    assert stripped == [f"{BOX} (on 6 of the outlet's articles)"]
    revisions = page.xpath("//section[@class='revisions']//li")
    assert [" ".join(r.xpath("string(.//span[@class='revision'])").split()) for r in revisions] == [
        "1. 2026-11-02 08:00 first version: Bridge costs to be published",
        "2. 2026-11-02 13:00 page changed: Bridge costs to be published in spring",
    ]
    assert "Tuesday" in revisions[0].xpath("string(.//div[@class='revision-text'])")
    facts = dict(zip(page.xpath("//dl[@class='facts']/dt/text()"),
                     [" ".join(dd.text_content().split()) for dd in page.xpath("//dl[@class='facts']/dd")],
                     strict=True))
    assert facts["Archived page"] == f"{ARCHIVED.file}, offset {ARCHIVED.offset}, {ARCHIVED.length} bytes"


def test_an_article_never_corrected_nor_archived_says_so(client: TestClient) -> None:
    page = html.fromstring(client.get("/articles/ledger-0").text)
    assert page.xpath("//section[@class='revisions']") == [] and page.xpath("//section[@class='stripped']") == []
    facts = dict(zip(page.xpath("//dl[@class='facts']/dt/text()"),
                     [" ".join(dd.text_content().split()) for dd in page.xpath("//dl[@class='facts']/dd")],
                     strict=True))
    assert facts["Archived page"] == "not archived"


def test_the_article_api_carries_the_stripped_template_revisions_and_archived_page(client: TestClient) -> None:
    body = client.get("/api/articles/ledger-9").json()
    assert body["template_stripped"] == [{"text": BOX, "articles": 6}]
    assert [(r["revision"], r["reason"], r["title"]) for r in body["revisions"]] == [
        (1, "first version", "Bridge costs to be published"),
        (2, "page changed", "Bridge costs to be published in spring"),
    ]
    assert "Tuesday" in body["revisions"][0]["text"] and "Wednesday" in body["revisions"][1]["text"]
    assert body["archived"] == {"file": ARCHIVED.file, "offset": ARCHIVED.offset, "length": ARCHIVED.length}
    assert client.get("/api/articles/ledger-0").json()["archived"] is None
