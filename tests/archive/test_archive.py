"""The raw page archive a run writes: WARC records of every page and feed, what the article rows point at,
rotation, the off switch, retention."""

from __future__ import annotations

import contextlib
import gzip
import logging
import multiprocessing
import multiprocessing.queues
import multiprocessing.synchronize
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from warcio.archiveiterator import ArchiveIterator

from faultkit import Web, article_html, can_mount, fault_settings, read_only, remount, rss, tmpfs, write_feed_list
from pipeline.archive import REQUESTED_URI, ArchiveWriter, read_page, scan_warc
from pipeline.maintenance import apply_retention
from pipeline.models import ArchiveRecord, Fetched, Validators
from pipeline.runner import Pipeline
from pipeline.settings import Settings
from pipeline.storage.schema import articles

PAGES = {
    "/news/harbour-cranes": article_html("Harbour cranes stand still", "harbour"),
    "/news/orchard-frost": article_html("Frost hits the orchards", "orchard"),
}


def _site(web: Web, tmp_path: Path, **overrides: object) -> Settings:
    """A feed of three links, one of them redirected (301) to its page."""
    tmp_path.mkdir(exist_ok=True)
    for path, html in PAGES.items():
        web.serve(path, html)
    web.serve("/news/old-tunnel-link", "", status=301, Location="/news/tunnel-opens")
    web.serve("/news/tunnel-opens", article_html("The tunnel opens", "tunnel"))
    links = [web.url("/news/harbour-cranes"), web.url("/news/orchard-frost"), web.url("/news/old-tunnel-link")]
    web.serve("/feed.xml", rss("Ledger", [(f"Story {n}", link, "A summary.") for n, link in enumerate(links)]),
              "application/rss+xml")
    return fault_settings(web, tmp_path, write_feed_list(tmp_path / "feeds.yaml", {"Ledger": web.url("/feed.xml")}),
                          **overrides)


def _records(directory: Path) -> list[dict[str, object]]:
    found = []
    for path in sorted(directory.glob("*.warc.gz")):
        with open(path, "rb") as file:
            for record in ArchiveIterator(file):
                http = record.http_headers
                found.append({
                    "file": path.name,
                    "type": record.rec_type,
                    "uri": record.rec_headers.get_header("WARC-Target-URI"),
                    "requested": record.rec_headers.get_header(REQUESTED_URI),
                    "date": record.rec_headers.get_header("WARC-Date"),
                    "concurrent": record.rec_headers.get_header("WARC-Concurrent-To"),
                    "id": record.rec_headers.get_header("WARC-Record-ID"),
                    "status": http.get_statuscode() if http is not None and record.rec_type == "response" else None,
                    "http": dict(http.headers) if http is not None else {},
                    "body": record.content_stream().read(),
                })
    return found


def _pointers(settings: Settings) -> dict[str, ArchiveRecord | None]:
    with Pipeline(settings) as pipeline, pipeline.store.engine.connect() as conn:
        rows = conn.execute(sa.select(articles.c.url, articles.c.warc_file, articles.c.warc_offset,
                                      articles.c.warc_length)).all()
    return {r.url: ArchiveRecord(r.warc_file, r.warc_offset, r.warc_length) if r.warc_file else None for r in rows}


