"""A run killed with SIGKILL at any point, then run again, ends exactly where an uninterrupted run ends.

`newsagg run` runs as a child process over the demo corpus. Nothing in the library knows
about this test: the harness freezes the child (SIGSTOP) every couple of milliseconds of
its progress, reads the store and the search index as any reader may (WAL), and when
they show the stage it wants, kills the child's whole process group with SIGKILL while it
is frozen, so the state it was killed in is exactly the state read. Each kill point is
then resumed with an ordinary run and compared with a clean, uninterrupted one: same
articles, same clusters (as sets of article ids), same stories, same index document
counts, nothing left in the outbox.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from pipeline.demo.run import demo_settings, write_demo_feeds
from pipeline.demo.server import CorpusServer
from pipeline.runner import Pipeline
from pipeline.search.sqlite import SqliteSearchIndex
from pipeline.settings import Settings
from pipeline.storage.schema import articles

# Small batches so fetching has intermediate states; extraction in-process for speed.
TUNING = {"workers": 1, "extraction": {"batch_size": 10}}


@dataclass(frozen=True)
class Snapshot:
    """What a reader sees of a run's progress."""

    feeds: int
    polled: int
    entries: int
    articles: int
    members: int
    stories: int
    outbox: int
    indexed: int


STAGES: dict[str, Callable[[Snapshot], bool]] = {
    "polling": lambda s: 0 < s.polled < s.feeds,
    "fetching": lambda s: s.polled == s.feeds and 0 < s.articles < s.entries,
    "clustering": lambda s: s.entries > 0 and s.articles == s.entries and s.members == 0,
    "stories": lambda s: s.members == s.articles > 0 and s.stories == 0,
    "indexing": lambda s: s.stories > 0 and s.outbox > 0,  # stories saved, the outbox not yet delivered
}
ATTEMPTS = 3  # a heavily loaded machine may let the run slip past a short stage between two looks


def progress(s: Snapshot) -> int:
    """How far a run is: the index in STAGES of the stage it is in or has just left (5: done)."""
    if s.feeds == 0 or s.polled < s.feeds:
        return 0
    if s.articles < s.entries:
        return 1
    if s.members == 0:
        return 2
    if s.stories == 0:
        return 3
    return 4 if s.outbox else 5


def snapshot(data_dir: Path) -> Snapshot | None:
    """Counts read from the store and the search index, or None while they cannot be read yet."""
    def count(db: sqlite3.Connection, sql: str) -> int:
        return int(db.execute(sql).fetchone()[0])

    try:
        db = sqlite3.connect(f"file:{data_dir / 'store.sqlite3'}?mode=ro", uri=True, timeout=0.05)
        try:
            counts = [count(db, sql) for sql in (
                "SELECT count(*) FROM feeds", "SELECT count(*) FROM feeds WHERE last_attempt_at IS NOT NULL",
                "SELECT count(*) FROM entries", "SELECT count(*) FROM articles", "SELECT count(*) FROM memberships",
                "SELECT count(*) FROM stories", "SELECT count(*) FROM outbox")]
        finally:
            db.close()
        indexed = 0
        if (data_dir / "search.sqlite3").exists():
            index = sqlite3.connect(f"file:{data_dir / 'search.sqlite3'}?mode=ro", uri=True, timeout=0.05)
            try:
                indexed = count(index, "SELECT (SELECT count(*) FROM stories) + (SELECT count(*) FROM articles)")
            except sqlite3.OperationalError:  # tables not created yet
                indexed = 0
            finally:
                index.close()
    except sqlite3.Error:
        return None
    return Snapshot(*counts, indexed)


def wait_stopped(pid: int) -> None:
    """Wait until the kernel reports ``pid`` stopped (SIGSTOP is delivered asynchronously) or gone."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return
        if state in ("T", "t", "Z", "X"):
            return
        time.sleep(0.0005)
    raise AssertionError(f"process {pid} did not stop")


def kill_during(stage: str, data_dir: Path, feeds_file: Path, base_url: str) -> tuple[Snapshot, Snapshot]:
    """Kill a run during ``stage`` (trying again in a fresh directory if it slipped past); see ``kill_once``."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return kill_once(stage, data_dir, feeds_file, base_url)
        except Missed:
            if attempt == ATTEMPTS:
                raise
            shutil.rmtree(data_dir)
    raise AssertionError("unreachable")


class Missed(AssertionError):
    """The run left the stage before the harness looked."""


