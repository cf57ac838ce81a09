"""/feed.atom and /feed.json read back as a feed reader would, and the JSON API, on both search backends."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from services import postgres_database
from web_demo import run_demo_into

from pipeline.demo.server import CorpusServer
from pipeline.models import Source, Story
from pipeline.search.elastic import ElasticsearchIndex
from pipeline.settings import Settings
from pipeline.storage import Store
from pipeline.storage.backup import copy_store
from pipeline.storage.schema import stories
from pipeline.web import create_app
from pipeline.web.syndication import updated


def test_the_atom_feed_has_one_entry_per_story_with_its_outlets(client: TestClient) -> None:
    response = client.get("/feed.atom", params={"limit": 100})
    assert response.headers["content-type"] == "application/atom+xml; charset=utf-8"
    feed = feedparser.parse(response.content)
    assert not feed.bozo, feed.get("bozo_exception")
    stories = client.get("/api/stories", params={"limit": 100}).json()["stories"]
    assert len(feed.entries) == len(stories) == 26
    assert [e.id for e in feed.entries] == [f"urn:newsagg:story:{s['id']}" for s in stories]
    wire = next(e for e in feed.entries if e.title == "Drought-hit Valmora approves 1.2 bln euro desalination plant")
    assert sorted(c.name for c in wire.contributors) == [
        "Coastline Daily", "Harbor City Ledger", "Kestrel Tribune", "Metro Wire Online", "Valley Courier"
    ]
    assert wire.link.endswith("/stories/" + wire.id.rsplit(":", 1)[1])
    assert "Ran in 5 outlets" in wire.content[0].value and "<a href=" in wire.content[0].value
    assert [t.term for t in wire.tags] == ["Reuters"]

    german = feedparser.parse(client.get("/feed.atom", params={"language": "de"}).content)
    assert german.entries and len(german.entries) < len(feed.entries)


def test_the_json_feed_is_json_feed_1_1(client: TestClient) -> None:
    response = client.get("/feed.json", params={"agency": "Reuters"})
    assert response.headers["content-type"] == "application/feed+json"
    feed = response.json()
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    assert isinstance(feed["title"], str) and feed["feed_url"].endswith("/feed.json?agency=Reuters")
    assert feed["items"]
    for item in feed["items"]:
        assert isinstance(item["id"], str) and item["id"].startswith("urn:newsagg:story:")
        assert item.get("content_html") or item.get("content_text")  # one of them is required
        for key in ("date_published", "date_modified"):
            datetime.fromisoformat(item[key])
        assert [a["name"] for a in item["authors"]] == item["_newsagg"]["outlets"]
        assert item["_newsagg"]["agency"] == "Reuters"
    assert len({item["id"] for item in feed["items"]}) == len(feed["items"])


@pytest.mark.parametrize("path", ["/feed.atom", "/feed.json"])
def test_a_reader_polling_with_the_etag_downloads_the_feed_again_only_when_it_changed(
    demo_web_settings: Settings, tmp_path: Path, path: str
) -> None:
    # A copy of the demo's store, so that a story can change without touching the shared one.
    copy_store(demo_web_settings.data_dir / "store.sqlite3", tmp_path / "store.sqlite3")
    settings = demo_web_settings.model_copy(update={"store_url": f"sqlite:///{tmp_path / 'store.sqlite3'}"})
    with TestClient(create_app(settings)) as client:
        first = client.get(path)
        tag = first.headers["etag"]
        assert first.status_code == 200 and first.content
        again = client.get(path, headers={"if-none-match": tag})
        assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", tag)
        assert client.get(path, headers={"if-none-match": f'"other", {tag}'}).status_code == 304
        assert client.head(path, headers={"if-none-match": tag}).status_code == 304
        assert client.get(path, params={"language": "de"}, headers={"if-none-match": tag}).status_code == 200

        store = Store(settings.resolved_store_url)
        try:
            with store.engine.begin() as conn:
                newest = conn.execute(sa.select(stories.c.id).order_by(stories.c.last_seen.desc()).limit(1)).scalar()
                conn.execute(sa.update(stories).where(stories.c.id == newest).values(title="Corrected headline"))
        finally:
            store.close()
        changed = client.get(path, headers={"if-none-match": tag})
        assert changed.status_code == 200 and b"Corrected headline" in changed.content
        assert changed.headers["etag"] != tag


def test_an_entry_is_updated_when_a_new_outlet_joins_not_when_one_runs_it_again() -> None:
    def at(hour: int) -> datetime:
        return datetime(2026, 11, 3, hour, tzinfo=UTC)

    def story(*sources: tuple[str, int]) -> Story:
        copies = tuple(Source(f"a{n}", outlet, None, "t", at(hour)) for n, (outlet, hour) in enumerate(sources))
        return Story("s", "t", "x", "x", copies, first_seen=at(sources[0][1]), last_seen=at(sources[-1][1]))

    assert updated(story(("A", 8), ("B", 9))) == at(9)
    assert updated(story(("A", 8), ("B", 9), ("A", 11))) == at(9)  # A again: nothing new for a reader
    assert updated(story(("A", 8), ("B", 9), ("A", 11), ("C", 12))) == at(12)


def test_the_api_pages_stories_by_cursor(client: TestClient) -> None:
    ids: list[str] = []
    after: str | None = None
    while True:
        page = client.get("/api/stories", params={"limit": 10, **({"after": after} if after else {})}).json()
        ids += [s["id"] for s in page["stories"]]
        after = page["next"]
        if after is None:
            break
    assert len(ids) == len(set(ids)) == 26
    seen = [s["last_seen"] for s in client.get("/api/stories", params={"limit": 100}).json()["stories"]]
    assert seen == sorted(seen, reverse=True)


def test_the_api_story_article_feeds_and_runs(client: TestClient) -> None:
    story_id = client.get("/api/search", params={"q": "desalination plant"}).json()["hits"][0]["story_id"]
    story = client.get(f"/api/stories/{story_id}").json()
    assert story["story"]["id"] == story_id and len(story["outlets"]) == 5
    ledger = next(o for o in story["outlets"] if o["outlet"] == "Harbor City Ledger")["copies"][0]
    # its own paragraph on top of the wire story (the headline its page repeats is not text)
    assert ledger["changes"]["paragraphs"][0]["kind"] == "added"
    assert ledger["changes"]["paragraphs"][0]["text"].startswith("Harbor City's water board")
    article = client.get(f"/api/articles/{ledger['article_id']}").json()
    assert article["article"]["outlet"] == "Harbor City Ledger" and article["cluster_id"] == story_id
    assert article["entry"]["feed_id"] == article["article"]["feed_id"]
    feeds = client.get("/api/feeds").json()["feeds"]
    assert len(feeds) == 10 and {f["status"] for f in feeds} == {"active"}
    assert {f["waiting"] for f in feeds} == {"0"}  # the demo fetched every page
    assert client.get("/api/runs").json()["runs"][0]["trigger"] == "demo"


@pytest.fixture(scope="module")
def elastic_settings(corpus_server: CorpusServer, es_url: str,
                     tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    es = {"urls": [es_url], "index_prefix": f"t-{uuid.uuid4().hex[:8]}"}
    settings = run_demo_into(corpus_server, tmp_path_factory.mktemp("web-es"), search_backend="elasticsearch", es=es)
    index = ElasticsearchIndex(settings.es)
    index.refresh()
    yield settings
    index.drop()
    index.close()


def test_search_on_elasticsearch_ranks_highlights_and_counts_as_the_cli_does(
    elastic_settings: Settings, client: TestClient
) -> None:
    with TestClient(create_app(elastic_settings)) as elastic:
        results = elastic.get("/api/search", params={"q": "Oskar River flood evacuated"}).json()
        assert results["hits"][0]["title"] == "Floods kill 7 in eastern Dravonia as Oskar River breaks record"
        assert sum(results["facets"]["outlet"].values()) >= 4
        page = elastic.get("/search", params={"q": "desalination plant"}).text
        everything = elastic.get("/api/search", params={"q": "rate", "limit": 50}).json()["hits"]
        paged = [hit for offset in range(0, len(everything) + 2, 2)
                 for hit in elastic.get("/api/search", params={"q": "rate", "limit": 2, "offset": offset}).json()["hits"]]
    assert len(everything) >= 3 and [h["story_id"] for h in paged] == [h["story_id"] for h in everything]
    assert "<mark>desalination</mark>" in page.lower()
    sqlite = client.get("/api/search", params={"q": "Oskar River flood evacuated"}).json()
    assert results["hits"][0]["title"] == sqlite["hits"][0]["title"]


def test_metrics_are_served_in_the_prometheus_text_format(client: TestClient, demo_web_settings: Settings) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from pipeline.storage import Store

    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    assert response.headers["x-content-type-options"] == "nosniff"
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    store = Store(demo_web_settings.resolved_store_url)
    try:
        stored_articles = sum(1 for _ in store.iter_articles())
    finally:
        store.close()
    served = sum(sample.value for sample in families["newsagg_articles"].samples)
    assert served == stored_articles > 0


@pytest.mark.parametrize("backend", ["sqlite", "elasticsearch"])
def test_an_index_gone_is_reported_not_made_again_empty(
    backend: str, corpus_server: CorpusServer, tmp_path: Path, caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
) -> None:
    # The embedded index's file deleted, or an Elasticsearch cluster rebuilt without a snapshot.
    if backend == "sqlite":
        settings = run_demo_into(corpus_server, tmp_path)
        for file in settings.data_dir.glob("search.sqlite3*"):
            file.unlink()
    else:
        es = {"urls": [request.getfixturevalue("es_url")], "index_prefix": f"t-{uuid.uuid4().hex[:8]}"}
        settings = run_demo_into(corpus_server, tmp_path, search_backend="elasticsearch", es=es)
        elastic = ElasticsearchIndex(settings.es)
        request.addfinalizer(elastic.close)
        request.addfinalizer(elastic.drop)
        elastic.drop()
    with TestClient(create_app(settings)) as client:
        answer = client.get("/healthz")
        assert answer.status_code == 200 and answer.json()["search"] == "unavailable"
        assert client.get("/api/search", params={"q": "desalination"}).status_code == 503
        assert client.get("/").status_code == 200  # the pages that need no search still work
    assert "is missing while the store holds stories: `newsagg outbox fill` builds it again from the store" \
        in caplog.text
    if backend == "sqlite":
        assert not (settings.data_dir / "search.sqlite3").exists()
    else:
        assert elastic.client.indices.get(index=f"{settings.es.index_prefix}-*").body == {}


def test_healthz_says_whether_the_store_and_the_search_backend_answer(
    client: TestClient, demo_web_settings: Settings
) -> None:
    # For a load balancer or the compose stack's healthcheck: a store that does not answer is
    # a 503; a search backend down leaves the other pages working, so it is reported, not fatal.
    answer = client.get("/healthz")
    assert (answer.status_code, answer.json()) == (200, {"status": "ok", "store": "ok", "search": "ok"})
    assert answer.headers["cache-control"] == "no-store"

    gone = demo_web_settings.model_copy(update={
        "search_backend": "elasticsearch", "es": demo_web_settings.es.model_copy(update={"urls": ["http://127.0.0.1:9"]})})
    with TestClient(create_app(gone)) as degraded:
        answer = degraded.get("/healthz")
    assert answer.status_code == 200 and answer.json()["status"] == "degraded"
    assert answer.json()["store"] == "ok" and answer.json()["search"] == "unavailable"

    with postgres_database() as url:
        settings = demo_web_settings.model_copy(update={"store_url": url})
        with TestClient(create_app(settings)) as lost:
            assert lost.get("/healthz").status_code == 200
            admin = sa.create_engine(sa.make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT",
                                     poolclass=sa.pool.NullPool)
            with admin.connect() as conn:  # the server ends every session of the store's database
                conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                     " WHERE datname = :name AND pid <> pg_backend_pid()"),
                             {"name": sa.make_url(url).database})
                conn.exec_driver_sql(f'ALTER DATABASE "{sa.make_url(url).database}" ALLOW_CONNECTIONS false')
            admin.dispose()
            answer = lost.get("/healthz")
            assert answer.status_code == 503 and answer.json()["status"] == "unavailable"
            assert answer.json()["store"] == "unavailable"  # why, with the store's host, goes to the server's log only
            with admin.connect() as conn:
                conn.exec_driver_sql(f'ALTER DATABASE "{sa.make_url(url).database}" ALLOW_CONNECTIONS true')
            admin.dispose()
