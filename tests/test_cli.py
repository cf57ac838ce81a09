"""The command-line contract of DESIGN.md, through `pipeline.cli.main`."""

from __future__ import annotations

import csv
import importlib.metadata
import io
import json
import os
import platform
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest

import pipeline.storage.base as storage_base
from pipeline import export
from pipeline.cli import main
from pipeline.feeds import load_feed_list
from pipeline.storage import FeedState, Store
from pipeline.demo.server import CorpusServer, bundled_corpus_dir
from pipeline.demo.run import demo_query, write_demo_feeds

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
    # Paging: the second page of one hit each is the second hit.
    code, out, _ = run_cli(capsys, "search", "rate", "--json", "--limit", "2")
    first_two = [hit["story_id"] for hit in json.loads(out)["hits"]]
    code, out, _ = run_cli(capsys, "search", "rate", "--json", "--limit", "1", "--offset", "1")
    assert code == 0 and [hit["story_id"] for hit in json.loads(out)["hits"]] == first_two[1:] and len(first_two) == 2
    with pytest.raises(SystemExit):
        run_cli(capsys, "search", "rate", "--offset", "-1")
    assert "hits to skip" in capsys.readouterr().err

    code, out, _ = run_cli(capsys, "clusters", "list", "--json", "--min-articles", "2")
    clusters = json.loads(out)["clusters"]
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

    # A story one outlet ran once reads "1 article", not "1 articles".
    code, out, _ = run_cli(capsys, "clusters", "list", "--all")
    single = [line.split()[0] for line in out.splitlines() if "   1 article    1 outlet " in line]
    assert code == 0 and len(single) == 18 and " 1 articles" not in out and " 1 outlets" not in out
    code, out, _ = run_cli(capsys, "clusters", "show", single[0])
    assert code == 0 and "\n1 article from 1 outlet" in out
    code, out, _ = run_cli(capsys, "search", "robotics")
    assert code == 0 and "\n  1 article · " in out

    code, out, _ = run_cli(capsys, "feeds", "status", "--json")
    states = json.loads(out)
    assert code == 0 and len(states) == 10 and {s["status"] for s in states} == {"active"}


def test_version_names_newsagg_python_and_its_main_libraries(capsys: pytest.CaptureFixture[str]) -> None:
    # What an operator pastes into a bug report, or checks a deployment by.
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"newsagg {importlib.metadata.version('newsagg')} (Python {platform.python_version()}; ")
    for library in ("trafilatura", "feedparser", "SQLAlchemy"):
        assert f"{library} {importlib.metadata.version(library)}" in out
    # Only what a plain install has: a development extra reads "not installed" on a user's machine.
    installed = {re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower()
                 for requirement in importlib.metadata.requires("newsagg") or [] if "extra ==" not in requirement}
    named = re.findall(r"([A-Za-z][\w.-]*) \d", out.split("; ", 1)[1])
    assert named and {name.lower() for name in named} <= installed, named


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


# The commands that read the store, and those that only work on what is stored.
ON_WHAT_IS_STORED = [
    ["search", "harbour"], ["clusters", "list"], ["clusters", "show", "x"], ["articles", "show", "x"],
    ["export", "stories"], ["serve", "--port", "0"], ["runs", "list"], ["metrics"], ["feeds", "status"],
    ["outbox", "list"], ["db", "current"], ["db", "backup", "copy.sqlite3"],
    ["maintenance"], ["reextract"], ["outbox", "retry", "--all"], ["outbox", "fill"], ["feeds", "reactivate", "x"],
]


def test_db_upgrade_where_there_is_no_store_says_it_made_one_and_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `db upgrade` makes a new store on purpose; a mistyped data dir must show as a new store, not an upgrade.
    from pipeline.storage.migrate import head

    data = tmp_path / "data"
    code, out, _ = run_cli(capsys, "--data-dir", str(data), "db", "upgrade")
    assert (code, out) == (0, f"new store made at schema revision {head()}: sqlite:///{data / 'store.sqlite3'}\n")
    code, out, _ = run_cli(capsys, "--data-dir", str(data), "db", "upgrade")
    assert (code, out) == (0, f"store already at schema revision {head()} (the newest)\n")


@pytest.mark.parametrize("command", ON_WHAT_IS_STORED)
def test_a_command_on_what_is_stored_says_there_is_no_store_instead_of_making_an_empty_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    # A mistyped --data-dir must not look like an empty store.
    missing = tmp_path / "newsag"
    code, out, err = run_cli(capsys, "--data-dir", str(missing), *command)
    assert code == 2 and out == ""
    assert err == f"newsagg: error: no store in {missing}: nothing has run there (check --data-dir, NEWSAGG_DATA_DIR " \
                  "or the settings file; `newsagg run` makes one)\n"
    assert not missing.exists()


@pytest.mark.parametrize("command", ON_WHAT_IS_STORED)
def test_a_command_on_what_is_stored_says_the_sqlite_file_the_store_url_names_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    # A mistyped store URL must not look like an empty store either.
    missing = tmp_path / "stores" / "news.sqlite3"
    monkeypatch.setenv("NEWSAGG_STORE_URL", f"sqlite:///{missing}")
    code, out, err = run_cli(capsys, "--data-dir", str(tmp_path / "data"), *command)
    assert code == 2 and out == ""
    assert err == f"newsagg: error: no store at {missing}: nothing has run there (check store_url: " \
                  "NEWSAGG_STORE_URL or the settings file; `newsagg run` makes one)\n"
    assert list(tmp_path.iterdir()) == []


def test_search_says_the_embedded_index_is_missing_instead_of_finding_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    assert run_cli(capsys, "demo", "--data-dir", str(data))[0] == 0
    (data / "search.sqlite3").unlink()
    code, out, err = run_cli(capsys, "--data-dir", str(data), "search", demo_query(), "--json")
    assert code == 1 and out == ""
    assert err == f"newsagg: error: the search index {data / 'search.sqlite3'} is missing while the store holds " \
                  "stories: `newsagg outbox fill` builds it again from the store\n"
    assert not (data / "search.sqlite3").exists()
    assert run_cli(capsys, "--data-dir", str(data), "outbox", "fill")[0] == 0
    assert run_cli(capsys, "--data-dir", str(data), "search", demo_query())[1].startswith("1 story")

    # A store with no stories yet has nothing to index: nothing is missing.
    empty = tmp_path / "empty"
    assert run_cli(capsys, "--data-dir", str(empty), "db", "upgrade")[0] == 0
    assert run_cli(capsys, "--data-dir", str(empty), "search", demo_query()) == (0, "0 stories\n", "")


