"""The Elasticsearch backend against a real node: setup, the demo corpus through the pipeline,
merges, reindexing, an unreachable node, refused documents, secrets, and the `newsagg es` commands.

Backend-agnostic search behaviour is covered by tests/search/test_backends.py (both backends).
"""

from __future__ import annotations

import json
import logging
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from demo_truth import expected, ids_of
from pydantic import SecretStr
from test_backends import WORLD  # type: ignore[import-not-found]

from pipeline.cli import main
from pipeline.demo.server import CorpusServer
from pipeline.errors import ConfigError, SearchUnavailable
from pipeline.models import (
    Article,
    Assignment,
    IndexChange,
    IndexedArticle,
    Membership,
    SearchQuery,
    Signature,
    Source,
    Story,
    TextSource,
)
from pipeline.runner import Pipeline
from pipeline.search.elastic import ElasticsearchIndex
from pipeline.search.elastic.bulk import BULK_IN_FLIGHT, BULK_PIECE_DOCS
from pipeline.search.elastic.templates import TEMPLATES_DIR
from pipeline.search.sqlite import SqliteSearchIndex
from pipeline.settings import ElasticsearchSettings, Settings
from pipeline.storage.schema import outbox

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


# -- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture
def prefix(es_url: str) -> Iterator[str]:
    """A name prefix of its own; everything under it is dropped afterwards."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    yield name
    cleanup = ElasticsearchIndex(ElasticsearchSettings(urls=[es_url], index_prefix=name))
    cleanup.drop()
    cleanup.close()


@pytest.fixture
def es_index(es_url: str, prefix: str) -> Iterator[ElasticsearchIndex]:
    index = ElasticsearchIndex(ElasticsearchSettings(urls=[es_url], index_prefix=prefix))
    yield index
    index.close()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def with_es(settings: Settings, url: str, prefix: str, **es: Any) -> Settings:
    """The demo settings, indexing into Elasticsearch under `prefix`."""
    return settings.model_copy(
        update={"search_backend": "elasticsearch",
                "es": ElasticsearchSettings(urls=[url], index_prefix=prefix, **es)}
    )


def documents(index: ElasticsearchIndex, family: str) -> dict[str, dict[str, Any]]:
    """Every document behind an alias, by id (after a refresh)."""
    index.refresh()
    response = index.client.search(index=index.alias(family), query={"match_all": {}}, size=10_000)
    return {hit["_id"]: hit["_source"] for hit in response["hits"]["hits"]}


def es_of(pipeline: Pipeline) -> ElasticsearchIndex:
    index = pipeline.index
    assert isinstance(index, ElasticsearchIndex)
    return index


def outbox_rows(pipeline: Pipeline) -> dict[tuple[str, str], Any]:
    with pipeline.store.engine.connect() as conn:
        return {(r.kind, r.doc_id): r for r in conn.execute(sa.select(outbox))}


def story(story_id: str, title: str, text: str, outlets: list[str], days: int = 0) -> Story:
    at = T0 + timedelta(days=days)
    return Story(
        id=story_id, title=title, text=text, summary=text[:80],
        sources=tuple(Source(f"{story_id}-{o}", o, f"https://{o}.example/{story_id}", title, at) for o in outlets),
        first_seen=at, last_seen=at, language="en",
    )


def article(article_id_: str, url: str, cluster_id: str) -> IndexedArticle:
    return IndexedArticle(
        Article(id=article_id_, url=url, outlet="ledger", title="Strike", text="Dockworkers walked out.",
                published=T0, fetched_at=T0, text_source=TextSource.PAGE),
        Membership(article_id_, cluster_id, None, None, None),
    )


# -- setup, writes, failures ---------------------------------------------------------------------


def test_setup_is_idempotent(es_index: ElasticsearchIndex) -> None:
    first = es_index.install()
    assert any(line.startswith("created index") for line in first)
    indices = sorted(es_index.client.indices.get(index=f"{es_index.prefix}-*").body)
    aliases = es_index.client.indices.get_alias(index=f"{es_index.prefix}-*").body

    second = es_index.install()
    es_index.setup()
    assert all("up to date" in line or " -> " in line for line in second), second
    assert sorted(es_index.client.indices.get(index=f"{es_index.prefix}-*").body) == indices
    assert es_index.client.indices.get_alias(index=f"{es_index.prefix}-*").body == aliases
    assert indices == [f"{es_index.prefix}-articles-v1", f"{es_index.prefix}-stories-v1"]
    assert all(check.ok for check in es_index.check())


def test_refused_documents_are_reported_not_swallowed(es_index: ElasticsearchIndex) -> None:
    es_index.setup()
    huge_url = "https://ledger.example/" + "x" * 40_000  # over Lucene's 32766-byte term limit
    failures = es_index.write([
        IndexChange("article", "good", article("good", "https://ledger.example/1", "c1"), 1),
        IndexChange("article", "bad", article("bad", huge_url, "c1"), 1),
        IndexChange("story", "never-indexed", None, 1),  # deleting what is not there is success
    ])
    assert [(f.kind, f.id, f.transient) for f in failures] == [("article", "bad", False)]
    assert "url" in failures[0].reason and failures[0].reason.startswith("400 ")
    assert set(documents(es_index, "articles")) == {"good"}


def test_a_write_of_many_pieces_reports_each_refusal_and_the_newest_change_wins(es_index: ElasticsearchIndex) -> None:
    """More documents than the pieces in flight hold: refusals come back by id, and a document
    changed twice in one write ends as its newest change, though pieces are sent side by side."""
    es_index.setup()
    count = BULK_PIECE_DOCS * (BULK_IN_FLIGHT + 1) + 7
    changes = [IndexChange("article", f"a{i}", article(f"a{i}", f"https://ledger.example/{i}", "c1"), 1)
               for i in range(count)]
    refused = count // 2
    changes[refused] = IndexChange("article", f"a{refused}",
                                   article(f"a{refused}", "https://ledger.example/" + "x" * 40_000, "c1"), 1)
    changes.append(IndexChange("article", "a0", None, 2))
    changes.append(IndexChange("article", "a1", article("a1", "https://ledger.example/moved", "c2"), 2))

    failures = es_index.write(changes)

    assert [(f.id, f.transient) for f in failures] == [(f"a{refused}", False)]
    indexed = documents(es_index, "articles")
    assert set(indexed) == {f"a{i}" for i in range(1, count) if i != refused}
    assert (indexed["a1"]["url"], indexed["a1"]["cluster_id"]) == ("https://ledger.example/moved", "c2")


def test_blocked_index_refusals_are_transient(es_index: ElasticsearchIndex) -> None:
    """What a reindex in progress (or a full disk) does to writes: refused, worth retrying."""
    es_index.setup()
    (index,) = es_index.client.indices.get_alias(name=es_index.alias("stories")).body
    es_index.client.indices.put_settings(index=index, settings={"index.blocks.write": True})
    try:
        failures = es_index.write([IndexChange("story", "s1", story("s1", "Strike", "Walkout.", ["ledger"]), 1)])
        # What an interrupted reindex leaves behind is noticed.
        (stories,) = [c for c in es_index.check() if c.family == "stories"]
        assert not stories.ok and "refuses writes" in stories.problems[0]
    finally:
        es_index.client.indices.put_settings(index=index, settings={"index.blocks.write": None})
    assert [(f.kind, f.id, f.transient) for f in failures] == [("story", "s1", True)]
    assert "cluster_block_exception" in failures[0].reason
    assert all(check.ok for check in es_index.check())


def test_unreachable_node_raises_search_unavailable_without_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = closed_port()
    secrets = ["hunter2-password", "s3cr3t-api-key-value", "url-pass-word"]
    for es in (
        ElasticsearchSettings(urls=[f"http://elastic:{secrets[2]}@127.0.0.1:{port}"], username="elastic",
                              password=SecretStr(secrets[0]), max_retries=1, request_timeout=2),
        ElasticsearchSettings(urls=[f"http://127.0.0.1:{port}"], api_key=SecretStr(secrets[1]), max_retries=0),
    ):
        index = ElasticsearchIndex(es)
        with caplog.at_level(logging.DEBUG):
            with pytest.raises(SearchUnavailable) as setup_error:
                index.setup()
            with pytest.raises(SearchUnavailable) as write_error:
                index.write([IndexChange("story", "s1", None, 1)])
            with pytest.raises(SearchUnavailable) as search_error:
                index.search(SearchQuery(text="strike"))
        index.close()
        for error in (setup_error, write_error, search_error):
            message = str(error.value)
            assert f"127.0.0.1:{port}" in message and "unreachable" in message, message
            assert "refused" in message.lower()
            assert not any(secret in message for secret in secrets), message
    assert not any(secret in caplog.text for secret in secrets)


def test_bad_settings_are_config_errors_without_secrets(tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="index_prefix"):
        ElasticsearchIndex(ElasticsearchSettings(index_prefix="News Agg"))
    with pytest.raises(ConfigError) as no_port:
        ElasticsearchIndex(ElasticsearchSettings(urls=["http://elastic:pa55word@es-host"]))
    assert "pa55word" not in str(no_port.value) and "http://elastic:***@es-host" in str(no_port.value)
    with pytest.raises(ConfigError, match="ca_certs"):
        ElasticsearchIndex(ElasticsearchSettings(ca_certs=tmp_path / "missing.pem"))
    with pytest.raises(ConfigError, match="stories.json"):
        ElasticsearchIndex(ElasticsearchSettings(templates_dir=tmp_path))


def test_a_changed_template_is_rolled_out_by_setup_and_reindex(
    es_url: str, prefix: str, tmp_path: Any
) -> None:
    settings = ElasticsearchSettings(urls=[es_url], index_prefix=prefix)
    index = ElasticsearchIndex(settings)
    index.setup()
    first = story("s1", "Dockworkers strike", "Port closed.", ["ledger"])
    assert index.write([IndexChange("story", "s1", first, 1)]) == []
    index.refresh()
    before = index.search(SearchQuery(text="strike"))
    # Terms made by an older analysis are made anew by the reindex.
    index.client.update(index=index.alias("stories"), id="s1", doc={"title_stems": "", "body_stems": ""}, refresh=True)
    assert index.search(SearchQuery(text="strike")).total == 0
    index.close()

    changed = tmp_path / "templates"
    changed.mkdir()
    for family in ("stories", "articles"):
        data = json.loads((TEMPLATES_DIR / f"{family}.json").read_text())
        if family == "stories":
            data["version"] += 1
            data["template"]["mappings"]["properties"]["word_count"] = {"type": "integer"}
        else:
            data["_comment"] = "a comment edit changes nothing in the cluster"
        (changed / f"{family}.json").write_text(json.dumps(data))

    index = ElasticsearchIndex(settings.model_copy(update={"templates_dir": changed}))
    try:
        problems = {c.family: c.problems for c in index.check()}
        assert problems["articles"] == []
        assert [p.split(":")[-1].strip() for p in problems["stories"]] == [
            "run `newsagg es setup`", "run `newsagg es reindex --kind stories`"
        ]
        version = json.loads((TEMPLATES_DIR / "stories.json").read_text())["version"]
        assert f"template {index.alias('stories')} updated (version {version} -> {version + 1})" in index.install()
        assert [c.ok for c in index.check()] == [False, True]
        (report,) = index.reindex(["stories"])
        assert (report.old_index, report.new_index, report.copied) == (
            f"{prefix}-stories-v1", f"{prefix}-stories-v2", 1
        )
        assert all(c.ok for c in index.check())
        mapping = index.client.indices.get_mapping(index=index.alias("stories")).body
        assert mapping[f"{prefix}-stories-v2"]["mappings"]["properties"]["word_count"] == {"type": "integer"}
        after = index.search(SearchQuery(text="strike"))
        assert [(h.story_id, h.snippet) for h in after.hits] == [(h.story_id, h.snippet) for h in before.hits]
    finally:
        index.close()


# -- search semantics shared with the SQLite backend ----------------------------------------------


PARITY_STORIES = [
    story("p1", "Rocket failures ground the Skylark fleet",
          "Two launch failures in a month grounded the fleet. The Zürich insurer paid.", ["ledger"]),
    story("p2", "Cities brace for floods", "Flooding closed roads in three cities; the city council met.",
          ["signal", "ledger"], days=1),
    story("p3", "Insurers rethink launch cover", "After the failure, insurers in Zurich and London rethink.",
          ["gazette"], days=2),
    *WORLD,  # German, Chinese, Japanese, French and English stories
]


def test_search_finds_what_the_sqlite_backend_finds(es_index: ElasticsearchIndex, tmp_path: Any) -> None:
    sqlite = SqliteSearchIndex(tmp_path / "search.sqlite3")
    for index in (sqlite, es_index):
        index.setup()
        assert index.write([IndexChange("story", s.id, s, 1) for s in PARITY_STORIES]) == []
    es_index.refresh()
    try:
        for text, language in [
            ("failure", None), ("zurich", None), ("Zürich insurers", None), ("city", None), ("flooded cities", None),
            ("launch failure", None), ("grounding", None), ("rockets", None), ("council cities flood", None),
            ("london", None), ("Streiks", None), ("Hafens", "de"), ("罢工", None), ("码头 停工", None),
            ("労働者", None), ("grèves", None), ("electricite", "fr"), ("strike", None), ("port", None),
            ("港", None), ("strike", "en"),
        ]:
            for sort in ("relevance", "recency"):
                query = SearchQuery(text=text, sort=sort, language=language)  # type: ignore[arg-type]
                want, got = sqlite.search(query), es_index.search(query)
                assert got.total == want.total, text
                assert [h.story_id for h in got.hits] == [h.story_id for h in want.hits], (text, sort)
                assert got.facets == want.facets, text
    finally:
        sqlite.close()
    hit = es_index.search(SearchQuery(text="failure")).hits[0]
    assert hit.story_id == "p1" and "[[failures]]" in hit.snippet


# -- the pipeline over the demo corpus ---------------------------------------------------------


def test_demo_corpus_indexes_expected_stories_and_rerun_changes_nothing(
    corpus_server: CorpusServer, demo_settings: Settings, es_url: str, prefix: str
) -> None:
    truth = expected()
    base = corpus_server.base_url
    settings = with_es(demo_settings, es_url, prefix)
    with Pipeline(settings) as pipeline:
        report = pipeline.run(force=True)
        assert report.index_error is None and report.index_failures == 0 and report.outbox_left == 0
        index = es_of(pipeline)
        stories = documents(index, "stories")
        articles = documents(index, "articles")
        assert set(stories) == set(pipeline.store.cluster_ids())
        assert len(articles) == pipeline.store.article_count()

        for cluster in truth["clusters"]:
            members = ids_of(base, cluster["members"])
            member = pipeline.store.membership(next(iter(members)))
            assert member is not None
            doc = stories[member.cluster_id]
            assert {s["article_id"] for s in doc["sources"]} == members
            assert doc["article_count"] == len(members)
            assert doc["outlet_count"] == len(doc["outlets"]) == len({s["outlet"] for s in doc["sources"]})
            assert doc["agency"] == cluster["agency"], cluster["story"]
            assert all(articles[m]["cluster_id"] == member.cluster_id for m in members)

        for search in truth["searches"]:
            cluster = truth["clusters"][search["expect_members_of_cluster"]]
            member = pipeline.store.membership(next(iter(ids_of(base, cluster["members"]))))
            assert member is not None
            results = index.search(SearchQuery(text=search["query"]))
            hit = next((h for h in results.hits if h.story_id == member.cluster_id), None)
            assert hit is not None, search["query"]
            assert hit.article_count == len(cluster["members"])
            assert "[[" in hit.snippet and "]]" in hit.snippet, (search["query"], hit.snippet)
            assert sum(results.facets["day"].values()) == results.total

    with Pipeline(settings) as pipeline:
        report = pipeline.run(force=True)
        assert (report.articles_added, report.stories_built, report.indexed, report.outbox_left) == (0, 0, 0, 0)
        index = es_of(pipeline)
        assert documents(index, "stories") == stories
        assert documents(index, "articles") == articles
        assert index.document_counts() == {"stories": len(stories), "articles": len(articles)}


def test_cluster_merge_removes_the_absorbed_story(
    demo_settings: Settings, es_url: str, prefix: str
) -> None:
    with Pipeline(with_es(demo_settings, es_url, prefix)) as pipeline:
        pipeline.run(force=True)
        index = es_of(pipeline)
        before = documents(index, "stories")
        survivor, absorbed = sorted(before, key=lambda sid: (-before[sid]["article_count"], sid))[:2]
        moved = {s["article_id"] for s in before[absorbed]["sources"]}
        keeper = pipeline.store.memberships_of(survivor)[0]

        # What the clustering engine reports when a new copy bridges two clusters.
        pipeline.store.save_assignments(
            [Assignment(keeper, Signature(keeper.article_id, b"", T0), absorbed=(absorbed,))]
        )
        assert pipeline.build_stories() == (1, 1)
        indexed, failed = pipeline.index_outbox()
        assert failed == 0 and indexed >= 2 + len(moved)

        after = documents(index, "stories")
        assert set(after) == set(before) - {absorbed}
        assert after[survivor]["article_count"] == before[survivor]["article_count"] + len(moved)
        assert moved <= {s["article_id"] for s in after[survivor]["sources"]}
        articles = documents(index, "articles")
        assert {articles[a]["cluster_id"] for a in moved} == {survivor}
        hits = index.search(SearchQuery(text=before[absorbed]["title"], limit=50)).hits
        assert absorbed not in [h.story_id for h in hits]


def test_unreachable_node_keeps_the_outbox_until_the_next_run(
    demo_settings: Settings, es_url: str, prefix: str
) -> None:
    down = with_es(demo_settings, f"http://127.0.0.1:{closed_port()}", prefix, max_retries=0, request_timeout=5)
    with Pipeline(down) as pipeline:
        report = pipeline.run(force=True)
        assert report.articles_added > 0 and report.stories_built > 0
        assert report.index_error is not None and "unreachable" in report.index_error
        assert report.indexed == 0 and report.outbox_left == pipeline.store.outbox_size() > 0
        waiting = report.outbox_left

    # "Restart": the same data directory, the settings pointing at the live node again.
    with Pipeline(with_es(demo_settings, es_url, prefix)) as pipeline:
        report = pipeline.run(force=True)
        assert report.index_error is None and report.indexed == waiting and report.outbox_left == 0
        index = es_of(pipeline)
        index.refresh()
        assert index.document_counts() == {
            "stories": len(pipeline.store.cluster_ids()),
            "articles": pipeline.store.article_count(),
        }


def test_refused_document_stays_in_the_outbox_with_its_error(
    demo_settings: Settings, es_url: str, prefix: str
) -> None:
    with Pipeline(with_es(demo_settings, es_url, prefix)) as pipeline:
        pipeline.run(force=True)
        bad = article("0badc0ffee0badc0", "https://ledger.example/" + "x" * 40_000, "bad-cluster")
        pipeline.store.save_article(bad.article)
        pipeline.store.save_assignments([Assignment(bad.membership, Signature(bad.article.id, b"", T0))])

        report = pipeline.run(force=True)
        assert report.index_error is None
        assert report.index_failures == 2 and report.outbox_left == 2  # the article and its story
        rows = outbox_rows(pipeline)
        assert set(rows) == {("article", bad.article.id), ("story", "bad-cluster")}
        assert all(row.attempts == 1 and "url" in row.last_error for row in rows.values())
        assert bad.article.id not in documents(es_of(pipeline), "articles")


# -- the `newsagg es` commands -------------------------------------------------------------------


@pytest.fixture
def es_env(monkeypatch: pytest.MonkeyPatch, es_url: str, prefix: str, tmp_path: Any) -> str:
    """The environment the commands read; the backend setting says sqlite, which they ignore."""
    monkeypatch.setenv("NEWSAGG_ES__URLS", json.dumps([es_url]))
    monkeypatch.setenv("NEWSAGG_ES__INDEX_PREFIX", prefix)
    monkeypatch.setenv("NEWSAGG_SEARCH_BACKEND", "sqlite")
    monkeypatch.setenv("NEWSAGG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("NEWSAGG_CONFIG", raising=False)
    return prefix


def test_es_commands_setup_check_reindex(
    es_env: str, es_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = es_env
    assert main(["es", "check"]) == 1
    assert "run `newsagg es setup`" in capsys.readouterr().err

    assert main(["es", "setup"]) == 0
    out = capsys.readouterr().out
    assert f"created index {prefix}-stories-v1 behind alias {prefix}-stories" in out
    assert main(["es", "setup"]) == 0
    assert "created" not in capsys.readouterr().out
    assert main(["es", "check"]) == 0
    capsys.readouterr()

    index = ElasticsearchIndex(ElasticsearchSettings(urls=[es_url], index_prefix=prefix))
    try:
        stories = [
            story("s1", "Dockworkers strike at Harbor City port", "The strike halted container traffic.",
                  ["ledger", "gazette"]),
            story("s2", "Council approves desalination plant", "Port officials welcomed it.", ["signal"], days=1),
        ]
        assert index.write([IndexChange("story", s.id, s, 5) for s in stories]) == []
        assert index.write([IndexChange("article", "a1", article("a1", "https://ledger.example/1", "s1"), 1)]) == []
        index.refresh()
        counts = index.document_counts()
        found = index.search(SearchQuery(text="strike port"))

        # A template newer than the index: what a mapping change looks like to `check`.
        index.client.indices.put_mapping(index=f"{prefix}-stories-v1", meta={"version": 0, "checksum": "old"})
        assert main(["es", "check"]) == 1
        assert "run `newsagg es reindex --kind stories`" in capsys.readouterr().err

        assert main(["es", "reindex", "--kind", "stories"]) == 0
        out = capsys.readouterr().out
        assert f"{prefix}-stories-v1 -> {prefix}-stories-v2, 2 documents copied" in out
        assert main(["es", "check"]) == 0
        assert main(["es", "reindex"]) == 0
        out = capsys.readouterr().out
        assert f"{prefix}-articles-v1 -> {prefix}-articles-v2, 1 documents copied" in out
        assert f"{prefix}-stories-v2 -> {prefix}-stories-v3" in out

        aliases = index.client.indices.get_alias(index=f"{prefix}-*").body
        assert aliases == {
            f"{prefix}-stories-v3": {"aliases": {f"{prefix}-stories": {}}},
            f"{prefix}-articles-v2": {"aliases": {f"{prefix}-articles": {}}},
        }
        assert index.document_counts() == counts
        again = index.search(SearchQuery(text="strike port"))
        assert [(h.story_id, h.snippet) for h in again.hits] == [(h.story_id, h.snippet) for h in found.hits]
        assert again.facets == found.facets
        assert index.write([IndexChange("story", "s2", None, 6)]) == []  # writes reach the new generation
        # Copies keep their versions: an older write stays refused.
        assert index.write([IndexChange("story", "s1", story("s1", "Stale headline", "Old.", ["ledger"]), 3)]) == []
        index.refresh()
        assert index.document_counts()["stories"] == 1
        assert index.search(SearchQuery(text="stale headline")).total == 0
    finally:
        index.close()
    assert main(["es", "check"]) == 0


def test_es_check_names_indices_made_by_hand_and_what_repairs_them(
    es_env: str, es_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = es_env
    assert main(["es", "setup"]) == 0
    capsys.readouterr()
    index = ElasticsearchIndex(ElasticsearchSettings(urls=[es_url], index_prefix=prefix))
    try:
        # Behind the alias, an index someone made by hand: no newsagg mapping version in its _meta.
        index.client.indices.create(index=f"{prefix}-hand")
        index.client.indices.update_aliases(actions=[
            {"remove": {"index": f"{prefix}-stories-v1", "alias": f"{prefix}-stories"}},
            {"add": {"index": f"{prefix}-hand", "alias": f"{prefix}-stories"}},
        ])
        # Under the alias's own name, an index made by hand.
        index.client.indices.delete(index=f"{prefix}-articles-v1")
        index.client.indices.create(index=f"{prefix}-articles")

        assert main(["es", "check"]) == 1
        out, err = capsys.readouterr()
        assert "None" not in out + err
        assert f"{prefix}-stories -> {prefix}-hand: no newsagg mapping version, template version" in out
        assert f"newsagg: error: index {prefix}-hand has no newsagg mapping version, the template is version" in err
        assert f"newsagg: error: {prefix}-articles is an index, not the alias newsagg uses (made by hand?): " \
               "delete it, then run `newsagg es setup` and `newsagg outbox fill`\n" in err

        # What the errors say to do repairs both.
        assert main(["es", "reindex", "--kind", "stories"]) == 0
        index.client.indices.delete(index=f"{prefix}-articles")
        assert main(["es", "setup"]) == 0
        assert main(["es", "check"]) == 0
    finally:
        index.client.options(ignore_status=404).indices.delete(index=f"{prefix}-hand,{prefix}-articles")
        index.close()


def test_es_commands_report_an_unreachable_node_in_one_line(
    es_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = closed_port()
    monkeypatch.setenv("NEWSAGG_ES__URLS", json.dumps([f"http://elastic:pw-in-url@127.0.0.1:{port}"]))
    monkeypatch.setenv("NEWSAGG_ES__MAX_RETRIES", "0")
    for command in (["es", "setup"], ["es", "check"], ["es", "reindex"]):
        assert main(command) == 1
        err = capsys.readouterr().err
        assert f"newsagg: error: Elasticsearch at http://elastic:***@127.0.0.1:{port} is unreachable" in err
        assert "pw-in-url" not in err