def test_a_run_archives_every_page_and_feed_with_headers_final_url_and_time(web: Web, tmp_path: Path) -> None:
    settings = _site(web, tmp_path)
    before = datetime.now(UTC).replace(microsecond=0)
    with Pipeline(settings) as pipeline:
        report = pipeline.run()
    after = datetime.now(UTC)
    assert report.articles_added == 3

    directory = settings.data_dir / "archive"
    records = _records(directory)
    assert len({r["file"] for r in records}) == 1  # one process, one file
    assert records[0]["type"] == "warcinfo"
    responses = {r["uri"]: r for r in records if r["type"] == "response"}
    tunnel = web.url("/news/tunnel-opens")
    assert set(responses) == {web.url("/feed.xml"), web.url("/news/harbour-cranes"), web.url("/news/orchard-frost"),
                              tunnel}
    # The final URL after the redirect is the record's target; the URL asked for is kept beside it.
    assert responses[tunnel]["requested"] == web.url("/news/old-tunnel-link")
    assert responses[web.url("/news/harbour-cranes")]["body"] == PAGES["/news/harbour-cranes"].encode()
    feed = responses[web.url("/feed.xml")]
    assert feed["status"] == "200" and feed["http"]["content-type"] == "application/rss+xml"
    for response in responses.values():
        fetched_at = datetime.fromisoformat(str(response["date"]).replace("Z", "+00:00"))
        assert before <= fetched_at <= after
    requests = [r for r in records if r["type"] == "request"]
    assert {r["concurrent"] for r in requests} == {r["id"] for r in responses.values()}
    tunnel_request = next(r for r in requests if r["concurrent"] == responses[tunnel]["id"])
    assert tunnel_request["http"]["user-agent"] == settings.fetch.user_agent
    assert tunnel_request["http"]["host"] == f"127.0.0.1:{web.port}"

    # Each article row points at its page's response record, readable alone.
    pointers = _pointers(settings)
    entry = web.url("/news/old-tunnel-link")  # the article keeps the feed's URL
    assert set(pointers) == {web.url("/news/harbour-cranes"), web.url("/news/orchard-frost"), entry}
    for url, pointer in pointers.items():
        assert pointer is not None
        archived = read_page(directory, pointer)
        assert archived.page.requested_url == url
        assert before <= archived.fetched_at <= after
    tunnel_page = read_page(directory, pointers[entry])  # type: ignore[arg-type]
    assert tunnel_page.page.url == tunnel and b"The tunnel opens" in tunnel_page.page.body
    # gzip per record: the pointed bytes are one whole gzip member.
    pointer = pointers[web.url("/news/orchard-frost")]
    assert pointer is not None
    with open(directory / pointer.file, "rb") as file:
        file.seek(pointer.offset)
        record = gzip.decompress(file.read(pointer.length))
    assert record.startswith(b"WARC/1.0\r\n") and b"\r\nWARC-Type: response\r\n" in record


def test_files_rotate_by_size_and_every_pointer_still_reads(web: Web, tmp_path: Path) -> None:
    settings = _site(web, tmp_path, archive={"max_file_bytes": 1024})
    with Pipeline(settings) as pipeline:
        pipeline.run()
    directory = settings.data_dir / "archive"
    files = sorted(directory.glob("*.warc.gz"))
    assert len(files) == 4  # each document fills a file: feed + three pages
    assert all(len([r for r in _records(directory) if r["file"] == f.name and r["type"] == "response"]) == 1
               for f in files)
    for url, pointer in _pointers(settings).items():
        assert pointer is not None
        assert read_page(directory, pointer).page.requested_url == url


def test_the_archive_can_be_turned_off_or_moved(web: Web, tmp_path: Path) -> None:
    off = _site(web, tmp_path / "off", archive={"enabled": False})
    with Pipeline(off) as pipeline:
        assert pipeline.run().articles_added == 3
    assert not (off.data_dir / "archive").exists()
    assert set(_pointers(off).values()) == {None}

    elsewhere = tmp_path / "warcs"
    moved = _site(web, tmp_path / "moved", archive={"directory": str(elsewhere)})
    with Pipeline(moved) as pipeline:
        pipeline.run()
    assert not (moved.data_dir / "archive").exists()
    assert len(list(elsewhere.glob("*.warc.gz"))) == 1
    assert all(p is not None and read_page(elsewhere, p) for p in _pointers(moved).values())


@pytest.mark.parametrize("retention", [
    # The stories were last seen on 2 November (the feed's dates): retention on 30 November keeps
    # them, and deletes the WARC file last written on 1 October, not those written on 29 November.
    {"story_retention_days": 30},
    # Without story retention the archive grew for good: a deployment keeping its stories for
    # years can keep their pages for a month.
    {"archive": {"retention_days": 30}},
])
def test_retention_deletes_old_warc_files_and_the_pointers_into_them(
    retention: dict[str, dict[str, int] | int], web: Web, tmp_path: Path
) -> None:
    archive = retention.get("archive", {})
    assert isinstance(archive, dict)
    settings = _site(web, tmp_path, **{**retention, "archive": {"max_file_bytes": 1024, **archive}})
    with Pipeline(settings) as pipeline:
        pipeline.run()
    directory = settings.data_dir / "archive"
    pointers = _pointers(settings)
    old_page = pointers[web.url("/news/harbour-cranes")]
    assert old_page is not None
    for path in directory.glob("*.warc.gz"):
        day = datetime(2026, 10, 1, tzinfo=UTC) if path.name == old_page.file else datetime(2026, 11, 29, tzinfo=UTC)
        os.utime(path, (day.timestamp(), day.timestamp()))

    with Pipeline(settings) as pipeline:
        stories = pipeline.store.counts().stories
        result = apply_retention(pipeline.store, settings, now=datetime(2026, 11, 30, tzinfo=UTC))
        assert (result.stories_pruned, pipeline.store.counts().stories) == (0, stories)
    assert result.archive_files_deleted == 1 and result.archive_cutoff == datetime(2026, 10, 31, tzinfo=UTC)
    assert not (directory / old_page.file).exists()
    assert len(list(directory.glob("*.warc.gz"))) == 3
    after = _pointers(settings)
    assert after[web.url("/news/harbour-cranes")] is None  # the article stays, without its page
    assert after[web.url("/news/orchard-frost")] == pointers[web.url("/news/orchard-frost")]