def test_an_output_file_is_written_whole_or_left_as_it_was(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A researcher's earlier result is not truncated by a run that fails (or is stopped) part way.
    source, target = tmp_path / "in.jsonl", tmp_path / "clusters.jsonl"
    target.write_text("the earlier result\n")
    source.write_text('{"id": "a", "title": "t", "text": "x"}\nnot json\n')
    code, _, err = run_cli(capsys, "dedup", str(source), "-o", str(target))
    assert code == 2 and "in.jsonl:2: not JSON" in err
    assert target.read_text() == "the earlier result\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clusters.jsonl", "in.jsonl"]
    # A new file gets the mode any new file gets (umask), not a temporary file's 0600.
    source.write_text('{"id": "a", "title": "t", "text": "x"}\n')
    fresh = tmp_path / "new.jsonl"
    assert run_cli(capsys, "dedup", str(source), "-o", str(fresh))[0] == 0
    umask = os.umask(0)
    os.umask(umask)
    assert fresh.stat().st_mode & 0o777 == 0o666 & ~umask
    assert [json.loads(line)["id"] for line in fresh.read_text().splitlines()] == ["a"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clusters.jsonl", "in.jsonl", "new.jsonl"]
    # A file replaced keeps its mode.
    target.chmod(0o600)
    assert run_cli(capsys, "dedup", str(source), "-o", str(target))[0] == 0
    assert target.stat().st_mode & 0o777 == 0o600
    assert [json.loads(line)["id"] for line in target.read_text().splitlines()] == ["a"]
    # A symbolic link (as /dev/stdout is, to a regular file when output is redirected to one) is
    # written through, never replaced.
    shown = tmp_path / "shown.txt"
    shown.write_text("")
    link = tmp_path / "stdout-link"
    link.symlink_to(shown)
    assert run_cli(capsys, "dedup", str(source), "-o", str(link))[0] == 0
    assert link.is_symlink() and [json.loads(line)["id"] for line in shown.read_text().splitlines()] == ["a"]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_standard_output_a_device_refuses_is_one_line_not_a_traceback(
    demo_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Standard output that is not a file refuses a write too: a full device, a terminal gone (EIO).
    assert run_cli(capsys, "run", "--feeds", str(demo_env))[0] == 0
    commands = [["search", demo_query()], ["clusters", "list"], ["export", "articles"], ["runs", "list"],
                ["settings"]]
    for command in commands:
        with open("/dev/full", "w") as full:
            done = subprocess.run([sys.executable, "-m", "pipeline", *command], stdout=full, stderr=subprocess.PIPE,
                                  text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert (done.returncode, done.stderr) == (
            1, "newsagg: error: cannot write standard output: No space left on device\n"), command


def _opml(path: Path, *feeds: tuple[str, str]) -> Path:
    """An OPML export at ``path`` of these (title, URL) feeds, in a folder as readers export them."""
    outlines = "".join(f'<outline text="{title}" type="rss" xmlUrl="{url}"/>' for title, url in feeds)
    path.write_text(f'<?xml version="1.0"?><opml version="2.0"><body><outline text="News">{outlines}'
                    "</outline></body></opml>")
    return path


EXAMPLE_FEED, OTHER_FEED = ("Example", "https://example.com/rss.xml"), ("Other", "https://other.example/atom")


def test_import_opml_adds_new_feeds_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    opml = _opml(tmp_path / "subs.opml", EXAMPLE_FEED, OTHER_FEED)
    feeds = tmp_path / "feeds.yaml"
    data = ["--data-dir", str(tmp_path / "data")]
    code, out, _ = run_cli(capsys, *data, "feeds", "import-opml", str(opml), "--feeds", str(feeds))
    assert code == 0 and out.startswith("2 feeds added")
    code, out, _ = run_cli(capsys, *data, "feeds", "import-opml", str(opml), "--feeds", str(feeds))
    assert code == 0 and out.startswith("0 feeds added")
    assert not (tmp_path / "data").exists()  # a list is edited; no store is made for it (the first run makes it)


def test_import_opml_that_adds_nothing_leaves_the_list_as_it_was(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Importing a reader's export again rewrote the list though no feed was new: its comments and layout were lost.
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text("# our outlets, reviewed monthly\nfeeds:\n  - name: Example  # the wire desk's pick\n"
                     "    url: https://example.com/rss.xml\n")
    before = feeds.read_bytes()
    code, out, _ = run_cli(capsys, "--data-dir", str(tmp_path / "data"), "feeds", "import-opml",
                           str(_opml(tmp_path / "subs.opml", EXAMPLE_FEED)), "--feeds", str(feeds))
    assert code == 0 and out.startswith("0 feeds added")
    assert feeds.read_bytes() == before


def test_editing_the_feed_list_keeps_its_mode_and_a_new_one_gets_the_umasks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The list is rewritten beside itself and renamed into place: the temporary file's 0600 made
    # it unreadable to the user the runs (Airflow's workers, cron) read it as.
    opml = _opml(tmp_path / "subs.opml", EXAMPLE_FEED)
    umask = os.umask(0o022)
    try:
        created = tmp_path / "new.yaml"
        code, out, _ = run_cli(capsys, "--data-dir", str(tmp_path / "data"), "feeds", "import-opml", str(opml),
                               "--feeds", str(created))
        assert code == 0 and out.startswith("1 feed added to ")
        assert created.stat().st_mode & 0o777 == 0o644
        shared = tmp_path / "shared.yaml"
        shared.write_text("feeds:\n  - name: Other\n    url: https://other.example/atom\n")
        shared.chmod(0o664)
        data = ["--data-dir", str(tmp_path / "data")]
        for argv in (["feeds", "import-opml", str(opml)],
                     ["feeds", "move", "https://example.com/rss.xml", "https://example.com/feed.xml"],
                     ["feeds", "remove", "https://example.com/feed.xml"]):
            code, _, err = run_cli(capsys, *data, *argv, "--feeds", str(shared))
            assert code == 0, err
            assert shared.stat().st_mode & 0o777 == 0o664, argv
    finally:
        os.umask(umask)


def test_import_opml_into_an_opml_feed_list_is_an_error_that_leaves_it_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The feed list may be OPML (it is read, not edited): importing into it must not rewrite it as YAML.
    listed = _opml(tmp_path / "mine.opml", EXAMPLE_FEED)
    before = listed.read_bytes()
    more = _opml(tmp_path / "more.opml", OTHER_FEED)
    code, _, err = run_cli(capsys, "feeds", "import-opml", str(more), "--feeds", str(listed))
    assert code == 2 and err.count("\n") == 1 and "is an OPML file" in err
    assert listed.read_bytes() == before


def test_search_limit_must_be_a_positive_whole_number(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # -1 was every hit on SQLite and none on Elasticsearch; 0 an empty page.
    for limit in ("0", "-1"):
        with pytest.raises(SystemExit):
            main(["--data-dir", str(tmp_path), "search", "anything", "--limit", limit])
        assert "not a positive whole number" in capsys.readouterr().err


def test_missing_feed_list_and_bad_settings_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = run_cli(capsys, "--data-dir", str(tmp_path), "run", "--feeds", str(tmp_path / "none.yaml"))
    assert code == 2 and err.count("\n") == 1 and "feed list not found" in err
    # Nothing was made in the data dir (a mistyped one would then look like an empty store).
    assert list(tmp_path.iterdir()) == []
    code, _, err = run_cli(capsys, "--data-dir", str(tmp_path / "typo"), "run")
    assert code == 2 and "typo/feeds.yaml: feed list not found" in err and not (tmp_path / "typo").exists()
    monkeypatch.setenv("NEWSAGG_FETCH__READ_TIMEOUT", "soon")
    code, _, err = run_cli(capsys, "search", "x")
    assert code == 2 and "fetch.read_timeout" in err


def test_bounds_of_adaptive_polling_the_wrong_way_round_are_one_line_naming_both(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Adaptive polling clamps an interval into [min, max]; with min above max it polled every
    # feed at max_poll_interval whatever it learnt, without a word.
    monkeypatch.setenv("NEWSAGG_FEEDS__MIN_POLL_INTERVAL", "7200")
    monkeypatch.setenv("NEWSAGG_FEEDS__MAX_POLL_INTERVAL", "3600")
    code, _, err = run_cli(capsys, "search", "x")
    assert code == 2 and err.count("\n") == 1
    assert "invalid settings: feeds: min_poll_interval (7200) is above max_poll_interval (3600)" in err


def test_a_group_given_whole_that_gives_a_setting_twice_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # JSON readers keep the last of a key given twice, as YAML readers do: the first was dropped.
    monkeypatch.setenv("NEWSAGG_FETCH", '{"politeness_delay": 5, "read_timeout": 30, "politeness_delay": 0}')
    code, out, err = run_cli(capsys, "--data-dir", str(tmp_path), "settings")
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert err == "newsagg: error: invalid settings: NEWSAGG_FETCH gives 'politeness_delay' twice\n"


@pytest.mark.parametrize(("variable", "value", "problem"), [
    # A run ended in an OverflowError traceback on these (a sleep or a lease of infinite seconds).
    ("NEWSAGG_FETCH__POLITENESS_DELAY", "inf", "fetch.politeness_delay: Input should be a finite number"),
    ("NEWSAGG_EXTRACTION__CLAIM_LEASE", "Infinity", "extraction.claim_lease: Input should be a finite number"),
    ("NEWSAGG_ALERT_WEBHOOK_TIMEOUT", "inf", "alert_webhook_timeout: Input should be a finite number"),
    # No HTTP header value: every feed of a run failed ('Illegal header value'), each failure
    # counted towards retiring it, and the run exited 0; a letter beyond ASCII was a traceback.
    ("NEWSAGG_FETCH__USER_AGENT", "newsagg/1.0\nX-Forwarded-For: 10.0.0.1", "fetch.user_agent: must be"),
    ("NEWSAGG_FETCH__USER_AGENT", " ", "fetch.user_agent: must be"),
    ("NEWSAGG_FETCH__USER_AGENT", "newsägg/1.0", "fetch.user_agent: must be"),
])
def test_a_setting_no_run_could_use_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    variable: str, value: str, problem: str,
) -> None:
    monkeypatch.setenv(variable, value)
    code, out, err = run_cli(capsys, "--data-dir", str(tmp_path), "settings")
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert err.startswith(f"newsagg: error: invalid settings: {problem}"), err


def test_a_store_another_process_keeps_write_locked_is_said_so_not_only_database_is_locked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    assert run_cli(capsys, *data, "db", "upgrade")[0] == 0
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3, sys, time\n"
         f"c = sqlite3.connect({str(tmp_path / 'data' / 'store.sqlite3')!r}, isolation_level=None)\n"
         "c.execute('BEGIN IMMEDIATE'); print('locked', flush=True); time.sleep(60)\n"],
        stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        monkeypatch.setattr(storage_base, "_SQLITE_WAIT", 0.5)  # the 30 s a command waits, shortened
        code, _, err = run_cli(capsys, *data, "outbox", "retry", "--all")
    finally:
        holder.kill()
        holder.communicate()
    assert code == 1 and err.count("\n") == 1
    assert err.endswith("database is locked: another process holds the store's write lock (waited 0.5 s)\n")


def test_a_sqlite_store_url_that_does_not_parse_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSAGG_STORE_URL", "sqlite:store.db")  # a slash short of sqlite:///store.db
    for command in (["db", "upgrade"], ["db", "current"], ["clusters", "list"]):
        code, out, err = run_cli(capsys, *command)
        assert code == 1 and out == "" and err.count("\n") == 1, command
        assert err.startswith("newsagg: error: cannot open the store at sqlite:store.db: "), command


def test_a_store_url_whose_database_driver_is_not_installed_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSAGG_STORE_URL", "mysql://newsagg:secret@127.0.0.1:9/news")  # MySQL: no driver, no support
    code, out, err = run_cli(capsys, "clusters", "list")
    assert code == 2 and out == "" and err.count("\n") == 1 and "secret" not in err
    assert err.startswith("newsagg: error: cannot open the store at mysql://newsagg:***@127.0.0.1:9/news: ")
    assert "SQLite or PostgreSQL" in err


def test_a_settings_file_named_by_newsagg_config_that_is_missing_is_an_error_as_with_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A mistyped or unmounted NEWSAGG_CONFIG (an Airflow worker's) must not run on the defaults instead.
    monkeypatch.setenv("NEWSAGG_CONFIG", str(tmp_path / "missing.yaml"))
    code, _, err = run_cli(capsys, "--data-dir", str(tmp_path), "feeds", "import-opml", str(tmp_path / "x.opml"))
    assert code == 2 and err.count("\n") == 1 and f"config file not found: {tmp_path / 'missing.yaml'}" in err
    monkeypatch.setenv("NEWSAGG_CONFIG", str(tmp_path))  # the directory that holds it, named instead
    code, _, err = run_cli(capsys, "--data-dir", str(tmp_path), "feeds", "import-opml", str(tmp_path / "x.opml"))
    assert code == 2 and err.count("\n") == 1 and f"config file {tmp_path} is a directory, not a settings file" in err


def test_an_unknown_or_retired_setting_in_a_section_is_an_error_not_silently_ignored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A typo, or a setting an upgrade retired (`extraction.workers` became `workers`), would
    # otherwise leave the operator believing it is in force.
    config = tmp_path / "settings.yaml"
    config.write_text("extraction:\n  min_txt_chars: 100\n", encoding="utf-8")
    code, _, err = run_cli(capsys, "--config", str(config), "runs", "list")
    assert code == 2 and err.count("\n") == 1 and "extraction.min_txt_chars" in err
    monkeypatch.setenv("NEWSAGG_EXTRACTION__WORKERS", "3")
    code, _, err = run_cli(capsys, "--data-dir", str(tmp_path), "runs", "list")
    assert code == 2 and err.count("\n") == 1
    assert "extraction.workers" in err and "`workers`" in err



@pytest.mark.parametrize(("variable", "value"), [
    ("NEWSAGG_FETCH__ALLOWED_HOSTS", "127.0.0.1:8000"),  # a list, given as its one item
    ("NEWSAGG_ES__URLS", "http://es1:9200,http://es2:9200"),
    ("NEWSAGG_FETCH", "{read_timeout: 12"),  # a group given whole
])
def test_a_list_or_group_that_is_not_json_in_the_environment_is_one_line_naming_the_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    code, out, err = run_cli(capsys, "--data-dir", str(tmp_path), "settings")
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert err.startswith(f"newsagg: error: invalid settings: {variable} is not JSON") and "Traceback" not in err


@pytest.mark.parametrize(("content", "problem"), [
    ("fetch: {read_timeout: [\n", ": invalid YAML at line 2: expected the node content"),
    ("- fetch\n- feeds\n", " is not a mapping of settings"),
    # A group given twice: YAML readers keep the last, and the first group's settings were dropped.
    ("fetch:\n  politeness_delay: 5\nworkers: 2\nfetch:\n  read_timeout: 30\n",
     ": invalid YAML at line 4: key 'fetch' is given twice, first on line 1"),
    ("fetch:\n  politeness_delay: 5\n  politeness_delay: 0\n",
     ": invalid YAML at line 3: key 'politeness_delay' is given twice, first on line 2"),
])
def test_a_settings_file_that_cannot_be_read_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, problem: str
) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text(content, encoding="utf-8")
    code, out, err = run_cli(capsys, "--config", str(config), "settings")
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert err.startswith(f"newsagg: error: settings file {config}{problem}") and "Traceback" not in err


def test_a_misspelt_setting_in_the_environment_is_an_error_naming_the_setting_meant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # NEWSAGG_STORE__URL (store_url is no section) was ignored: each worker then ran on its own
    # embedded store in its data dir instead of the shared PostgreSQL.
    for typo, meant in (("NEWSAGG_STORE__URL", "NEWSAGG_STORE_URL"),
                        ("newsagg_search_backen", "NEWSAGG_SEARCH_BACKEND"),
                        ("NEWSAGG_FEED__DEFAULT_POLL_INTERVAL", "NEWSAGG_FEEDS__DEFAULT_POLL_INTERVAL"),
                        ("NEWSAGG_FETCHH", "NEWSAGG_FETCH")):
        monkeypatch.setenv(typo, "postgresql+psycopg://newsagg@db/newsagg")
        code, _, err = run_cli(capsys, "--data-dir", str(tmp_path), "runs", "list")
        assert code == 2 and err.count("\n") == 1, err
        assert f"{typo.upper()} is not a setting (did you mean {meant}?)" in err
        monkeypatch.delenv(typo)
    # What docker-compose.yml and the test services name close to a setting, and names like
    # no setting's, are not settings and are left alone.
    for own in ("NEWSAGG_WEB_PORT", "NEWSAGG_ES_PASSWORD", "NEWSAGG_ES_URL", "NEWSAGG_HOME"):
        monkeypatch.setenv(own, "x")
    monkeypatch.setenv("NEWSAGG_FETCH", '{"read_timeout": 12}')  # a group given whole
    code, _, err = run_cli(capsys, "--data-dir", str(tmp_path), "runs", "list")
    assert code == 2 and "no store in" in err and "not a setting" not in err


def test_settings_shows_each_value_in_force_where_it_came_from_and_no_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [k for k in os.environ if k.upper().startswith("NEWSAGG_")]:
        monkeypatch.delenv(name)
    config = tmp_path / "settings.yaml"
    config.write_text("workers: 3\nfetch:\n  read_timeout: 12\n  connect_timeout: 4\n", encoding="utf-8")
    monkeypatch.setenv("NEWSAGG_CONFIG", str(config))
    monkeypatch.setenv("NEWSAGG_STORE_URL", "postgresql+psycopg://newsagg:s3cret-db@db:5432/newsagg")
    monkeypatch.setenv("NEWSAGG_ES__PASSWORD", "s3cret-es")
    monkeypatch.setenv("newsagg_fetch__connect_timeout", "7")  # the environment wins over the file
    monkeypatch.setenv("NEWSAGG_KIBANA", '{"space": "newsroom"}')  # a group given whole, as JSON
    code, out, _ = run_cli(capsys, "--data-dir", str(tmp_path / "data"), "settings", "--json")
    assert code == 0 and "s3cret" not in out
    shown = json.loads(out)
    assert shown["settings_file"] == str(config)
    by_name = {s["variable"]: (s["value"], s["origin"]) for s in shown["settings"]}
    assert by_name["NEWSAGG_DATA_DIR"] == (str(tmp_path / "data"), "option")
    assert by_name["NEWSAGG_WORKERS"] == (3, "file")
    assert by_name["NEWSAGG_FETCH__READ_TIMEOUT"] == (12.0, "file")
    assert by_name["NEWSAGG_FETCH__CONNECT_TIMEOUT"] == (7.0, "environment")
    assert by_name["NEWSAGG_STORE_URL"][1] == "environment" and "db:5432/newsagg" in by_name["NEWSAGG_STORE_URL"][0]
    assert by_name["NEWSAGG_ES__PASSWORD"] == ("**********", "environment")
    assert by_name["NEWSAGG_ES__USERNAME"] == (None, "default")
    assert by_name["NEWSAGG_KIBANA__SPACE"] == ("newsroom", "environment")
    assert by_name["NEWSAGG_SEARCH_BACKEND"] == ("sqlite", "default")
    assert shown["in_use"] == {"store": "postgresql+psycopg://newsagg:***@db:5432/newsagg",
                               "search_index": str(tmp_path / "data" / "search.sqlite3"),
                               "feed_list": str(tmp_path / "data" / "feeds.yaml"),
                               "archive": str(tmp_path / "data" / "archive")}
    code, out, _ = run_cli(capsys, "settings")
    assert code == 0 and "s3cret" not in out and out.startswith(f"settings file: {config}\n")
    assert re.search(r"^NEWSAGG_FETCH__READ_TIMEOUT +12\.0  \(file\)$", out, re.M)
    assert re.search(r"^NEWSAGG_ES__USERNAME +unset  \(default\)$", out, re.M)
    monkeypatch.setenv("NEWSAGG_SEARCH_BACKEND", "elasticsearch")
    monkeypatch.setenv("NEWSAGG_ES__URLS", '["https://reader:s3cret-url@es1:9200"]')
    monkeypatch.setenv("NEWSAGG_ARCHIVE__ENABLED", "false")
    code, out, _ = run_cli(capsys, "--data-dir", str(tmp_path / "data"), "settings")
    assert code == 0 and "s3cret" not in out
    assert out.endswith("  search index  Elasticsearch https://reader:***@es1:9200, aliases newsagg-stories and "
                        "newsagg-articles\n  feed list     " + str(tmp_path / "data" / "feeds.yaml") + "\n  archive       off\n")
    assert not (tmp_path / "data").exists()  # it opens no store


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


def test_feeds_add_remove_reactivate_and_move_keep_a_feeds_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.models import Validators
    from pipeline.storage import Store

    data = tmp_path / "data"
    monkeypatch.setenv("NEWSAGG_DATA_DIR", str(data))
    feeds, url = data / "feeds.yaml", "https://ledger.example/feed.xml"
    now = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

    def state() -> FeedState:
        with closing(Store(f"sqlite:///{data / 'store.sqlite3'}")) as store:
            found = store.find_feed("ledger-example")
            assert found is not None
            return found

    code, out, _ = run_cli(capsys, "feeds", "add", url)  # the list `run` reads is created
    assert code == 0 and out == f"feed ledger-example (ledger.example, {url}) added to {feeds}\n"
    assert [f.url for f in load_feed_list(feeds)] == [url]
    code, out, _ = run_cli(capsys, "feeds", "add", "HTTPS://Ledger.example:443/feed.xml")
    assert code == 0 and "already in" in out and len(load_feed_list(feeds)) == 1
    with closing(Store(f"sqlite:///{data / 'store.sqlite3'}")) as store:
        store.record_feed_fetched("ledger-example", [], Validators(etag='"v1"'), now=now, next_attempt_at=now)
        store.record_feed_failure("ledger-example", "HTTP 410", now=now, next_attempt_at=None, retire=True)

    code, out, _ = run_cli(capsys, "feeds", "reactivate", "ledger-example")
    assert code == 0 and "active again" in out
    s = state()
    assert (s.status, s.consecutive_failures, s.failure_score, s.next_attempt_at, s.last_success_at) == (
        "active", 0, 0.0, None, now)

    code, out, _ = run_cli(capsys, "feeds", "remove", url)
    assert code == 0 and "removed from" in out and load_feed_list(feeds) == []
    assert state().status == "removed"
    code, out, _ = run_cli(capsys, "feeds", "status")
    assert "never (removed)" in out and "1 removed" in out
    code, _, err = run_cli(capsys, "feeds", "reactivate", url)
    assert code == 2 and err == f"newsagg: error: feed ledger-example is not in the feed list: `newsagg feeds add {url}` brings it back with its history\n"

    code, out, _ = run_cli(capsys, "feeds", "add", url, "--name", "Harbor City Ledger")
    assert code == 0 and out.startswith("feed ledger-example (Harbor City Ledger")
    s = state()
    assert (s.status, s.validators.etag, s.last_success_at) == ("active", '"v1"', now)  # its history is back

    new_url = "https://ledger.example/rss/all.xml"
    code, out, _ = run_cli(capsys, "feeds", "move", url, new_url)
    assert code == 0 and out == f"feed ledger-example moved to {new_url} in {feeds}, with its history\n"
    assert [(f.name, f.url) for f in load_feed_list(feeds)] == [("Harbor City Ledger", new_url)]
    s = state()
    assert (s.source.id, s.source.url, s.validators.etag, s.last_success_at) == ("ledger-example", new_url, None, now)

    opml = tmp_path / "subs.opml"
    opml.write_text('<?xml version="1.0"?><opml version="2.0"><body/></opml>')
    run_cli(capsys, "feeds", "add", "https://other.example/feed.xml")
    run_cli(capsys, "feeds", "remove", "https://other.example/feed.xml")
    for argv, message in [
        (("feeds", "move", url, "https://other.example/feed.xml"), f"{url} is not in {feeds}"),
        (("feeds", "move", new_url, "https://other.example/feed.xml"),
         "https://other.example/feed.xml is already feed other-example in the store"),
        (("feeds", "add", url, "--feeds", str(opml)), f"{opml} is an OPML file, which newsagg reads but does not edit"),
        (("feeds", "remove", "nope"), f"no feed 'nope' in {feeds} or the store"),
        (("feeds", "remove", "https://other.example/feed.xml"),
         f"feed other-example (https://other.example/feed.xml) is not in {feeds}: it was removed before"),
        (("feeds", "reactivate", "https://nope.example/"), "no feed 'https://nope.example/' in the store"),
        (("feeds", "add", "ftp://ledger.example/feed"), "'ftp://ledger.example/feed' is not an absolute http(s) URL"),
        (("feeds", "add", "https://ledger.example/feed?" + "q=1&" * 600), "…' is 2428 characters long, over the 2048"),
        (("feeds", "add", "https://ledger.example/" + "é" * 400), "…' is 2423 characters long once percent-encoded"),
    ]:
        code, _, err = run_cli(capsys, *argv)
        assert code == 2 and err.count("\n") == 1 and message in err, (argv, err)


def test_maintenance_from_cron_applies_retention_delivers_it_and_compacts(
    demo_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the news_maintenance DAG does, for a deployment that runs `newsagg run` from cron."""
    assert run_cli(capsys, "maintenance")[0] == 2  # no store yet: nothing is made
    assert run_cli(capsys, "run", "--feeds", str(demo_env))[0] == 0
    # The demo corpus was published in November 2026, more than a matching window (7 days) ago.
    code, out, _ = run_cli(capsys, "maintenance", "--json")
    kept = json.loads(out)
    assert code == 0 and kept["signatures_dropped"] == 49 and kept["stories_pruned"] == kept["articles_pruned"] == 0
    assert run_cli(capsys, "search", "desalination plant")[1].startswith("1 story")  # stories stay without retention

    monkeypatch.setenv("NEWSAGG_STORY_RETENTION_DAYS", "7")
    code, out, _ = run_cli(capsys, "maintenance")
    assert code == 0 and "0 signatures" in out and "26 stories (49 articles) last seen before" in out, out
    assert "archive files last written before" in out
    assert "store compacted" in out
    assert run_cli(capsys, "search", "desalination plant")[1].startswith("0 stories")  # deletions delivered
    code, out, _ = run_cli(capsys, "maintenance", "--json")
    assert code == 0 and json.loads(out)["stories_pruned"] == 0  # safe to repeat


def test_a_stop_that_cleanup_fails_after_is_still_reported_as_a_stop(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the interrupted code does on its way out can fail in turn (a database driver left
    # mid-statement): the stop still ends the command as a stop, for docker stop or systemd.
    import pipeline.cli.run

    def run_then_fail_to_clean_up(_args: object) -> int:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(10)
        finally:
            raise RuntimeError("connection in transaction status ACTIVE")
        return 0

    monkeypatch.setattr(pipeline.cli.run, "_cmd_run", run_then_fail_to_clean_up)
    code, _, err = run_cli(capsys, "run", "--data-dir", str(tmp_path))
    assert code == 128 + signal.SIGTERM
    assert err.splitlines() == ["newsagg: stopped (SIGTERM); run again to resume where it stopped"]


def test_runs_list_shows_recent_runs_newest_first_with_status_and_counts(
    demo_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(capsys, "run", "--feeds", str(demo_env))[0] == 0
    assert run_cli(capsys, "run", "--feeds", str(tmp_path / "missing.yaml"))[0] == 2  # the run fails
    # A run whose process died without finishing it (killed): shown abandoned, not running.
    store_url = f"sqlite:///{tmp_path / 'data' / 'store.sqlite3'}"
    killed = subprocess.run(
        [sys.executable, "-c", "import os, sys; from pipeline.storage import Store; "
         "Store(sys.argv[1]).start_run('airflow'); os._exit(0)", store_url],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}, check=True,
    )
    assert killed.returncode == 0

    code, out, _ = run_cli(capsys, "runs", "list", "--json")
    assert code == 0
    found = json.loads(out)
    assert [(r["trigger"], r["status"]) for r in found] == [("airflow", "abandoned"), ("cli", "failed"), ("cli", "ok")]
    assert [r["id"] for r in found] == sorted((r["id"] for r in found), reverse=True)
    ok = found[2]
    assert ok["stats"]["articles_added"] == 49 and ok["stats"]["failed_feeds"] == []
    assert ok["finished_at"] >= ok["started_at"] and found[0]["stats"] == {}
    assert set(ok["stats"]["stage_seconds"]) == {"load_feeds", "poll_feeds", "fetch_articles", "cluster_articles",
                                                 "merge_stories", "index_stories"}
    assert set(found[1]["stats"]["stage_seconds"]) == {"load_feeds"}  # the stage that failed counts too

    code, out, _ = run_cli(capsys, "runs", "list", "--limit", "2")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 3 and "abandoned" in lines[0] and "failed" in lines[1]
    code, out, _ = run_cli(capsys, "runs", "list")
    assert "ok" in out.splitlines()[2] and "articles +49 (0 failed)" in out and "failed feeds 0" in out

    with pytest.raises(SystemExit):
        main(["runs", "list", "--limit", "0"])
    assert "not a positive whole number" in capsys.readouterr().err


def test_clusters_list_pages_through_every_cluster_once(demo_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, "run", "--feeds", str(demo_env))[0] == 0
    code, out, _ = run_cli(capsys, "clusters", "list", "--all", "--json")
    every = [c["id"] for c in json.loads(out)["clusters"]]
    assert code == 0 and json.loads(out)["next"] is None and len(every) > 20

    listed: list[str] = []
    after: list[str] = []
    while True:
        code, out, _ = run_cli(capsys, "clusters", "list", "--limit", "7", "--json", *after)
        page = json.loads(out)
        assert code == 0 and 0 < len(page["clusters"]) <= 7
        listed.extend(c["id"] for c in page["clusters"])
        if page["next"] is None:
            break
        after = ["--after", page["next"]]
    assert listed == every and len(set(listed)) == len(listed)

    code, out, _ = run_cli(capsys, "clusters", "list", "--limit", "7")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 8 and lines[-1].startswith("(more: --after ")
    cursor = lines[-1].split()[2]
    code, out, _ = run_cli(capsys, "clusters", "list", "--after", cursor, "--all")
    assert [line.split()[0] for line in out.splitlines()] == every[7:]

    with pytest.raises(SystemExit):
        main(["clusters", "list", "--after", "nonsense"])
    assert "not a cursor from `clusters list`" in capsys.readouterr().err


def test_clusters_list_says_when_there_is_no_cluster_to_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    assert run_cli(capsys, *data, "db", "upgrade")[0] == 0  # a store with nothing in it yet
    assert run_cli(capsys, *data, "clusters", "list") == (0, "no clusters yet: run `newsagg run` first\n", "")
    code, out, _ = run_cli(capsys, *data, "clusters", "list", "--json")
    assert code == 0 and json.loads(out) == {"clusters": [], "next": None}
    assert run_cli(capsys, *data, "clusters", "list", "--all", "--min-articles", "2") == \
        (0, "no clusters of 2 articles or more\n", "")


def test_clusters_list_min_articles_must_be_a_positive_whole_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 0 and -1 were taken and listed what 1 lists.
    for least in ("0", "-1"):
        with pytest.raises(SystemExit) as exit_:
            main(["--data-dir", str(tmp_path), "clusters", "list", "--min-articles", least])
        assert exit_.value.code == 2
        assert "argument --min-articles: not a positive whole number" in capsys.readouterr().err


def test_db_backup_and_export_refuse_a_directory_that_does_not_exist_alike(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A mistyped directory is said so, not made (export refused it, db backup made it).
    data = ["--data-dir", str(tmp_path / "data")]
    assert run_cli(capsys, *data, "db", "upgrade")[0] == 0
    missing = tmp_path / "backups" / "nightly"
    for command in (["db", "backup", str(missing / "copy.sqlite3")], ["export", "stories", "-o", str(missing / "s.jsonl")]):
        code, out, err = run_cli(capsys, *data, *command)
        assert (code, out) == (2, ""), command
        assert err == f"newsagg: error: cannot write {command[-1]}: no directory {missing}\n"
    assert not (tmp_path / "backups").exists()


def test_export_articles_and_stories_as_jsonl_and_csv(demo_env: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, "run", "--feeds", str(demo_env))[0] == 0
    code, _, err = run_cli(capsys, "export", "articles", "-o", str(tmp_path / "articles.jsonl"))
    lines = (tmp_path / "articles.jsonl").read_text(encoding="utf-8").splitlines()
    assert code == 0 and err.strip() == "49 articles exported" and len(lines) == 49
    exported = [json.loads(line) for line in lines]
    assert [a["arrived_at"] for a in exported] == sorted(a["arrived_at"] for a in exported)

    with closing(Store(f"sqlite:///{tmp_path / 'data' / 'store.sqlite3'}")) as store:
        stored = store.articles_by_id(a["id"] for a in exported)
        clusters = {a["id"]: store.membership(a["id"]) for a in exported}
        stories = {s.id: s for s in store.iter_stories()}
    # Every field of every article comes back as stored.
    for record in exported:
        article = stored[record["id"]]
        assert record["text"] == article.text and record["title"] == article.title
        assert record["text_source"] == article.text_source.value
        assert record["text_source_reason"] == article.text_source_reason
        assert record["credit"] == (None if article.credit is None else {
            "agency": article.credit.agency, "kind": article.credit.kind,
            "rule": article.credit.rule, "evidence": article.credit.evidence})
        assert record["published"] == (article.published.isoformat() if article.published else None)
        assert record["tags"] == list(article.tags) and record["cluster_id"] == clusters[record["id"]].cluster_id
    assert sum(1 for a in exported if a["credit"]) > 5

    code, out, err = run_cli(capsys, "export", "stories", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and err.strip() == f"{len(stories)} stories exported" and len(rows) == len(stories)
    for row in rows:
        story = stories[row["id"]]
        assert int(row["article_count"]) == story.article_count and row["title"] == story.title
        assert [s["article_id"] for s in json.loads(row["sources"])] == [s.article_id for s in story.sources]
        assert json.loads(row["tags"]) == list(story.tags) and row["text"] == story.text
        assert row["agency"] == (story.agency or "")

    # --since: a date alone means from its start.
    day = sorted(a["arrived_at"] for a in exported)[len(exported) // 2][:10]
    code, out, _ = run_cli(capsys, "export", "articles", "--since", day)
    assert code == 0 and len(out.splitlines()) == sum(1 for a in exported if a["arrived_at"][:10] >= day) < 49
    code, out, _ = run_cli(capsys, "export", "stories", "--since", day, "--format", "csv")
    assert len(list(csv.DictReader(io.StringIO(out)))) == sum(1 for s in stories.values() if f"{s.last_seen:%Y-%m-%d}" >= day)
    code, out, _ = run_cli(capsys, "export", "articles", "--since", "2999-01-01", "--format", "csv")
    assert code == 0 and out.splitlines() == [",".join(export.FIELDS["articles"])]


def test_demo_with_a_data_dir_ends_with_the_commands_that_look_at_it(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "demo", "--data-dir", str(tmp_path / "kept"))
    commands = [shlex.split(line, comments=True) for line in out.splitlines()[-4:]]
    assert code == 0 and [c[1:3] for c in commands] == [["--data-dir", str(tmp_path / "kept")]] * 4
    assert [c[3:] for c in commands] == [["clusters", "list"], ["search", demo_query()], ["export", "stories"],
                                         ["serve"]]
    code, out, _ = run_cli(capsys, *commands[1][1:])
    assert code == 0 and out.startswith("1 story")
    # Again into the same directory: its corpus is served on another port, so every article would be stored twice.
    code, _, err = run_cli(capsys, "demo", "--data-dir", str(tmp_path / "kept"))
    assert code == 2 and err.count("\n") == 1 and "already holds" in err
    assert run_cli(capsys, *commands[1][1:])[1].startswith("1 story")


def test_demo_reads_the_settings_file_given_by_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text("workerz: 1\n", encoding="utf-8")
    code, _, err = run_cli(capsys, "--config", str(config), "demo")
    assert code == 2 and err.count("\n") == 1 and "workerz" in err


def test_logs_can_be_json_lines_at_a_chosen_level_for_a_log_shipper(tmp_path: Path) -> None:
    # A feed on a port nothing listens on: its failure is logged as a warning, the run goes on.
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text("feeds:\n  - name: gone\n    url: http://127.0.0.1:9/feed.xml\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSAGG_")}
    env.update(NEWSAGG_DATA_DIR=str(tmp_path / "data"), NEWSAGG_FEEDS_FILE=str(feeds), NEWSAGG_WORKERS="1",
               NEWSAGG_FETCH__ALLOWED_HOSTS='["127.0.0.1:9"]', NEWSAGG_LOG_FORMAT="json", NEWSAGG_LOG_LEVEL="info")
    done = subprocess.run([sys.executable, "-m", "pipeline", "run", "--force"], env=env, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    assert {line["level"] for line in lines} >= {"INFO", "WARNING"}
    assert any(line["level"] == "WARNING" and "gone" in line["message"] for line in lines)
    assert all(datetime.fromisoformat(line["time"]).tzinfo is not None for line in lines)

    env.update(NEWSAGG_LOG_FORMAT="text", NEWSAGG_LOG_LEVEL="error")
    done = subprocess.run([sys.executable, "-m", "pipeline", "run", "--force"], env=env, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0 and done.stderr == ""


def test_a_report_in_json_while_elasticsearch_is_down_is_one_document_and_one_error_line(tmp_path: Path) -> None:
    # Elasticsearch on a port nothing listens on: what each command stored waits in the outbox.
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text("feeds: []\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSAGG_")}
    env.update(NEWSAGG_DATA_DIR=str(tmp_path / "data"), NEWSAGG_FEEDS_FILE=str(feeds), NEWSAGG_WORKERS="1",
               NEWSAGG_SEARCH_BACKEND="elasticsearch", NEWSAGG_ES__URLS='["http://127.0.0.1:9"]',
               NEWSAGG_ES__MAX_RETRIES="0")
    warc = Path(__file__).parent / "data" / "cc-news-style.warc.gz"
    for command in (["import-warc", str(warc)], ["reextract"], ["run"]):
        done = subprocess.run([sys.executable, "-m", "pipeline", *command, "--json"], env=env, capture_output=True,
                              text=True, timeout=120, stdin=subprocess.DEVNULL)
        report = json.loads(done.stdout)
        index_error = report.get("settled", report)["index_error"]
        assert done.returncode == 1 and "http://127.0.0.1:9 is unreachable" in index_error, command
        assert done.stderr.count("\n") == 1 and "search index unavailable, 5 documents wait in the outbox" in done.stderr, \
            (command, done.stderr)


def test_the_web_servers_own_log_lines_follow_the_log_settings(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSAGG_")}
    env.update(NEWSAGG_DATA_DIR=str(tmp_path / "data"), NEWSAGG_LOG_FORMAT="json", NEWSAGG_LOG_LEVEL="info")
    assert main(["--data-dir", str(tmp_path / "data"), "db", "upgrade"]) == 0  # serve reads an existing store
    server = subprocess.Popen([sys.executable, "-m", "pipeline", "serve", "--port", "0"], env=env, text=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        assert server.stderr is not None
        banner = server.stderr.readline()
        url = banner.split(" on ", 1)[1].split()[0]
        for _ in range(100):
            try:
                with urllib.request.urlopen(url + "healthz", timeout=5) as answer:
                    assert answer.status == 200
                break
            except OSError:
                time.sleep(0.1)
    finally:
        server.terminate()
        rest = server.communicate(timeout=30)[1]
    lines = [json.loads(line) for line in rest.splitlines() if line.strip()]
    access = [line for line in lines if line["logger"] == "uvicorn.access"]
    assert access and "GET /healthz" in access[0]["message"] and access[0]["level"] == "INFO"


def test_serve_with_bad_elasticsearch_settings_is_one_line_and_exit_2(tmp_path: Path) -> None:
    # Found before the server starts, not as a traceback from its startup (exit 3).
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSAGG_")}
    env.update(NEWSAGG_DATA_DIR=str(tmp_path / "data"), NEWSAGG_SEARCH_BACKEND="elasticsearch",
               NEWSAGG_ES__INDEX_PREFIX="BAD")
    assert main(["--data-dir", str(tmp_path / "data"), "db", "upgrade"]) == 0
    done = subprocess.run([sys.executable, "-m", "pipeline", "serve", "--port", "0"], env=env, text=True,
                          capture_output=True, stdin=subprocess.DEVNULL, timeout=60)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "newsagg: error: es.index_prefix 'BAD' is not usable in index names: use lowercase " \
                          "letters, digits, '.', '_' or '-', starting with a letter or digit\n"


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_serve_on_a_port_that_cannot_exist_is_a_one_line_error(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["serve", "--port", port])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "argument --port: " in err and "Traceback" not in err


def test_a_listed_feed_that_cannot_be_checked_now_is_not_said_to_be_added_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text('fetch: {allowed_hosts: ["127.0.0.1:9"]}\n', encoding="utf-8")  # nothing listens on port 9
    url = "http://127.0.0.1:9/feed.xml"
    common = ["--config", str(config), "--data-dir", str(tmp_path / "data")]
    code, out, err = run_cli(capsys, *common, "feeds", "add", url)
    assert code == 0 and "added to" in out and f"could not check {url}" in err and "added as given" in err
    code, out, err = run_cli(capsys, *common, "feeds", "add", url)
    assert code == 0 and "already in" in out and f"could not check {url}" in err and "added" not in err
