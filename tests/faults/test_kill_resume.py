"""A run killed with SIGKILL at any point, then run again, ends exactly where an uninterrupted run ends.

`newsagg run` runs as a child process over the demo corpus, on the embedded defaults (SQLite
store and search index, all work in the run's process) and on the production backends (a
PostgreSQL store, an Elasticsearch index, two worker processes that parse feeds, extract
pages and sign articles). Nothing in the library knows about this test: the harness freezes
the child's process group (SIGSTOP) every couple of milliseconds of its progress, reads the
store and the search index as any reader may, and when they show the stage it wants, kills
the whole group, the run and its workers, with SIGKILL while it is frozen, so the state it
was killed in is exactly the state read. Each kill point is then resumed with an ordinary
run and compared with a clean, uninterrupted one on the same backends: same articles, same
clusters (as sets of article ids), same stories, the same documents in the search index,
nothing left in the outbox.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import pytest
import sqlalchemy as sa
import yaml
from services import ensure_elasticsearch, group_members, postgres_database

from pipeline.demo.run import demo_settings, write_demo_feeds
from pipeline.demo.server import CorpusServer
from pipeline.errors import SearchBackendError
from pipeline.models import IndexedArticle
from pipeline.runner import Pipeline
from pipeline.search.elastic import ElasticsearchIndex
from pipeline.search.elastic.documents import article_document, story_document
from pipeline.search.elastic.templates import FAMILIES
from pipeline.settings import Settings
from pipeline.storage.schema import ADVISORY_LOCKS
from pipeline.storage.schema import articles

# Small batches so fetching has intermediate states.
EXTRACTION = {"batch_size": 10}


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
    locked: bool  # a process holds the store's clusters lock
    indexed: int


STORE_COUNTS = (
    "SELECT count(*) FROM feeds", "SELECT count(*) FROM feeds WHERE last_attempt_at IS NOT NULL",
    "SELECT count(*) FROM entries", "SELECT count(*) FROM articles", "SELECT count(*) FROM memberships",
    "SELECT count(*) FROM stories", "SELECT count(*) FROM outbox",
)

STAGES: dict[str, Callable[[Snapshot], bool]] = {
    "polling": lambda s: 0 < s.polled < s.feeds,
    "fetching": lambda s: s.polled == s.feeds and 0 < s.articles < s.entries,
    "clustering": lambda s: s.entries > 0 and s.articles == s.entries and s.members == 0 and s.locked,
    "stories": lambda s: s.members == s.articles > 0 and s.stories == 0,
    "indexing": lambda s: s.stories > 0 and s.outbox > 0 and s.indexed == 0,  # stories saved, none delivered
    "delivered": lambda s: s.indexed > 0 and s.outbox > 0,  # documents in the index, their outbox items not done
}
ATTEMPTS = 3  # a heavily loaded machine may let the run slip past a short stage between two looks


def progress(s: Snapshot) -> int:
    """How far a run is: the index in STAGES of the stage it is in or has just left (6: done)."""
    if s.feeds == 0 or s.polled < s.feeds:
        return 0
    if s.articles < s.entries:
        return 1
    if s.members == 0:
        return 2
    if s.stories == 0:
        return 3
    if s.outbox:
        return 4 if s.indexed == 0 else 5
    return 6


class Backends(Protocol):
    """Where one run keeps its state, and how a reader outside the run looks at it."""

    name: str
    settings: Settings

    def store_counts(self) -> list[int] | None:
        """STORE_COUNTS and whether the clusters lock is held (1 or 0), or None while the store cannot be read yet."""

    def indexed(self) -> int:
        """Documents the search index holds (0 before it exists)."""

    def index_outcome(self, pipeline: Pipeline) -> dict[str, Any]:
        """What a finished run left in the search index (and in the backends' files) that must not depend on kills."""


class Embedded:
    """The embedded defaults: SQLite store and FTS5 index in the data directory, all work in one process."""

    def __init__(self, name: str, base_url: str, feeds_file: Path, data_dir: Path) -> None:
        self.name = name
        self.settings = demo_settings(base_url, data_dir, feeds_file, workers=1, extraction=EXTRACTION)

    def _read(self, path: Path, sqls: tuple[str, ...]) -> list[int]:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.05)
        try:
            return [int(db.execute(sql).fetchone()[0]) for sql in sqls]
        finally:
            db.close()

    def store_counts(self) -> list[int] | None:
        try:
            counts = self._read(self.settings.data_dir / "store.sqlite3", STORE_COUNTS)
        except sqlite3.Error:  # no file or tables yet, or a writer's lock outlasted the timeout
            return None
        try:
            lock = os.open(self.settings.data_dir / "store.sqlite3.clusters.lock", os.O_RDONLY)
        except FileNotFoundError:
            return [*counts, 0]
        try:
            fcntl.lockf(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)  # the store's own lock is a POSIX record lock
        except (BlockingIOError, PermissionError):
            return [*counts, 1]
        finally:
            os.close(lock)  # and with it the shared lock taken, if it was free
        return [*counts, 0]

    def indexed(self) -> int:
        try:
            return self._read(self.settings.data_dir / "search.sqlite3",
                              ("SELECT (SELECT count(*) FROM stories) + (SELECT count(*) FROM articles)",))[0]
        except sqlite3.Error:
            return 0

    def index_outcome(self, pipeline: Pipeline) -> dict[str, Any]:
        with sqlite3.connect(self.settings.data_dir / "store.sqlite3") as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",), self.name
        return {}