@pytest.fixture
def unwritable_archive(web: Web, tmp_path: Path) -> Iterator[Settings]:
    """The site's settings, with an archive directory this process cannot write to."""
    directory = tmp_path / "warcs"
    directory.mkdir()
    with read_only(directory):
        yield _site(web, tmp_path, archive={"directory": str(directory)})


def _archive_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "archive" in r.getMessage()]


def test_an_archive_that_cannot_be_written_costs_the_archive_copies_not_the_articles(
    web: Web, unwritable_archive: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with Pipeline(unwritable_archive) as pipeline:
        assert pipeline.run().articles_added == 3
    assert set(_pointers(unwritable_archive).values()) == {None}
    # One warning for the first document and one count at the end, not a line per document:
    # a full disk under a big run would otherwise write one for every page.
    warnings = _archive_warnings(caplog)
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith(f"cannot archive {web.url('/feed.xml')}: ")
    assert re.fullmatch(r"the archive refused 4 documents of this run: .*(Read-only file system|Permission denied).*",
                        warnings[1]), warnings


def test_a_dag_task_the_archive_refuses_counts_its_refusals_when_it_ends(
    web: Web, unwritable_archive: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with Pipeline(unwritable_archive) as pipeline:
        with pipeline.airflow_stage("poll_feeds", "manual__1"):
            pipeline.poll_feeds(pipeline.due_feeds(pipeline.load_feeds()))
        with pipeline.airflow_stage("fetch_articles", "manual__1"):
            assert pipeline.fetch_articles()[0] == 3
    warnings = _archive_warnings(caplog)
    # Each task (a process of its own under Airflow) says its first refusal and, at its end, how many.
    assert len(warnings) == 3, warnings
    assert warnings[0].startswith(f"cannot archive {web.url('/feed.xml')}: ")
    assert warnings[1].startswith(f"cannot archive {web.url('/news/')}")
    assert re.fullmatch(r"the archive refused 3 documents of this run: .*", warnings[2]), warnings


def _write_pages(directory: str, writer_no: int, pages: int, start: multiprocessing.synchronize.Barrier,
                 pointers: multiprocessing.queues.Queue[tuple[str, ArchiveRecord]]) -> None:
    writer = ArchiveWriter(Path(directory), max_file_bytes=50 * 1024 * 1024)
    start.wait(timeout=60)
    for n in range(pages):
        url = f"https://outlet{writer_no}.example/news/{n}"
        page = Fetched(url, url, 200, f"<html><p>writer {writer_no} page {n}</p></html>".encode(), "text/html",
                       Validators())
        pointers.put((url, writer.write(page, datetime.now(UTC))))


def test_processes_writing_at_once_share_the_hours_file_and_every_record_reads_back(tmp_path: Path) -> None:
    # Airflow runs each task in a process of its own: a file per process left thousands of
    # small files a day. Writers on one host append to the file of the hour, one record at a time.
    first_hour = datetime.now(UTC).strftime("%Y%m%d%H")
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Barrier(3)
    pointers: multiprocessing.queues.Queue[tuple[str, ArchiveRecord]] = spawn.Queue()
    writers = [spawn.Process(target=_write_pages, args=(str(tmp_path), n, 40, start, pointers)) for n in range(3)]
    for writer in writers:
        writer.start()
    written = [pointers.get(timeout=120) for _ in range(3 * 40)]
    for writer in writers:
        writer.join(timeout=60)
    assert [w.exitcode for w in writers] == [0, 0, 0]
    hours = {first_hour, datetime.now(UTC).strftime("%Y%m%d%H")}
    assert 1 <= len(list(tmp_path.glob("*.warc.gz"))) <= len(hours)  # one file (two if the hour turned meanwhile)
    for url, pointer in written:
        page = read_page(tmp_path, pointer).page
        assert page.url == url and page.body.endswith(f"page {url.rsplit('/', 1)[1]}</p></html>".encode())
    responses = [r for r in _records(tmp_path) if r["type"] == "response"]
    assert len(responses) == 120 and sum(r["type"] == "warcinfo" for r in _records(tmp_path)) == len(
        list(tmp_path.glob("*.warc.gz")))


def test_a_child_forked_while_a_page_is_written_does_not_hold_up_the_next_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A worker forked while the download thread appended (a pool restarted mid-run) kept a copy
    # of the file's descriptor: had the lock belonged to the open file, it would have held it,
    # and every later write of the run would have waited for that worker forever.
    import pipeline.archive as archive

    children: list[int] = []
    real = archive._warcinfo

    def forking(name: str) -> bytes:  # called under the lock, when the hour's file is new
        pid = os.fork()
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        children.append(pid)
        return real(name)

    monkeypatch.setattr(archive, "_warcinfo", forking)
    writer = ArchiveWriter(tmp_path, max_file_bytes=50 * 1024 * 1024)
    page = Fetched("https://ledger.example/a", "https://ledger.example/a", 200, b"<p>a</p>", "text/html", Validators())
    try:
        writer.write(page, datetime.now(UTC))
        second = threading.Thread(target=writer.write, args=(page, datetime.now(UTC)), daemon=True)
        second.start()
        second.join(timeout=10)
        assert not second.is_alive(), "the second write waited for the forked child"
    finally:
        for pid in children:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def _fill_then_free(directory: str, file_size_limit: int | None,
                    results: multiprocessing.queues.Queue[tuple[list[tuple[str, ArchiveRecord]], str]]) -> None:
    """Archive pages into ``directory`` until ten failed for a full disk, then (room again) three more; sends the pointers.

    Full is a tmpfs at ``directory`` (remounted larger for the room), or a file-size limit (raised).
    """
    import resource

    if file_size_limit is not None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail (EFBIG) instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, resource.RLIM_INFINITY))
    writer = ArchiveWriter(Path(directory), max_file_bytes=50 * 1024 * 1024)
    html = {"Content-Type": "text/html"}
    written, errors = [], []
    for n in range(1000):
        url = f"https://ledger.example/news/{n}"
        # Bodies that do not compress much, of a few sizes around the writer's buffer (8 KiB).
        body = b"<p>" + os.urandom(1000 + 1500 * (n % 5)).hex().encode() + b"</p>"
        try:
            written.append((url, writer.write(Fetched(url, url, 200, body, "text/html", Validators(), html),
                                              datetime.now(UTC))))
        except OSError as exc:
            errors.append(str(exc))
            if len(errors) == 10:  # as a run's next pages try, each
                break
    if file_size_limit is not None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    else:
        remount(Path(directory), "size=4m")
    for n in range(1000, 1003):
        url = f"https://ledger.example/news/{n}"
        page = Fetched(url, url, 200, f"<p>page {n}</p>".encode(), "text/html", Validators(), html)
        written.append((url, writer.write(page, datetime.now(UTC))))
    results.put((written, errors[0] if errors else ""))


