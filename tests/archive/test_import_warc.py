"""`newsagg import-warc`: WARC files of other writers (CC-NEWS style) and of our own runs become articles,
clusters, stories and an index; damaged and non-page records cost themselves only; a killed import resumes."""

from __future__ import annotations

import gzip
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import zlib
from collections.abc import Iterable
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import pytest
from demo_truth import clusters_in, expected_clusters
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from faultkit import article_html
from pipeline.archive import scan_warc
from pipeline.backfill import FILE_KEY_BYTES, import_warc, reextract
from pipeline.cli import main
from pipeline.demo.server import CorpusServer
from pipeline.feeds import load_feed_list
from pipeline.runner import Pipeline
from pipeline.settings import Settings, load_settings
from services import postgres_database

FIXTURE = Path(__file__).resolve().parent.parent / "data" / "cc-news-style.warc.gz"


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    fields = {"search_backend": "sqlite", "workers": 1, **overrides}
    return load_settings(data_dir=tmp_path / "data", **fields)


Response = tuple[str, int, str, bytes]  # url, status, content type, body


def _write_warc(path: Path, responses: Iterable[Response], *, others: bool = False,
                date: str = "2026-11-02T08:00:00Z") -> Path:
    """A gzip-per-record WARC file of these responses, written with warcio; ``others`` adds non-HTTP records."""
    with open(path, "wb") as file:
        writer = WARCWriter(file, gzip=True)
        writer.write_record(writer.create_warcinfo_record(path.name, {"software": "test"}))
        if others:
            writer.write_record(writer.create_warc_record(
                "dns:news.example", "resource", payload=io.BytesIO(b"news.example. 300 IN A 192.0.2.1\n"),
                warc_content_type="text/dns", length=33))
            writer.write_record(writer.create_warc_record(
                "https://news.example/", "metadata", payload=io.BytesIO(b"via: https://news.example/\n"),
                warc_content_type="application/warc-fields", length=27))
        for url, status, content_type, body in responses:
            headers = StatusAndHeaders(f"{status} X", [("Content-Type", content_type)], protocol="HTTP/1.1")
            writer.write_record(writer.create_warc_record(
                url, "response", payload=io.BytesIO(body), length=len(body), http_headers=headers,
                warc_headers_dict={"WARC-Date": date}))
            if others:
                writer.write_record(writer.create_warc_record(
                    url, "request", payload=io.BytesIO(b""), length=0,
                    http_headers=StatusAndHeaders("GET / HTTP/1.1", [("Host", "x")], is_http_request=True)))
    return path


def _page(n: int, topic: str = "harbour") -> Response:
    return (f"https://www.site{n}.example/news/{topic}-{n}.html", 200, "text/html; charset=utf-8",
            article_html(f"The {topic} story number {n}", f"{topic}{n}").encode())


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_cc_news_style_file_from_another_writer_becomes_articles_and_stories(backend: str, tmp_path: Path) -> None:
    with ExitStack() as stack:
        store_url = stack.enter_context(postgres_database()) if backend == "postgresql" else None
        pipeline = stack.enter_context(Pipeline(_settings(tmp_path, store_url=store_url)))
        report = import_warc(pipeline, [FIXTURE])
        assert (report.records, report.pages, report.articles_added, report.failed) == (7, 3, 3, 0)
        assert dict(report.skipped) == {"warcinfo record": 1, "HTTP status": 2, "not a page": 1}
        assert report.settled.clustered == 3 and report.settled.index_error is None
        articles = {a.url: (a, cluster) for a, _, cluster in pipeline.store.iter_articles()}
        harbour = articles["https://www.harbour-news.example/2026/11/02/port-strike-ends.html"]
        coastal = articles["https://news.coastal-times.example/local/valmora-port-strike"]
        lawine = articles["https://www.bergblatt.example/artikel/lawine-bergried.html"]
        # The outlet is the URL's registrable domain (".example" is no public suffix: the whole host).
        assert (harbour[0].outlet, coastal[0].outlet, lawine[0].outlet) == (
            "www.harbour-news.example", "news.coastal-times.example", "www.bergblatt.example")
        assert harbour[1] == coastal[1] != lawine[1]  # the two reports of the strike are one story
        assert "café owners" in coastal[0].text  # ISO-8859-1, as its Content-Type says
        assert lawine[0].language == "de" and lawine[0].feed_id is None
        assert harbour[0].fetched_at == datetime(2026, 11, 2, 8, 1, 12, tzinfo=UTC)  # its WARC-Date
        story = pipeline.store.story(pipeline.store.resolve_cluster(harbour[1] or ""))
        assert story is not None and story.outlet_count == 2

        again = import_warc(pipeline, [FIXTURE])  # imported to its end: skipped
        assert (again.files_done_before, again.records, again.articles_added) == (1, 0, 0)
        # Imported articles point at their records, so reextract reads them too (and finds nothing new).
        assert reextract(pipeline).examined == 3 and reextract(pipeline).changed == 0