# A bigint advisory lock key shows in pg_locks as two oids and objsubid 1.
CLUSTERS_LOCKED = sa.text(
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND (classid::bigint << 32) | objid::bigint = :key"
).bindparams(key=ADVISORY_LOCKS["clusters"])


class Production:
    """A PostgreSQL store (a database of its own), an Elasticsearch index (a prefix of its own), two workers."""

    def __init__(self, name: str, base_url: str, feeds_file: Path, data_dir: Path, store_url: str) -> None:
        self.name = name
        es = {"urls": [ensure_elasticsearch()], "index_prefix": f"t-kill-{uuid.uuid4().hex[:8]}"}
        self.settings = demo_settings(
            base_url, data_dir, feeds_file, workers=2, extraction=EXTRACTION, store_url=store_url,
            search_backend="elasticsearch", es=es,
            clustering={"pool_min_batch": 10},  # the corpus's 49 articles are signed by the workers too
        )
        # A reader must not wait behind the run's schema migration or a lock it holds while frozen.
        self.engine = sa.create_engine(store_url, isolation_level="AUTOCOMMIT",
                                       connect_args={"options": "-c lock_timeout=50 -c statement_timeout=2000"})
        self.index = ElasticsearchIndex(self.settings.es)

    def close(self) -> None:
        self.index.drop()
        self.index.close()
        self.engine.dispose()

    def store_counts(self) -> list[int] | None:
        try:
            with self.engine.connect() as conn:
                return [int(conn.execute(sql).scalar_one()) for sql in (*map(sa.text, STORE_COUNTS), CLUSTERS_LOCKED)]
        except sa.exc.DBAPIError:  # no tables yet, or a lock outlasted the timeout
            return None

    def indexed(self) -> int:
        try:
            self.index.refresh()  # a count sees only what a refresh made searchable
            return sum(self.index.document_counts().values())
        except SearchBackendError:  # no aliases yet
            return 0

    def index_outcome(self, pipeline: Pipeline) -> dict[str, Any]:
        """Every document's id and index (a duplicate shows twice); each document is the store's, not an older one."""
        index, store = pipeline.index, pipeline.store
        assert isinstance(index, ElasticsearchIndex)
        index.refresh()
        hits = {family: index.client.search(index=index.alias(family), size=1000, query={"match_all": {}}).body
                ["hits"]["hits"] for family in FAMILIES}
        found = {family: {h["_id"]: h["_source"] for h in hits[family]} for family in FAMILIES}
        stories = store.stories_by_id(found["stories"])
        docs = store.articles_by_id(found["articles"])
        members = store.memberships_by_article(docs)
        expected = {
            "stories": {i: story_document(s) for i, s in stories.items()},
            "articles": {i: article_document(IndexedArticle(a, members[i])) for i, a in docs.items() if i in members},
        }
        stale = [(family, i) for family in FAMILIES for i, source in found[family].items()
                 if expected[family].get(i) != source]
        assert not stale, f"{self.name}: documents that are not the store's: {stale}"
        return {"documents": {family: sorted((h["_id"], h["_index"].removeprefix(index.prefix)) for h in hits[family])
                              for family in FAMILIES}}