@pytest.mark.parametrize("disk", ["tmpfs", "file-size-limit"])
def test_a_full_disk_leaves_no_part_of_a_record_and_the_next_records_follow_whole_ones(
    disk: str, tmp_path: Path
) -> None:
    # The record that did not fit was half written, and the writer's attempt to cut it off
    # failed on the same full disk (a buffered file flushes before it truncates): the next
    # records followed that half, which tools reading the file whole (warcio, import-warc)
    # trip over.
    directory = tmp_path / "warcs"
    spawn = multiprocessing.get_context("spawn")
    results: multiprocessing.queues.Queue[tuple[list[tuple[str, ArchiveRecord]], str]] = spawn.Queue()
    if disk == "tmpfs":
        if not can_mount():
            pytest.skip("mounting a tmpfs needs root (the file-size-limit variant runs instead)")
        mounted = tmpfs(directory, "64k")
        args: tuple[str, int | None] = (str(directory), None)
    else:
        mounted = contextlib.nullcontext(directory)
        directory.mkdir()
        args = (str(directory), 60_000)
    with mounted:
        writer = spawn.Process(target=_fill_then_free, args=(*args, results))
        writer.start()
        written, error = results.get(timeout=120)
        writer.join(timeout=60)
        assert writer.exitcode == 0
        assert "No space left on device" in error or "File too large" in error, error
        assert 5 < len(written) < 40
        (warc,) = directory.glob("*.warc.gz")
        scanned = list(scan_warc(warc, max_bytes=1 << 20))
        assert [record.skipped for record in scanned if record.skipped not in (None, "warcinfo record", "request record")] == []
        assert [record.page.page.url for record in scanned if record.page is not None] == [url for url, _ in written]
        assert scanned[-1].end == warc.stat().st_size
        for url, pointer in written:
            assert read_page(directory, pointer).page.url == url