def test_non_http_records_filters_and_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pages = [_page(1), _page(2, "orchard"), ("https://www.site3.example/doc.pdf", 200, "application/pdf", b"%PDF-1.4")]
    _write_warc(tmp_path / "a.warc.gz", pages, others=True)
    _write_warc(tmp_path / "b.warc.gz", [_page(4, "tunnel")], date="2026-12-01T00:00:00Z")
    config = tmp_path / "settings.yaml"
    config.write_text(json.dumps({"search_backend": "sqlite", "workers": 1}), encoding="utf-8")
    common = ["--config", str(config), "--data-dir", str(tmp_path / "data")]

    assert main(["import-warc", *common, "--json", "--until", "2026-11-30", str(tmp_path / "*.warc.gz")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["files"], report["pages"], report["articles_added"]) == (2, 2, 2)
    assert report["skipped"] == {"warcinfo record": 2, "resource record": 1, "metadata record": 1,
                                 "request record": 3, "not a page": 1, "outside --since/--until": 1}
    assert main(["import-warc", *common, "--until", "2026-11-30", str(tmp_path / "b.warc.gz")]) == 0  # done before
    assert "1 file (1 imported before)" in capsys.readouterr().out
    # Under other filters a file is read again: the page --until left out is imported now, nothing twice.
    assert main(["import-warc", *common, "--json", str(tmp_path / "*.warc.gz")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["files_done_before"], report["pages"], report["articles_added"]) == (0, 3, 1)
    assert main(["import-warc", *common, "--json", str(tmp_path / "*.warc.gz")]) == 0
    assert json.loads(capsys.readouterr().out)["files_done_before"] == 2

    assert main(["import-warc", *common, str(tmp_path / "missing-*.warc.gz")]) == 2
    assert "no WARC file matches" in capsys.readouterr().err
    (tmp_path / "crawl.warc").mkdir()  # a directory, named or matched, is no WARC file
    for pattern in (tmp_path / "crawl.warc", tmp_path / "*.warc"):
        assert main(["import-warc", *common, str(pattern)]) == 2
        assert f"no WARC file matches {pattern}" in capsys.readouterr().err


def test_truncated_and_damaged_records_cost_only_themselves(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _write_warc(tmp_path / "damaged.warc.gz", [_page(n, topic) for n, topic in
                                                       enumerate(["harbour", "orchard", "tunnel", "bridge"])])
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data)) if data[i:i + 3] == b"\x1f\x8b\x08"]
    second = starts[2]  # warcinfo, page 0, page 1 ...
    data[second + 30:second + 60] = b"x" * 30  # page 1's gzip member is garbage
    path.write_bytes(bytes(data[:starts[4] + (len(data) - starts[4]) // 2]))  # page 3 is cut in half

    with Pipeline(_settings(tmp_path)) as pipeline:
        report = import_warc(pipeline, [path])
        assert report.articles_added == 2  # pages 0 and 2
        assert (report.skipped["unreadable record"], report.skipped["truncated record"]) == (1, 1)
        assert f"{path}@{starts[4]}: skipped: truncated record" in caplog.text  # where, for whoever looks
        assert {a.title for a, _, _ in pipeline.store.iter_articles()} == {
            "The harbour story number 0", "The tunnel story number 2"}


def _cut_in_warc_headers(data: bytes, start: int, after: bytes, before: bytes) -> int:
    """A length of ``data`` that ends the record at ``start`` inside its WARC headers, between ``after`` and ``before``."""
    for end in range(start + 10, len(data)):
        head = zlib.decompressobj(31).decompress(data[start:end])
        if after in head:
            assert before not in head
            return end
    raise AssertionError(f"no {after!r} in the record")


def test_a_file_cut_inside_a_records_warc_headers_costs_that_record(tmp_path: Path) -> None:
    # A download or copy cut off anywhere: also inside a header block, which warcio did not survive
    # (AttributeError: 'NoneType' object has no attribute 'startswith', a traceback and no import).
    path = _write_warc(tmp_path / "cut.warc.gz", [_page(n, topic) for n, topic in
                                                  enumerate(["harbour", "orchard", "tunnel"])])
    data = path.read_bytes()
    starts = [i for i in range(len(data)) if data[i:i + 3] == b"\x1f\x8b\x08"]
    cuts = {
        "gzip header": starts[3] + 5,  # no byte of the record can be read
        "before WARC-Type": _cut_in_warc_headers(data, starts[3], b"WARC/1.0\r\n", b"WARC-Type"),
        "before WARC-Target-URI": _cut_in_warc_headers(data, starts[3], b"WARC-Type: response\r\n", b"WARC-Target"),
    }
    for name, end in cuts.items():
        cut = tmp_path / "cut-here.warc.gz"
        cut.write_bytes(data[:end])
        with Pipeline(_settings(tmp_path / name.replace(" ", "-"))) as pipeline:
            report = import_warc(pipeline, [cut])
            assert (name, report.articles_added, dict(report.skipped)) == (
                name, 2, {"warcinfo record": 1, "truncated record": 1})


def test_a_file_imported_while_cut_short_is_read_on_when_it_is_whole(tmp_path: Path) -> None:
    # A download that stopped, imported before it was fetched again whole: the records after the cut
    # were skipped as "imported before" and lost.
    topics = ["harbour", "orchard", "tunnel", "bridge", "market", "school"]
    whole = _write_warc(tmp_path / "whole.warc.gz", [_page(n, topics[n % 6]) for n in range(120)])
    data = whole.read_bytes()
    last = data.rindex(b"\x1f\x8b\x08")
    path = tmp_path / "crawl.warc.gz"
    path.write_bytes(data[:last + (len(data) - last) // 2])  # the last page is cut in half
    assert last > FILE_KEY_BYTES  # the file is known by its first bytes, which the cut leaves as they were
    with Pipeline(_settings(tmp_path)) as pipeline:
        first = import_warc(pipeline, [path])
        assert (first.articles_added, first.skipped["truncated record"]) == (119, 1)
        assert import_warc(pipeline, [path]).articles_added == 0  # still cut short: nothing new
        path.write_bytes(data)
        again = import_warc(pipeline, [path])
        assert (again.files_done_before, again.records, again.articles_added) == (0, 1, 1)  # from the cut record on
        assert import_warc(pipeline, [path]).files_done_before == 1
        assert len({a.url for a, _, _ in pipeline.store.iter_articles()}) == 120


def test_a_file_that_is_no_warc_at_all_is_not_imported_and_said_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Not one unreadable record of a WARC file, with exit status 0: the wrong file.
    text, gzipped = tmp_path / "notes.warc.gz", tmp_path / "log.warc.gz"
    text.write_text("hello\n")
    gzipped.write_bytes(gzip.compress(b"2026-11-02 08:00 started\n"))
    damaged = _write_warc(tmp_path / "pages.warc.gz", [_page(1), _page(2, "orchard")])
    data = bytearray(damaged.read_bytes())
    starts = [i for i in range(len(data)) if data[i:i + 3] == b"\x1f\x8b\x08"]
    data[starts[1] + 30:starts[1] + 60] = b"x" * 30  # page 1's record is garbage, page 2's is whole
    damaged.write_bytes(bytes(data))
    config = tmp_path / "settings.yaml"
    config.write_text(json.dumps({"search_backend": "sqlite", "workers": 1}), encoding="utf-8")

    code = main(["import-warc", "--config", str(config), "--data-dir", str(tmp_path / "data"),
                 str(text), str(gzipped), str(damaged)])
    out, err = capsys.readouterr()
    assert code == 1
    assert "3 files" in out and "articles +1" in out and "1 unreadable record" in out
    assert [line for line in err.splitlines() if line.startswith("newsagg:")] == [
        f"newsagg: not imported: {text}: not a WARC file (its first record does not start with 'WARC/')",
        f"newsagg: not imported: {gzipped}: not a WARC file (its first record does not start with 'WARC/')",
    ]


def test_the_command_given_a_file_that_is_no_warc_says_so_in_one_line_naming_it(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hello, no WARC file\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSAGG_")}
    env.update(NEWSAGG_DATA_DIR=str(tmp_path / "data"), NEWSAGG_SEARCH_BACKEND="sqlite", NEWSAGG_WORKERS="1")

    done = subprocess.run([sys.executable, "-m", "pipeline", "import-warc", str(notes)], env=env, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=120)

    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"newsagg: not imported: {notes}: not a WARC file (its first record does not start with 'WARC/')"]


def test_plain_warc_files_resume_and_whole_file_gzip_is_refused_clearly(tmp_path: Path) -> None:
    written = _write_warc(tmp_path / "pages.warc.gz", [_page(n, topic) for n, topic in
                                                       enumerate(["harbour", "orchard", "tunnel"])])
    plain = tmp_path / "plain.warc"
    plain.write_bytes(gzip.decompress(written.read_bytes()))
    whole = tmp_path / "whole.warc.gz"
    whole.write_bytes(gzip.compress(plain.read_bytes()))
    first = list(scan_warc(plain, max_bytes=1 << 20))
    assert [r.skipped for r in first] == ["warcinfo record", None, None, None]
    # Going on from where a record ended (what an import records) reads the records after it.
    assert [r.page and r.page.page.url for r in scan_warc(plain, first[2].end, max_bytes=1 << 20)] == [
        first[3].page and first[3].page.page.url]

    with Pipeline(_settings(tmp_path)) as pipeline:
        report = import_warc(pipeline, [whole, plain])
        assert report.articles_added == 3
        assert import_warc(pipeline, [plain]).files_done_before == 1  # the blank lines after its last record are no more
    assert len(report.files_failed) == 1 and "compressed as one gzip stream" in report.files_failed[0]


def test_a_killed_import_resumes_where_it_stopped_and_stores_nothing_twice(tmp_path: Path) -> None:
    topics = ["harbour", "orchard", "tunnel", "bridge", "market", "school"]
    path = _write_warc(tmp_path / "big.warc.gz", [_page(n, topics[n % 6]) for n in range(160)])
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSAGG_")}
    env.update(NEWSAGG_DATA_DIR=str(tmp_path / "data"), NEWSAGG_SEARCH_BACKEND="sqlite",
               NEWSAGG_WORKERS="1", NEWSAGG_EXTRACTION__BATCH_SIZE="4")
    command = [sys.executable, "-m", "pipeline", "import-warc", "--json", str(path)]
    proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    store = tmp_path / "data" / "store.sqlite3"

    def imported() -> int:
        try:
            with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=1) as conn:
                return int(conn.execute("SELECT count(*) FROM articles").fetchone()[0])
        except sqlite3.Error:
            return 0

    deadline = time.monotonic() + 60
    while imported() < 30 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert proc.poll() is None, "the import ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = imported()
    assert 30 <= killed_at < 160

    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=True)
    report = json.loads(done.stdout)
    assert report["records"] < 161  # it went on from where it stopped, not from the start
    assert report["articles_added"] == 160 - killed_at
    with sqlite3.connect(store) as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT url) FROM articles").fetchone() == (160, 160)
        assert conn.execute("SELECT count(*) FROM memberships").fetchone() == (160,)


def test_importing_the_archive_of_the_demo_run_gives_the_demo_stories_again(
    corpus_server: CorpusServer, demo_settings: Settings, tmp_path: Path
) -> None:
    base = corpus_server.base_url
    with Pipeline(demo_settings) as pipeline:
        pipeline.run(force=True)
        assert clusters_in(pipeline.store) == expected_clusters(base)
    archive = sorted((demo_settings.data_dir / "archive").glob("*.warc.gz"))
    assert archive

    elsewhere = demo_settings.model_copy(update={"data_dir": tmp_path / "imported"})
    with Pipeline(elsewhere) as pipeline:
        report = import_warc(pipeline, archive)
        # The feed documents in the archive give the pages their feeds' outlets and texts, as in the run.
        assert report.failed == 0 and report.feeds == len(load_feed_list(demo_settings.resolved_feeds_file))
        assert clusters_in(pipeline.store) == expected_clusters(base)