def snapshot(backends: Backends) -> Snapshot | None:
    """Counts read from the store and the search index, or None while they cannot be read yet."""
    counts = backends.store_counts()
    if counts is None:
        return None
    *store, locked = counts
    seen = Snapshot(*store, locked=bool(locked), indexed=0)
    # Nothing is indexed before stories are built: the index is not asked before.
    return seen if seen.stories == 0 else replace(seen, indexed=backends.indexed())


def settings_file(backends: Backends) -> Path:
    """The backends' settings as the YAML file a `newsagg --config` child reads."""
    path = backends.settings.data_dir.parent / f"{backends.name}.yaml"
    path.write_text(yaml.safe_dump(backends.settings.model_dump(mode="json", exclude_defaults=True)))
    return path


def newsagg(backends: Backends, *args: str, **popen: Any) -> subprocess.Popen[str]:
    """`newsagg --config FILE ARGS...` in a child process; only the settings file configures it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSAGG_")}
    command = [sys.executable, "-m", "pipeline", "--config", str(settings_file(backends)), *args]
    return subprocess.Popen(command, env=env, text=True, stdin=subprocess.DEVNULL, **popen)


def run_to_the_end(backends: Backends) -> dict[str, Any]:
    """An ordinary run, as `newsagg run --force` makes it; its report.

    A run with workers runs in a child: this process runs threads, so the workers it started
    would be spawned, not forked, and each would import the pipeline again.
    """
    if (backends.settings.workers or 1) == 1:
        with Pipeline(backends.settings) as pipeline:
            return pipeline.run(force=True).as_dict()
    child = newsagg(backends, "run", "--force", "--json", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = child.communicate(timeout=300)
    assert child.returncode == 0, f"{backends.name}: {err}"
    report: dict[str, Any] = json.loads(out)
    return report


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


class Missed(AssertionError):
    """The run left the stage before the harness killed it."""


def kill_during(stage: str, fresh: Callable[[str], Backends]) -> tuple[Backends, Snapshot]:
    """Kill a run during ``stage`` (trying again on fresh backends if it slipped past); see ``kill_once``."""
    for attempt in range(1, ATTEMPTS + 1):
        backends = fresh(f"{stage}-{attempt}")
        try:
            return backends, kill_once(stage, backends)
        except Missed:
            if attempt == ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def kill_once(stage: str, backends: Backends) -> Snapshot:
    """Run `newsagg run` in a child, SIGKILL its process group once a reader sees ``stage``; the state it left."""
    child = newsagg(backends, "run", "--force", start_new_session=True, stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE)
    group = child.pid  # start_new_session: the child leads its own process group, its workers are in it

    def signal_group(sig: signal.Signals) -> None:
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            pass

    try:
        while snapshot(backends) is None:
            assert child.poll() is None, f"run ended before opening its store: {child.stderr.read()!r}"  # type: ignore[union-attr]
            time.sleep(0.005)
        while True:
            signal_group(signal.SIGSTOP)
            wait_stopped(child.pid)
            seen = snapshot(backends)
            if seen is not None and STAGES[stage](seen):
                workers = backends.settings.workers or 1
                assert len(group_members(group)) == (1 if workers == 1 else 1 + workers), "the run and its workers"
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
    # A server finishes what the frozen run had sent it (a commit, a bulk request), and SQLite may
    # find a commit already in the WAL file that the run had not published: read after the kill,
    # the state may be one step further than the one seen, perhaps past the stage.
    after = snapshot(backends)
    assert after is not None
    after = replace(after, locked=seen.locked)  # a lock ends with its holder
    if not STAGES[stage](after):
        raise Missed(f"killed in {stage} ({seen}), the run had sent what took it further: {after}")
    return after


def outcome(backends: Backends) -> dict[str, Any]:
    """Everything a finished run leaves behind that must not depend on interruptions."""
    with Pipeline(backends.settings) as pipeline:
        store = pipeline.store
        with store.engine.connect() as conn:
            ids = list(conn.execute(sa.select(articles.c.id)).scalars())
        found = store.articles_by_id(ids)
        groups: dict[str, set[str]] = defaultdict(set)
        for cluster_id in store.cluster_ids():
            groups[cluster_id] = {m.article_id for m in store.memberships_of(cluster_id)}
        stories = store.stories_by_id(groups)
        index = backends.index_outcome(pipeline)  # first: it makes everything written searchable
        return {
            "articles": {a.id: (a.url, a.title, a.text, a.text_source, a.published) for a in found.values()},
            "clusters": {frozenset(g) for g in groups.values()},
            "stories": {s.id: (s.title, s.text, s.summary, frozenset(x.article_id for x in s.sources), s.agency)
                        for s in stories.values()},
            "outbox": store.outbox_size(),
            "entries": store.entry_counts(),
            "counts": pipeline.index.document_counts(),
            "runs": [r.status for r in store.recent_runs(10)],
            **index,
        }


@pytest.fixture
def backends(request: pytest.FixtureRequest, corpus_server: CorpusServer, tmp_path: Path) -> Iterator[Callable[[str], Backends]]:
    """Fresh backends of the parameter's kind by name, each dropped afterwards (databases, index prefixes)."""
    base = corpus_server.base_url
    feeds_file = write_demo_feeds(base, tmp_path / "feeds.yaml")
    if request.param == "embedded":
        yield lambda name: Embedded(name, base, feeds_file, tmp_path / name)
        return
    lock = threading.Lock()  # the kills ask for theirs side by side
    made: list[Production] = []
    with ExitStack() as databases:

        def production(name: str) -> Production:
            with lock:
                store_url = databases.enter_context(postgres_database())
                made.append(Production(name, base, feeds_file, tmp_path / name, store_url))
                return made[-1]

        yield production
        with ThreadPoolExecutor(len(made)) as pool:  # side by side: one after the other took seconds
            list(pool.map(Production.close, made))


