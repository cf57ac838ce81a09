"""Storage faults, made for real: an unwritable search index, a read-only data directory, a full disk, a damaged store.

Each ends the same way: one clear line from the CLI naming the path, a non-zero exit, no
traceback, and once the fault is gone an intact store (``PRAGMA integrity_check``) and a
run that completes with nothing lost.

Root (a CI container) mounts a read-only bind mount and a small tmpfs; elsewhere the
permission bits and a file-size limit (RLIMIT_FSIZE) stand in, see faultkit.py.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from faultkit import can_mount, read_only, remount, tmpfs
from pipeline.cli import main
from pipeline.demo.run import write_demo_feeds
from pipeline.demo.server import CorpusServer
from pipeline.runner import Pipeline
from pipeline.search.sqlite import SqliteSearchIndex
from pipeline.settings import Settings, load_settings

MOUNTS = can_mount()


@pytest.fixture
def corpus(corpus_server: CorpusServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The demo corpus feed list; the environment lets the CLI reach only its server."""
    for name in [n for n in os.environ if n.startswith("NEWSAGG_")]:
        monkeypatch.delenv(name)
    for name, value in cli_env(corpus_server.base_url).items():
        monkeypatch.setenv(name, value)
    return write_demo_feeds(corpus_server.base_url, tmp_path / "feeds.yaml")


def cli_env(base_url: str) -> dict[str, str]:
    return {
        "NEWSAGG_FETCH__ALLOWED_HOSTS": json.dumps([base_url.removeprefix("http://")]),
        "NEWSAGG_FETCH__POLITENESS_DELAY": "0",
        "NEWSAGG_WORKERS": "1",
    }


def settings_for(data_dir: Path, feeds: Path) -> Settings:
    return load_settings(data_dir=data_dir, feeds_file=feeds)


def intact(data_dir: Path) -> None:
    """Both databases pass SQLite's integrity check."""
    for name in ("store.sqlite3", "search.sqlite3"):
        if (data_dir / name).exists():
            with sqlite3.connect(data_dir / name) as db:
                assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)], name


def complete(data_dir: Path, feeds: Path) -> None:
    """A run completes and everything of the demo corpus is stored and indexed."""
    with Pipeline(settings_for(data_dir, feeds)) as pipeline:
        report = pipeline.run(force=True)
        assert report.failed_feeds == [] and report.index_error is None and report.outbox_left == 0
        assert pipeline.store.article_count() == 49 and len(pipeline.store.cluster_ids()) == 26
        assert pipeline.store.entry_counts() == {"done": 49}
        index = pipeline.index
        assert isinstance(index, SqliteSearchIndex)
        assert index.document_counts() == {"stories": 26, "articles": 49}


def one_error_line(err: str, *expected: str) -> str:
    """The CLI's one error line. (pytest captures log records, so only what the CLI prints is here.)"""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and all(text in lines[0] for text in expected), lines[0]
    return lines[0]