def kill_once(stage: str, data_dir: Path, feeds_file: Path, base_url: str) -> tuple[Snapshot, Snapshot]:
    """Run `newsagg run` in a child, SIGKILL it once a reader sees ``stage``; (state seen, state after the kill)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSAGG_")}
    env.update({
        "NEWSAGG_FETCH__ALLOWED_HOSTS": f'["{base_url.removeprefix("http://")}"]',
        "NEWSAGG_FETCH__POLITENESS_DELAY": "0",
        "NEWSAGG_WORKERS": "1",
        "NEWSAGG_EXTRACTION__BATCH_SIZE": "10",
    })
    command = [sys.executable, "-m", "pipeline", "--data-dir", str(data_dir), "run", "--force",
               "--feeds", str(feeds_file)]
    child = subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    group = child.pid  # start_new_session: the child leads its own process group

    def signal_group(sig: signal.Signals) -> None:
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            pass

    try:
        while not (data_dir / "store.sqlite3").exists():
            assert child.poll() is None, f"run ended before opening its store: {child.stderr.read()!r}"  # type: ignore[union-attr]
            time.sleep(0.005)
        while True:
            signal_group(signal.SIGSTOP)
            wait_stopped(child.pid)
            seen = snapshot(data_dir)
            if seen is not None and STAGES[stage](seen):
                signal_group(signal.SIGKILL)
                child.wait(10)
                break
            if seen is not None and progress(seen) > list(STAGES).index(stage):
                raise Missed(f"the run left {stage} before a reader saw it; seen {seen}")
            signal_group(signal.SIGCONT)
            if child.poll() is not None:
                raise Missed(f"the run ended before a reader saw it {stage}; last seen {seen}")
            # Tiny steps once the run is near the stage wanted, larger ones before.
            near = seen is None or progress(seen) >= list(STAGES).index(stage) - 1
            time.sleep(0.0005 if near else 0.02)
    finally:
        if child.poll() is None:
            signal_group(signal.SIGKILL)
            child.wait(10)
        assert child.stderr is not None
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    after = snapshot(data_dir)
    assert after is not None
    return seen, after


def outcome(settings: Settings) -> dict[str, Any]:
    """Everything a finished run leaves behind that must not depend on interruptions."""
    with Pipeline(settings) as pipeline:
        store = pipeline.store
        with store.engine.connect() as conn:
            ids = list(conn.execute(sa.select(articles.c.id)).scalars())
        found = store.articles_by_id(ids)
        groups: dict[str, set[str]] = defaultdict(set)
        for cluster_id in store.cluster_ids():
            groups[cluster_id] = {m.article_id for m in store.memberships_of(cluster_id)}
        stories = store.stories_by_id(groups)
        index = pipeline.index
        assert isinstance(index, SqliteSearchIndex)
        return {
            "articles": {a.id: (a.url, a.title, a.text, a.text_source, a.published) for a in found.values()},
            "clusters": {frozenset(g) for g in groups.values()},
            "stories": {s.id: (s.title, s.text, s.summary, frozenset(x.article_id for x in s.sources), s.agency)
                        for s in stories.values()},
            "index": index.document_counts(),
            "outbox": store.outbox_size(),
            "entries": store.entry_counts(),
        }


def test_a_run_killed_at_any_stage_resumes_to_the_same_result(corpus_server: CorpusServer, tmp_path: Path) -> None:
    base = corpus_server.base_url
    feeds_file = write_demo_feeds(base, tmp_path / "feeds.yaml")

    def settings(name: str) -> Settings:
        return demo_settings(base, tmp_path / name, feeds_file, **TUNING)

    with ThreadPoolExecutor(len(STAGES)) as pool:  # the kills run side by side
        killed = dict(zip(STAGES, pool.map(lambda stage: kill_during(stage, tmp_path / stage, feeds_file, base), STAGES)))

    with Pipeline(settings("clean")) as pipeline:
        report = pipeline.run(force=True)
        assert report.failed_feeds == [] and report.articles_added == 49
    clean = outcome(settings("clean"))
    assert clean["outbox"] == 0 and clean["index"] == {"stories": 26, "articles": 49}
    assert len(clean["clusters"]) == 26

    for stage, (at_kill, after_kill) in killed.items():
        # Read after the kill, the store may show one more transaction than the frozen run showed
        # its readers: a commit already in the WAL file whose index the run had not published
        # yet. It is still the same stage.
        assert STAGES[stage](at_kill) and STAGES[stage](after_kill), (stage, at_kill, after_kill)
        with Pipeline(settings(stage)) as pipeline:
            report = pipeline.run(force=True)
            assert report.index_error is None and report.failed_feeds == [], stage
        assert outcome(settings(stage)) == clean, stage
        with sqlite3.connect(tmp_path / stage / "store.sqlite3") as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
