"""The command-line contract of DESIGN.md, through `pipeline.cli.main`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.demo.server import CorpusServer, bundled_corpus_dir
from pipeline.demo.run import write_demo_feeds

ARTICLE = "/harbor-city-ledger/articles/port-strike.html"


@pytest.fixture
def demo_env(corpus_server: CorpusServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings through the environment, as a user would give them; returns the feed list."""
    host = corpus_server.base_url.removeprefix("http://")
    monkeypatch.setenv("NEWSAGG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("NEWSAGG_FETCH__ALLOWED_HOSTS", json.dumps([host]))
    monkeypatch.setenv("NEWSAGG_FETCH__POLITENESS_DELAY", "0")
    return write_demo_feeds(corpus_server.base_url, tmp_path / "feeds.yaml")


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_run_search_clusters_and_feeds_status(demo_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "run", "--feeds", str(demo_env), "--json")
    assert code == 0
    report = json.loads(out)
    assert report["articles_added"] == 49 and report["failed_feeds"] == []

    code, out, _ = run_cli(capsys, "search", "desalination plant", "--json")
    results = json.loads(out)
    assert code == 0 and results["total"] == 1
    assert results["hits"][0]["article_count"] == 5
    assert "[[desalination]]" in results["hits"][0]["snippet"].lower()
    # A date alone is the whole day, at either end: the story first and last seen that day is found.
    first_day, last_day = results["hits"][0]["first_seen"][:10], results["hits"][0]["last_seen"][:10]
    for bounds in (["--until", first_day], ["--since", last_day], ["--since", first_day, "--until", last_day]):
        code, out, _ = run_cli(capsys, "search", "desalination plant", "--json", *bounds)
        assert code == 0 and json.loads(out)["total"] == 1, bounds

    code, out, _ = run_cli(capsys, "clusters", "list", "--json", "--min-articles", "2")
    clusters = json.loads(out)
    assert code == 0 and [c["article_count"] for c in clusters] == [6, 5, 4, 4, 4, 3, 3, 2]

    code, out, _ = run_cli(capsys, "clusters", "show", clusters[0]["id"], "--json")
    shown = json.loads(out)
    assert code == 0 and len(shown["members"]) == 6
    matched = [m for m in shown["members"] if m["matched_article_id"]]
    assert len(matched) == 5 and all(0 < m["containment"] <= 1 for m in matched)

    # Every member of the rocket story credits AP, with the line that says so.
    assert shown["story"]["agency"] == "AP"
    assert {m["credit"]["agency"] for m in shown["members"]} == {"AP"}
    assert all(m["credit"]["rule"] and m["credit"]["evidence"] for m in shown["members"])

    code, out, _ = run_cli(capsys, "clusters", "show", clusters[0]["id"])
    assert code == 0 and "founded the cluster" in out and "containment" in out
    assert "wire: AP" in out and "credits AP (full credit, rule dateline): CAPE MORROW (AP) —" in out

    first = shown["members"][0]
    code, out, _ = run_cli(capsys, "articles", "show", first["article_id"], "--json")
    by_id = json.loads(out)
    assert code == 0 and by_id["cluster_id"] == shown["id"]
    assert by_id["article"]["credit"] == first["credit"] and by_id["article"]["text_source"] == "page"
    code, out, _ = run_cli(capsys, "articles", "show", first["url"], "--json")
    assert code == 0 and json.loads(out) == by_id
    code, out, _ = run_cli(capsys, "articles", "show", first["url"])
    assert code == 0 and f"[{first['article_id']}]" in out and "text from page" in out
    assert f"credits AP ({first['credit']['kind']} credit, rule {first['credit']['rule']})" in out
    code, _, err = run_cli(capsys, "articles", "show", "nope")
    assert code == 1 and "no article 'nope'" in err

    code, out, _ = run_cli(capsys, "feeds", "status", "--json")
    states = json.loads(out)
    assert code == 0 and len(states) == 10 and {s["status"] for s in states} == {"active"}


def test_options_may_come_before_or_after_the_subcommand(demo_env: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    main(["run", "--feeds", str(demo_env)])
    capsys.readouterr()
    data = str(tmp_path / "data")
    _, before, _ = run_cli(capsys, "--data-dir", data, "clusters", "list")
    _, after, _ = run_cli(capsys, "clusters", "list", "--data-dir", data)
    assert before == after and before.count("\n") == 26


def test_extract_prints_one_json_line_per_input(corpus_server: CorpusServer, demo_env: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "page.html"
    page.write_bytes((bundled_corpus_dir() / ARTICLE.lstrip("/")).read_bytes())
    missing = tmp_path / "missing.html"
    code, out, err = run_cli(
        capsys, "extract", str(page), corpus_server.base_url + ARTICLE, str(missing), "--url", "https://ledger.example/x"
    )
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 1  # one input failed
    assert [r["source"] for r in lines] == [str(page), corpus_server.base_url + ARTICLE]
    for record in lines:
        assert set(record) == {"source", "url", "title", "text", "author", "date", "language"}
        assert "dockworkers" in record["text"].lower()
    assert lines[0]["url"] == "https://ledger.example/x"
    assert lines[1]["url"] == corpus_server.base_url + ARTICLE
    assert err.strip() == f"newsagg: {missing}: cannot read file: No such file or directory"


def test_extract_refuses_a_loopback_url_that_is_not_allowed(corpus_server: CorpusServer,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "extract", corpus_server.base_url + ARTICLE)
    assert code == 1 and out == ""
    assert "newsagg:" in err and "loopback" in err.lower()


def test_dedup_writes_one_cluster_id_per_input_id_in_order(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    story = " ".join(f"word{i} appears in the agency story about harbour cranes and strikes" for i in range(60))
    other = " ".join(f"token{i} belongs to a completely different report on orchids" for i in range(60))
    docs = [
        {"id": "a", "title": "Cranes", "text": story, "source": "ledger", "published": "2026-11-01T10:00:00"},
        {"id": 7, "title": "Orchids", "text": other},
        {"id": "b", "title": "Cranes again", "text": "LISBON (Reuters) - " + story[: len(story) // 2],
         "published": "2026-11-01T12:00:00+00:00"},
    ]
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(json.dumps(d) for d in docs) + "\n\n")
    target = tmp_path / "out.jsonl"
    code, _, err = run_cli(capsys, "dedup", str(source), "-o", str(target))
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert code == 0 and "3 documents, 2 clusters" in err
    assert [r["id"] for r in rows] == ["a", "7", "b"]
    assert rows[0]["cluster_id"] == rows[2]["cluster_id"] != rows[1]["cluster_id"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"id": "a", "title": "t"}', "in.jsonl:1: missing or non-string field(s): text"),
        ("not json", "in.jsonl:1: not JSON"),
        ('{"id": "a", "title": "t", "text": "x"}\n{"id": "a", "title": "t", "text": "y"}', "duplicate id 'a'"),
        ('{"id": "a", "title": "t", "text": "x", "published": "yesterday"}', "'published' is not an ISO datetime"),
    ],
)
def test_dedup_bad_input_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                content: str, message: str) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(content)
    code, out, err = run_cli(capsys, "dedup", str(source))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_import_opml_adds_new_feeds_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    opml = tmp_path / "subs.opml"
    opml.write_text(
        '<?xml version="1.0"?><opml version="2.0"><body><outline text="News">'
        '<outline text="Example" type="rss" xmlUrl="https://example.com/rss.xml"/>'
        '<outline text="Other" type="rss" xmlUrl="https://other.example/atom"/>'
        "</outline></body></opml>"
    )
    feeds = tmp_path / "feeds.yaml"
    code, out, _ = run_cli(capsys, "feeds", "import-opml", str(opml), "--feeds", str(feeds))
    assert code == 0 and out.startswith("2 feeds added")
    code, out, _ = run_cli(capsys, "feeds", "import-opml", str(opml), "--feeds", str(feeds))
    assert code == 0 and out.startswith("0 feeds added")


def test_missing_feed_list_and_bad_settings_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = run_cli(capsys, "--data-dir", str(tmp_path), "run", "--feeds", str(tmp_path / "none.yaml"))
    assert code == 2 and err.count("\n") == 1 and "feed list not found" in err
    monkeypatch.setenv("NEWSAGG_FETCH__READ_TIMEOUT", "soon")
    code, _, err = run_cli(capsys, "search", "x")
    assert code == 2 and "fetch.read_timeout" in err


def test_the_feed_list_is_found_from_the_data_dir_or_the_settings_file_not_the_current_directory(
    demo_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    # No feed list configured: feeds.yaml in the data dir, whatever the current directory.
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "feeds.yaml").write_text(demo_env.read_text())
    code, out, _ = run_cli(capsys, "run", "--json")
    assert code == 0 and json.loads(out)["articles_added"] == 49

    # A relative feeds_file in a settings file is taken from that file's directory.
    settings_dir = tmp_path / "settings"
    settings_dir.mkdir()
    (settings_dir / "lists").mkdir()
    (settings_dir / "lists" / "mine.yaml").write_text(demo_env.read_text())
    (settings_dir / "newsagg.yaml").write_text("data_dir: data2\nfeeds_file: lists/mine.yaml\n")
    monkeypatch.delenv("NEWSAGG_DATA_DIR")
    code, out, _ = run_cli(capsys, "--config", str(settings_dir / "newsagg.yaml"), "run", "--json")
    assert code == 0 and json.loads(out)["articles_added"] == 49
    assert (settings_dir / "data2" / "store.sqlite3").exists()
