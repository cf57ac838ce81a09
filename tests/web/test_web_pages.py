"""The HTML pages over a store the demo pipeline filled: river, search, story, article, feeds, runs."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from demo_truth import expected, ids_of
from fastapi.testclient import TestClient
from lxml import html

from pipeline.settings import Settings
from pipeline.storage import Store
from pipeline.storage.schema import cluster_aliases
from pipeline.web import views

LOCAL_INTRO = "Harbor City's water board will vote next month"  # the Ledger's own paragraph on the wire story
TRIMMED = "Valmora already runs four smaller desalination plants"  # where Metro Wire Online's copy stops


def story_id_of(settings: Settings, cluster: int) -> str:
    """The story id of the demo's ``cluster``-th expected cluster."""
    store = Store(settings.resolved_store_url)
    try:
        path = expected()["clusters"][cluster]["members"][0]
        feeds = settings.resolved_feeds_file.read_text()
        base = re.search(r"http://127\.0\.0\.1:\d+", feeds)
        assert base is not None
        member = store.membership(next(iter(ids_of(base.group(0), [path]))))
        assert member is not None
        return member.cluster_id
    finally:
        store.close()


def following_next(client: TestClient, url: str, xpath: str) -> tuple[list[str], list[dict[str, list[str]]]]:
    """What ``xpath`` finds on the page at ``url`` and on every page its `rel=next` links lead to; those links' queries."""
    found: list[str] = []
    links: list[dict[str, list[str]]] = []
    while True:
        page = html.fromstring(client.get(url).text)
        found += page.xpath(xpath)
        more = page.xpath("//a[@rel='next']/@href")
        if not more:
            return found, links
        url = more[0]
        links.append(parse_qs(urlsplit(url).query))


def test_the_river_lists_stories_newest_first_and_pages_by_cursor(client: TestClient) -> None:
    first = html.fromstring(client.get("/").text)
    titles = first.xpath("//li[@class='story']/h2/a/text()")
    assert "Drought-hit Valmora approves 1.2 bln euro desalination plant" in titles
    assert "Coastline Daily" in first.xpath("//li[@class='story']//p[@class='meta']/a/text()")

    seen, links = following_next(client, "/?limit=7", "//li[@class='story']/h2/a/@href")
    assert links and all(query["limit"] == ["7"] for query in links)
    assert len(seen) == len(set(seen)) == len(first.xpath("//li[@class='story']")) == 26


def test_the_river_filters_by_outlet_agency_language_and_dates(client: TestClient) -> None:
    def titles(query: str) -> list[str]:
        response = client.get("/?" + query)
        assert response.status_code == 200, response.text
        return html.fromstring(response.text).xpath("//li[@class='story']/h2/a/text()")

    everything = titles("")
    german = titles("language=de")
    assert german and set(german) < set(everything)
    assert all(t for t in german) and "Stundenlang in der Gondel: 140 Menschen aus der Hochkranzbahn gerettet" in german
    assert titles("agency=dpa") == ["Stundenlang in der Gondel: 140 Menschen aus der Hochkranzbahn gerettet"]
    ledger = titles("outlet=Harbor+City+Ledger")
    assert "Drought-hit Valmora approves 1.2 bln euro desalination plant" in ledger and len(ledger) < len(everything)
    assert titles("until=2000-01-01") == [] and titles("since=2000-01-01") == everything


def test_the_story_page_shows_each_outlets_changes_and_how_it_matched(
    client: TestClient, demo_web_settings: Settings
) -> None:
    story_id = story_id_of(demo_web_settings, 0)  # the desalination story (Reuters), five outlets
    page = html.fromstring(client.get(f"/stories/{story_id}").text)

    outlets = page.xpath("//section[@class='outlet']/h3/text()")
    assert sorted(outlets) == ["Coastline Daily", "Harbor City Ledger", "Kestrel Tribune", "Metro Wire Online",
                               "Valley Courier"]
    ledger = page.xpath("//section[h3='Harbor City Ledger']")[0]
    assert any(LOCAL_INTRO in text for text in ledger.xpath(".//p[@class='added']/ins/text()"))
    assert "1 paragraph added on top (a local intro)" in ledger.text_content() or \
        "paragraphs added on top (a local intro)" in ledger.text_content()
    metro = page.xpath("//section[h3='Metro Wire Online']")[0]
    assert any(TRIMMED in text for text in metro.xpath(".//p[@class='cut']/del/text()"))
    assert "ending trimmed" in metro.text_content()
    assert "New headline: Valmora approves its biggest water project in 50 years" in " ".join(metro.text_content().split())
    matched = page.xpath("//p[@class='match']/text()")
    assert sum("founded the cluster" in t for t in matched) == 1
    assert re.search(r"Jaccard \d\.\d\d, containment \d\.\d\d", " ".join(page.xpath("//p[@class='match']")[1].itertext()))
    # every copy links its article page and its original
    assert len(page.xpath("//p[@class='copy-head']/a[starts-with(@href, '/articles/')]")) == 5


