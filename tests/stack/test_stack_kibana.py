"""Kibana saved objects: generated from our mappings, every field checked, imported as Kibana expects.

Kibana itself cannot run here: `newsagg kibana import` is tested against
tests/stack/fake_kibana.py, a loopback server that checks the request Kibana's import
route requires (method, path, kbn-xsrf, credentials, multipart `file` part named
*.ndjson, overwrite flag) and answers in Kibana's shapes, errors included.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from pipeline import kibana
from pipeline.cli import main
from pipeline.errors import ConfigError
from pipeline.search.elastic.templates import TEMPLATES_DIR, load_templates
from pipeline.settings import KibanaSettings
from stack.fake_kibana import FakeKibana


def objects() -> list[dict[str, Any]]:
    return kibana.load(kibana.OBJECTS_DIR)


def by_id(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["id"]: o for o in objs}


# -- the committed objects ---------------------------------------------------------------------


def test_committed_objects_are_what_the_generator_makes() -> None:
    committed = (kibana.OBJECTS_DIR / kibana.OBJECTS_FILE).read_text(encoding="utf-8")
    assert committed == kibana.render(kibana.generate()), (
        "config/kibana/newsagg.ndjson is stale: run `newsagg kibana export -o config/kibana/newsagg.ndjson`"
    )


def test_every_field_the_objects_use_is_in_our_index_mappings() -> None:
    assert kibana.check(objects(), kibana.elasticsearch_mappings()) == []


def test_the_objects_the_issue_asks_for() -> None:
    objs = by_id(objects())
    kinds = {o["type"] for o in objs.values()}
    assert kinds == {"index-pattern", "search", "visualization", "dashboard"}
    assert all(o["coreMigrationVersion"] and o["typeMigrationVersion"] for o in objs.values())
    views = {o["attributes"]["title"]: o["attributes"]["timeFieldName"] for o in objs.values() if o["type"] == "index-pattern"}
    assert views == {"newsagg-stories": "first_seen", "newsagg-articles": "fetched_at"}
    searches = {o["attributes"]["title"] for o in objs.values() if o["type"] == "search"}
    assert searches == {"Latest stories", "Largest clusters", "Articles of one cluster"}
    charts = {o["attributes"]["title"]: json.loads(o["attributes"]["visState"])["type"]
              for o in objs.values() if o["type"] == "visualization"}
    assert charts == {"Cluster size distribution": "histogram", "Top outlets": "horizontal_bar",
                      "Stories over time": "histogram", "Share by wire agency": "pie"}
    dashboard = objs["newsagg-news-clusters"]
    assert dashboard["attributes"]["title"] == "News clusters"
    panels = json.loads(dashboard["attributes"]["panelsJSON"])
    refs = {r["name"]: (r["type"], r["id"]) for r in dashboard["references"]}
    shown = {refs[f"{p['panelIndex']}:{p['panelRefName']}"] for p in panels}
    assert shown == {("visualization", i) for i, o in objs.items() if o["type"] == "visualization"} | {
        ("search", "newsagg-largest-clusters")}
    assert len({p["panelIndex"] for p in panels}) == len(panels)


def test_cluster_ids_link_to_the_articles_of_the_cluster_in_discover() -> None:
    objs = by_id(objects())
    formats = json.loads(objs[kibana.DATA_VIEWS["stories"]]["attributes"]["fieldFormatMap"])
    link = formats["id"]["params"]["urlTemplate"]
    assert link.startswith(f"/app/discover#/view/{kibana.CLUSTER_ARTICLES}?")
    assert "query:'cluster_id:{{value}}'" in link
    target = objs[kibana.CLUSTER_ARTICLES]
    assert target["type"] == "search" and target["references"][0]["id"] == kibana.DATA_VIEWS["articles"]
    assert "cluster_id" in kibana.elasticsearch_mappings()["articles"]
    # The largest clusters table (a panel of the dashboard) shows the linked id column.
    assert objs["newsagg-largest-clusters"]["attributes"]["columns"][0] == "id"


# -- the check catches what a rename would break ----------------------------------------------


def mappings_with(tmp_path: Path, family: str, edit: Any) -> dict[str, dict[str, str]]:
    directory = tmp_path / "elasticsearch"
    shutil.copytree(TEMPLATES_DIR, directory)
    path = directory / f"{family}.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    edit(data["template"]["mappings"]["properties"])
    path.write_text(json.dumps(data), encoding="utf-8")
    return kibana.mapped_fields({f: t.body for f, t in load_templates(directory).items()})


def test_a_renamed_field_is_reported_against_every_object_that_uses_it(tmp_path: Path) -> None:
    fields = mappings_with(tmp_path, "stories", lambda p: p.update(size=p.pop("article_count")))
    problems = kibana.check(objects(), fields)
    assert any(p.startswith("visualization newsagg-cluster-sizes: field 'article_count'") for p in problems)
    assert any(p.startswith("search newsagg-largest-clusters: field 'article_count'") for p in problems)
    assert any(p.startswith("search newsagg-latest-stories: field 'article_count'") for p in problems)
    fields = mappings_with(tmp_path / "b", "articles", lambda p: p.update(source=p.pop("outlet")))
    assert any("newsagg-top-outlets: field 'outlet' is not in the articles mapping" in p
               for p in kibana.check(objects(), fields))


def test_a_field_of_the_wrong_type_is_reported(tmp_path: Path) -> None:
    fields = mappings_with(tmp_path, "stories", lambda p: p.update(first_seen={"type": "keyword"},
                                                                   agency={"type": "text"}))
    problems = kibana.check(objects(), fields)
    assert any("index-pattern newsagg-stories-view: field 'first_seen' is keyword" in p and "needs date" in p
               for p in problems)
    assert any("newsagg-agency-share: field 'agency' is text" in p for p in problems)


def test_dangling_references_unknown_types_and_query_fields_are_reported() -> None:
    objs = copy.deepcopy(objects())
    search = next(o for o in objs if o["id"] == kibana.CLUSTER_ARTICLES)
    source = json.loads(search["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
    source["query"]["query"] = "story_id : *"
    search["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"] = json.dumps(source)
    dashboard = next(o for o in objs if o["type"] == "dashboard")
    dashboard["references"][0]["id"] = "gone"
    objs.append({**copy.deepcopy(dashboard), "type": "lens", "id": "x"})
    problems = kibana.check(objs, kibana.elasticsearch_mappings())
    assert any("field 'story_id' is not in the articles mapping" in p for p in problems)
    assert any(p.startswith("dashboard newsagg-news-clusters: reference p1:panel_p1 -> visualization gone") for p in problems)
    assert any(p.startswith("lens x: type 'lens'") for p in problems)


def test_the_data_views_follow_the_index_prefix() -> None:
    renamed = kibana.with_prefix(objects(), "news-eu")
    titles = {o["attributes"]["title"] for o in renamed if o["type"] == "index-pattern"}
    assert titles == {"news-eu-stories", "news-eu-articles"}
    assert kibana.check(renamed, kibana.elasticsearch_mappings()) == []
    assert kibana.render(kibana.generate("news-eu")) == kibana.render(renamed)


# -- import ------------------------------------------------------------------------------------


def settings_for(server: FakeKibana, **extra: Any) -> KibanaSettings:
    return KibanaSettings(url=server.url, **extra)


def test_import_sends_what_kibana_requires_and_is_idempotent() -> None:
    with FakeKibana(username="elastic", password="s3cret") as server:
        settings = settings_for(server, username="elastic", password=SecretStr("s3cret"))
        first = kibana.install(settings, "newsagg")
        second = kibana.install(settings, "newsagg")
    assert first.success_count == second.success_count == len(objects())
    assert first.objects == second.objects == [(o["type"], o["id"]) for o in objects()]
    request = server.requests[0]
    assert (request["method"], request["path"]) == ("POST", "/api/saved_objects/_import")
    assert request["query"] == {"overwrite": ["true"]}
    assert request["headers"]["kbn-xsrf"] == "true"
    assert request["headers"]["content-type"].startswith("multipart/form-data; boundary=")
    assert request["file_name"] == "newsagg.ndjson"
    assert request["objects"] == objects()
    assert len(server.stored) == len(objects())


def test_import_into_a_space_with_an_api_key_and_another_prefix() -> None:
    with FakeKibana(api_key="a2V5OnNlY3JldA==") as server:
        settings = settings_for(server, api_key=SecretStr("a2V5OnNlY3JldA=="), space="newsroom")
        kibana.install(settings, "news-eu")
    request = server.requests[0]
    assert request["path"] == "/s/newsroom/api/saved_objects/_import"
    assert request["headers"]["authorization"] == "ApiKey a2V5OnNlY3JldA=="
    assert {o["attributes"]["title"] for o in request["objects"] if o["type"] == "index-pattern"} == {
        "news-eu-stories", "news-eu-articles"}


def test_import_goes_straight_to_kibana_whatever_proxy_the_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    # As the Elasticsearch client does: a proxy set for the whole host (for pip, say) is not
    # asked for the stack's own services.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with FakeKibana() as server:
        result = kibana.install(settings_for(server), "newsagg")
    assert result.success_count == len(objects())


def test_objects_kibana_refuses_are_named() -> None:
    dashboard = next(o for o in objects() if o["type"] == "dashboard")
    with FakeKibana() as server, pytest.raises(kibana.KibanaError) as failure:
        kibana.import_objects(settings_for(server), [dashboard])
    message = str(failure.value)
    assert "refused 1 saved object(s)" in message
    assert "dashboard newsagg-news-clusters (News clusters): missing_references visualization newsagg-cluster-sizes" in message
    assert server.stored == {}


def test_wrong_credentials_and_a_missing_server_are_one_clear_error() -> None:
    with FakeKibana(username="elastic", password="right") as server:
        with pytest.raises(kibana.KibanaError, match=r"answered 401 Unauthorized: \[security_exception\].*kibana.username"):
            kibana.install(settings_for(server, username="elastic", password=SecretStr("wrong")), "newsagg")
        url = server.url
    with pytest.raises(kibana.KibanaUnavailable, match="cannot be reached"):
        kibana.install(KibanaSettings(url=url, request_timeout=2), "newsagg")
    # Something else on that address (a proxy's or another server's HTML error page): its text on
    # one line, as an error is, not the page's lines.
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    other = HTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)  # 501 and an HTML page for every request
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        with pytest.raises(kibana.KibanaError, match="answered 501") as raised:
            kibana.install(KibanaSettings(url=f"http://127.0.0.1:{other.server_port}", request_timeout=5), "newsagg")
        assert "\n" not in str(raised.value), str(raised.value)
    finally:
        other.shutdown()
        other.server_close()


def test_import_waits_while_kibana_is_not_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kibana, "RETRY_INTERVAL", 0.05)
    with FakeKibana(unavailable_for=2) as server:
        with pytest.raises(kibana.KibanaUnavailable, match="503 Service Unavailable: Kibana server is not ready yet"):
            kibana.install(settings_for(server), "newsagg")
        result = kibana.install(settings_for(server), "newsagg", wait=30)
    assert result.success_count == len(objects())
    assert len(server.requests) == 3


def test_kibana_would_refuse_a_request_without_the_xsrf_header_or_ndjson_name() -> None:
    """The fake enforces what Kibana enforces, so the import tests above mean something."""
    import httpx

    with FakeKibana() as server:
        url = f"{server.url}/api/saved_objects/_import?overwrite=true"
        body = kibana.render(objects()).encode()
        no_xsrf = httpx.post(url, files={"file": ("newsagg.ndjson", body)})
        wrong_name = httpx.post(url, headers={"kbn-xsrf": "true"}, files={"file": ("newsagg.json", body)})
    assert no_xsrf.status_code == 400
    assert no_xsrf.json() == {"statusCode": 400, "error": "Bad Request", "message": "Request must contain a kbn-xsrf header."}
    assert wrong_name.json()["message"] == "Invalid file extension .json"


def test_invalid_objects_are_not_sent(tmp_path: Path) -> None:
    broken = copy.deepcopy(objects())
    search = next(o for o in broken if o["id"] == "newsagg-latest-stories")
    search["attributes"]["columns"].append("headline")
    (tmp_path / "objects.ndjson").write_text(kibana.render(broken), encoding="utf-8")
    with FakeKibana() as server, pytest.raises(ConfigError, match="field 'headline' is not in the stories mapping"):
        kibana.install(settings_for(server), "newsagg", tmp_path)
    assert server.requests == []


# -- the command line --------------------------------------------------------------------------


def test_cli_kibana_import_check_and_export(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                            tmp_path: Path) -> None:
    with FakeKibana(username="elastic", password="pw") as server:
        monkeypatch.setenv("NEWSAGG_KIBANA__URL", server.url)
        monkeypatch.setenv("NEWSAGG_KIBANA__USERNAME", "elastic")
        monkeypatch.setenv("NEWSAGG_KIBANA__PASSWORD", "pw")
        assert main(["kibana", "import"]) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"{len(objects())} saved objects imported into Kibana at {server.url}")
        assert "dashboard newsagg-news-clusters" in out
        monkeypatch.setenv("NEWSAGG_KIBANA__PASSWORD", "nope")
        assert main(["kibana", "import"]) == 1
        err = capsys.readouterr().err
        assert err.startswith("newsagg: error: Kibana at") and "401" in err and "nope" not in err
        assert len(err.strip().splitlines()) == 1
    assert main(["kibana", "check"]) == 0
    assert "fit the index mappings" in capsys.readouterr().out
    assert main(["kibana", "export", "-o", str(tmp_path / "out.ndjson")]) == 0
    assert (tmp_path / "out.ndjson").read_text(encoding="utf-8") == kibana.render(kibana.generate())