def test_an_unwritable_search_index_keeps_the_outbox_until_a_later_run_delivers_it(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """The real condition: the index file cannot be written (a read-only mount, or no write permission)."""
    data = tmp_path / "data"
    SqliteSearchIndex(data / "search.sqlite3").setup()
    with read_only(data / "search.sqlite3"):
        assert main(["run", "--feeds", str(corpus), "--data-dir", str(data)]) == 1
        out, err = capsys.readouterr()
        assert "articles +49" in out and "stories 26 updated · indexed 0" in out and err == ""
        # The one error line is the run's log record (on standard error outside pytest).
        errors = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
        one_error_line(errors, "search index unavailable, 75 documents wait in the outbox",
                       f"search index {data / 'search.sqlite3'} cannot be written")
        with Pipeline(settings_for(data, corpus)) as pipeline:
            assert pipeline.store.outbox_size() == 75
            with pipeline.store.engine.connect() as conn:
                runs = conn.exec_driver_sql("SELECT status FROM runs").scalars().all()
            assert runs == ["partial"]
        # Searching still works while the index cannot be written.
        assert main(["search", "desalination", "--data-dir", str(data)]) == 0
        capsys.readouterr()

    # Writable again: the next run (nothing new to fetch) delivers what waited.
    assert main(["run", "--feeds", str(corpus), "--data-dir", str(data), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["articles_added"] == 0 and report["indexed"] == 75 and report["outbox_left"] == 0
    intact(data)
    complete(data, corpus)


def test_a_read_only_data_directory_is_one_clear_error_and_harms_nothing(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    assert main(["run", "--feeds", str(corpus), "--data-dir", str(data)]) == 0
    capsys.readouterr()
    with read_only(tmp_path):
        assert main(["run", "--force", "--feeds", str(corpus), "--data-dir", str(data)]) == 1
        one_error_line(capsys.readouterr().err, "newsagg: error:", str(data / "store.sqlite3"))
        # A data directory that does not exist yet cannot be created there either.
        assert main(["run", "--feeds", str(corpus), "--data-dir", str(tmp_path / "new")]) == 1
        one_error_line(capsys.readouterr().err, "newsagg: error: cannot create the data directory",
                       str(tmp_path / "new"))
        # Reading cannot work either: SQLite makes its -wal and -shm files beside a store even to
        # read it. Said so, not only SQLite's "unable to open database file".
        assert main(["feeds", "status", "--data-dir", str(data)]) == 1
        one_error_line(capsys.readouterr().err, str(data / "store.sqlite3"),
                       f"{data} is read-only, and SQLite writes its -wal and -shm files beside a database")
        assert main(["search", "desalination", "--data-dir", str(data)]) != 0
        one_error_line(capsys.readouterr().err, str(data / "search.sqlite3"), f"{data} is read-only")
    intact(data)
    complete(data, corpus)


def test_a_damaged_store_is_one_clear_error_naming_it(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What another program or a failing disk leaves: reading the store fails, in one line naming it."""
    data = tmp_path / "data"
    assert main(["run", "--feeds", str(corpus), "--data-dir", str(data)]) == 0
    capsys.readouterr()
    store = data / "store.sqlite3"
    whole = in_one_file(store)
    commands = [["clusters", "list"], ["export", "stories"], ["export", "articles"]]

    # Text that is not UTF-8, as a tool writing Latin-1 into the file leaves it.
    in_one_file(store, *(f"UPDATE {table} SET title = CAST(x'4e61ef7665' AS TEXT), text = title"
                         for table in ("articles", "stories")))
    for command in commands:
        assert main([*command, "--data-dir", str(data)]) == 1, command
        one_error_line(capsys.readouterr().err, "newsagg: error: cannot read the store", str(store), "UTF-8")

    zero_second_half(store, whole)
    for command in commands:
        assert main([*command, "--data-dir", str(data)]) == 1, command
        one_error_line(capsys.readouterr().err, "newsagg: error: cannot read the store", str(store), "malformed")


def test_a_damaged_search_index_is_one_clear_error_and_the_outbox_keeps_its_documents(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    assert main(["run", "--feeds", str(corpus), "--data-dir", str(data)]) == 0
    capsys.readouterr()
    index = data / "search.sqlite3"
    zero_second_half(index, in_one_file(index))

    assert main(["search", "desalination", "--data-dir", str(data)]) == 1
    one_error_line(capsys.readouterr().err, "newsagg: error:", str(index), "malformed")
    assert main(["outbox", "fill", "--data-dir", str(data)]) == 1
    one_error_line(capsys.readouterr().err, "newsagg: error:", str(index), "malformed")
    assert main(["outbox", "list", "--data-dir", str(data)]) == 0
    assert "75 documents wait" in capsys.readouterr().out  # none refused, none lost

    index.unlink()  # the remedy: a new index, filled from the store
    assert main(["outbox", "fill", "--data-dir", str(data)]) == 0
    capsys.readouterr()
    intact(data)
    complete(data, corpus)


def in_one_file(database: Path, *statements: str) -> bytes:
    """Run ``statements`` on a SQLite database and move all of it into its file (nothing left in the log); its bytes."""
    with sqlite3.connect(database) as db:
        for statement in statements:
            db.execute(statement)
    with sqlite3.connect(database) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return database.read_bytes()


def zero_second_half(database: Path, whole: bytes) -> None:
    """The pages of the file's second half read as zeros, as a failing disk returns them."""
    half = len(whole) // 2 // 4096 * 4096
    database.write_bytes(whole[:half] + bytes(len(whole) - half))


def run_cli(data: Path, feeds: Path, base_url: str, file_size_limit: int | None = None) -> subprocess.CompletedProcess[str]:
    """`newsagg run` as a process of its own (optionally under RLIMIT_FSIZE)."""

    def limit() -> None:
        if file_size_limit is not None:
            # Writes past the limit fail with EFBIG instead of killing the process.
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSAGG_")} | cli_env(base_url)
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "run", "--feeds", str(feeds), "--data-dir", str(data)],
        env=env, capture_output=True, text=True, timeout=120, preexec_fn=limit,
    )


@pytest.mark.parametrize("disk", ["tmpfs", "file-size-limit"])
def test_a_full_disk_mid_run_is_one_clear_error_and_the_store_survives(
    disk: str, corpus: Path, corpus_server: CorpusServer, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    if disk == "tmpfs":
        if not MOUNTS:
            pytest.skip("mounting a tmpfs needs root (the file-size-limit variant runs instead)")
        with tmpfs(data, "1m"):  # the store outgrows 1 MB while saving articles
            result = run_cli(data, corpus, corpus_server.base_url)
            assert result.returncode == 1, result.stderr
            one_error_line(result.stderr, "newsagg: error:", str(data / "store.sqlite3"), "disk is full")
            remount(data, "size=64m")
            intact(data)
            complete(data, corpus)
        return
    result = run_cli(data, corpus, corpus_server.base_url, file_size_limit=1_000_000)
    assert result.returncode == 1, result.stderr
    one_error_line(result.stderr, "newsagg: error:", str(data / "store.sqlite3"))
    intact(data)
    complete(data, corpus)


@pytest.mark.parametrize("disk", ["tmpfs", "file-size-limit"])
def test_output_onto_a_full_disk_is_one_clear_line_and_leaves_no_file(
    disk: str, corpus: Path, corpus_server: CorpusServer, tmp_path: Path
) -> None:
    """`export -o`, `dedup -o` and standard output redirected to a file, on a disk that fills up."""
    data = tmp_path / "data"
    assert run_cli(data, corpus, corpus_server.base_url).returncode == 0
    out = tmp_path / "out"
    if disk == "tmpfs":
        if not MOUNTS:
            pytest.skip("mounting a tmpfs needs root (the file-size-limit variant runs instead)")
        mounted = tmpfs(out, "16k")
        limit = None
    else:
        out.mkdir()
        mounted = contextlib.nullcontext(out)
        limit = 16_000  # the store's -shm file (32 KiB) is made before the limit applies: see below
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"id": str(n), "title": f"Title {n}", "text": f"Text number {n}. " * 40}) + "\n"
                             for n in range(2000)), encoding="utf-8")
    commands: list[tuple[list[str], Path | None, str]] = [
        (["export", "articles", "-o", str(out / "articles.jsonl")], None, f"cannot write {out / 'articles.jsonl'}"),
        (["dedup", str(pairs), "-o", str(out / "clusters.jsonl")], None, f"cannot write {out / 'clusters.jsonl'}"),
        (["export", "articles"], out / "stdout.jsonl", "cannot write standard output"),
        # Small enough to wait in the buffer until the command is done.
        (["runs", "list", "--json"], out / "runs.json", "cannot write standard output"),
    ]
    filled = ["filler"] * (disk == "tmpfs")
    with sqlite3.connect(data / "store.sqlite3") as db:
        db.execute("SELECT 1 FROM runs").fetchall()  # its -shm file, 32 KiB, is there before a command under a limit
    with mounted:
        if disk == "tmpfs":
            (out / "filler").write_bytes(b"x" * 12_000)  # some room: the first writes of a command succeed
        for command, stdout, expected in commands:
            if command[0] == "runs":  # no room at all
                if disk == "tmpfs":
                    filled.append("filled")
                    with contextlib.suppress(OSError), open(out / "filled", "wb") as filling:
                        filling.write(b"x" * 16_000)
                else:
                    limit = 0
            result = run_command([*command, "--data-dir", str(data)], stdout=stdout, file_size_limit=limit)
            assert result.returncode == 1, (command, result.stderr)
            one_error_line(result.stderr, "newsagg: error:", expected)
            assert "No space left on device" in result.stderr or "File too large" in result.stderr
            assert sorted(p.name for p in out.iterdir()) == sorted(
                filled + ([stdout.name] if stdout else [])), command  # no .partial file
            if stdout:
                stdout.unlink()


def run_command(argv: list[str], *, stdout: Path | None, file_size_limit: int | None) -> subprocess.CompletedProcess[str]:
    """``newsagg ARGV`` as a process of its own, its standard output into ``stdout`` (optionally under RLIMIT_FSIZE)."""

    def limit() -> None:
        if file_size_limit is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSAGG_")} | {"NEWSAGG_WORKERS": "1"}
    with open(stdout or os.devnull, "w") as output:
        return subprocess.run([sys.executable, "-m", "pipeline", *argv], env=env, stdout=output,
                              stderr=subprocess.PIPE, text=True, timeout=300, preexec_fn=limit)