def absorbed_into(settings: Settings, alias: str) -> str:
    """Record ``alias`` as a story id absorbed into the demo's second story; that story's id."""
    survivor = story_id_of(settings, 1)
    store = Store(settings.resolved_store_url)
    try:
        with store.engine.begin() as conn:
            conn.execute(sa.delete(cluster_aliases).where(cluster_aliases.c.absorbed_id == alias))
            conn.execute(sa.insert(cluster_aliases).values(absorbed_id=alias, survivor_id=survivor))
    finally:
        store.close()
    return survivor


def test_an_absorbed_story_id_redirects_to_the_survivor(client: TestClient, demo_web_settings: Settings) -> None:
    survivor = absorbed_into(demo_web_settings, "absorbed-one")
    response = client.get("/stories/absorbed-one", follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (301, f"/stories/{survivor}")
    api = client.get("/api/stories/absorbed-one")
    assert api.status_code == 200 and api.json()["story"]["id"] == survivor


def test_the_article_page_shows_text_source_and_why_credit_and_feed_entry(
    client: TestClient, demo_web_settings: Settings
) -> None:
    feeds = demo_web_settings.resolved_feeds_file.read_text()
    base = re.search(r"http://127\.0\.0\.1:\d+", feeds)
    assert base is not None
    paywalled = next(iter(ids_of(base.group(0), ["/kestrel-tribune/articles/valmora-desalination.html"])))
    page = html.fromstring(client.get(f"/articles/{paywalled}").text)
    facts = dict(zip(page.xpath("//dl[@class='facts']/dt/text()"),
                     [" ".join(dd.text_content().split()) for dd in page.xpath("//dl[@class='facts']/dd")],
                     strict=True))
    assert facts["Outlet"] == "Kestrel Tribune"
    assert facts["Text source"].startswith("feed_content: ")  # the teaser page gave way to the feed's text, and why
    assert facts["Credit"].startswith("Reuters (full credit")
    assert facts["Feed entry"].startswith("“") and "guid" in facts["Feed entry"]
    assert facts["Story"].startswith("0")
    assert "MARISPORT" in page.xpath("string(//section[@class='text'])")


def test_search_highlights_and_counts_facets(client: TestClient) -> None:
    page = html.fromstring(client.get("/search", params={"q": "desalination plant"}).text)
    assert page.xpath("//li[@class='story']/h2/a/text()") == ["Drought-hit Valmora approves 1.2 bln euro desalination plant"]
    assert {m.lower() for m in page.xpath("//p[@class='snippet']/mark/text()")} >= {"desalination"}
    facets = {h.text: [li.text_content().split()[-1] for li in h.getnext()]
              for h in page.xpath("//aside[@class='facets']/h3")}
    assert facets["Outlets"] == ["1"] * 5 and facets["Agencies"] == ["1"]

    everywhere = html.fromstring(client.get("/search", params={"q": "rate"}).text)
    narrowed = html.fromstring(client.get("/search", params={"q": "rate", "agency": "Reuters"}).text)
    titles = narrowed.xpath("//li[@class='story']/h2/a/text()")
    assert "Kaldora central bank holds at 4.50%, opens door to cuts next year" in titles
    assert "Estmark central bank hikes rates again as inflation nears 9%" not in titles  # AFP's
    assert 0 < len(titles) < len(everywhere.xpath("//li[@class='story']"))
    assert client.get("/search").status_code == 200  # the empty form


def test_search_pages_through_every_hit_once(client: TestClient) -> None:
    everything = client.get("/api/search", params={"q": "rate", "limit": 50}).json()
    ids = [hit["story_id"] for hit in everything["hits"]]
    assert everything["total"] == len(ids) >= 3
    paged: list[str] = []
    for offset in range(0, len(ids) + 2, 2):
        paged += [hit["story_id"] for hit in client.get(
            "/api/search", params={"q": "rate", "limit": 2, "offset": offset}).json()["hits"]]
    assert paged == ids

    # The page links to the next one while hits remain, keeping the words.
    titles, links = following_next(client, "/search?q=rate&limit=2", "//li[@class='story']/h2/a/text()")
    assert links and all(query["q"] == ["rate"] for query in links)
    assert titles == [hit["title"] for hit in everything["hits"]]
    assert client.get("/api/search", params={"q": "rate", "offset": -1}).status_code == 400


def test_feeds_and_runs_pages(client: TestClient) -> None:
    feeds = html.fromstring(client.get("/feeds").text)
    assert feeds.xpath("//table/thead//th/text()")[:3] == ["feed", "status", "fails"]
    assert len(feeds.xpath("//table/tbody/tr")) == 10
    assert set(feeds.xpath("//table/tbody/tr/td[2]/text()")) == {"active"}
    runs = html.fromstring(client.get("/runs").text)
    row = runs.xpath("//table/tbody/tr")[0].xpath("td/text()")
    assert row[1:3] == ["ok", "demo"]


def test_a_story_page_compares_a_bounded_number_of_copies(
    client: TestClient, demo_web_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(views, "MAX_COMPARED", 2)
    page = html.fromstring(client.get(f"/stories/{story_id_of(demo_web_settings, 0)}").text)
    copies = page.xpath("//div[starts-with(@class, 'copy')]")
    assert len(copies) == 5  # every copy listed, with how it matched
    verdicts = [" ".join(c.xpath("string(.//*[contains(@class, 'verdict')])").split()) for c in copies]
    assert verdicts.count("Not compared: this page compares the first 2 copies.") == 2  # 5 less 2, less the base