# Each kill point costs two runs, so the production backends are killed where they work
# differently: entries claimed on PostgreSQL and pages extracted by the workers (fetching), the
# advisory lock held while the workers sign (clustering), Elasticsearch set up and written with
# versions (indexing, and delivered: documents there, the outbox not yet emptied). Polling and
# building stories commit there as they do on SQLite.
KILL_POINTS = {
    "embedded": ["polling", "fetching", "clustering", "stories", "indexing"],
    "production": ["fetching", "clustering", "indexing", "delivered"],
}


@pytest.mark.parametrize(("backends", "stages"), [pytest.param(k, v, id=k) for k, v in KILL_POINTS.items()],
                         indirect=["backends"])
def test_a_run_killed_at_any_stage_resumes_to_the_same_result(
    backends: Callable[[str], Backends], stages: list[str]
) -> None:
    def kill_and_resume(stage: str) -> tuple[Backends, Snapshot, dict[str, Any]]:
        killed, left = kill_during(stage, backends)
        return killed, left, run_to_the_end(killed)  # an ordinary run

    clean = backends("clean")
    with ThreadPoolExecutor(len(stages) + 1) as pool:  # the kill points, and the clean run, side by side
        finished = pool.submit(run_to_the_end, clean)
        resumed = dict(zip(stages, pool.map(kill_and_resume, stages)))
        report = finished.result()
    assert report["failed_feeds"] == [] and report["articles_added"] == 49
    expected = outcome(clean)
    assert expected.pop("runs") == ["ok"]
    assert expected["outbox"] == 0 and len(expected["clusters"]) == 26
    assert expected["counts"] == {"stories": 26, "articles": 49}

    for stage, (run, left, report) in resumed.items():
        assert report["index_error"] is None and report["failed_feeds"] == [], stage
        result = outcome(run)
        assert result.pop("runs") == ["ok", "abandoned"], stage  # newest first
        assert result == expected, (stage, left)
