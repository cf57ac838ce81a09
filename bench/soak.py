"""Soak test: repeated, concurrent, interrupted `newsagg run`s on PostgreSQL and Elasticsearch over a changing web.

A loopback web of 20 sources (RSS with and without full text, Atom, Google News
sitemaps) publishes articles from the clustering benchmark's generator
(``bench.dedup.corpus``: syndicated copies of one agency story at several outlets) over
the soak's first minutes: new entries appear, some Atom entries are corrected (a new
``updated`` and a changed page, with ETags that answer 304), some pages answer 404, 500
for a while, slowly (past the read timeout) or through a redirect, one feed lists other
feeds' stories under links to other copies of their pages (which name the same canonical
URL), and two feeds go away for a while and come back. Meanwhile `newsagg run` runs
again and again in child processes on a fresh PostgreSQL database and a fresh
Elasticsearch index prefix, two at a time part of the time, some killed (SIGKILL to the
process group) or stopped (SIGTERM, to the command or its group) at a random moment.
Beside them, what a deployment meets (see ``disturb`` and ``operate``): Elasticsearch,
reached through a loopback proxy, refuses connections, cuts them mid-request or answers
slowly for a few seconds at a time; the database's connections are terminated
(``pg_terminate_backend``, the soak's database only); and an operator or cron runs
`newsagg maintenance`, `reextract`, `outbox fill` and `feeds remove`/`add` of a soak source.
Once the web stops changing, runs go on until nothing is left to do, and the store and
the index are checked (see ``check``): each violation is printed; the exit status is 1
if there was any.

    nice -n 19 python -m bench.soak                        # about 8 minutes
    nice -n 19 python -m bench.soak --minutes 30 --seed 7  # longer, another web
    nice -n 19 python -m bench.soak --calm                 # the runs alone: no backend faults, no operator

The servers are those of the tests (``NEWSAGG_PG_URL``, ``NEWSAGG_ES_URL``, else
``scripts/pg-node`` / ``scripts/es-node``); the soak's database is dropped at the end,
its index prefix too unless ``--keep``; the runs' output stays in the logs directory it
names.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from functools import partial
from html import escape
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

from bench.dedup.corpus import generate
from pipeline.models import IndexedArticle
from pipeline.search.elastic import ElasticsearchIndex
from pipeline.search.elastic.documents import article_document, story_document
from pipeline.search.elastic.templates import FAMILIES
from pipeline.settings import load_settings
from pipeline.storage import Store
from pipeline.storage.schema import (
    article_revisions, articles, cluster_aliases, dead_letters, dirty_clusters, entries, feeds, memberships, outbox,
    stories,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "faults")]
from faultkit import Handler, Proxy, proxying  # noqa: E402  (the fault tests' web server and TCP proxy)
from faultkit import serving as serving_web  # noqa: E402
from services import ensure_elasticsearch, group_members, postgres_database  # noqa: E402  (the tests' servers)

RSS, RSS_FULL, ATOM, SITEMAP = "rss", "rss-full", "atom", "sitemap"
KINDS = [RSS_FULL] * 5 + [RSS] * 5 + [ATOM] * 8 + [SITEMAP] * 2
ROUNDUP = 9  # an RSS feed that also lists other feeds' stories, linking copies of their pages
OUTAGES = {3: (503, 0.30, 0.55), 12: (404, 0.40, 0.65)}  # source -> (status, from, to) as shares of the change
STOP_LINE = re.compile(r"^newsagg: stopped \((SIGTERM|SIGINT)\); run again to resume where it stopped$")
BAD_LINE = re.compile(r"ERROR|CRITICAL|Traceback|newsagg: error|Exception")
# How a command may end while a backend fails under it: one line saying so.
FAULT_LINE = re.compile(r"^(ERROR pipeline\.(runner|backfill): search index unavailable, \d+ documents wait in the "
                        r"outbox: |newsagg: error: )\S")
BACKEND_FAULTS = ("es-refuse", "es-cut", "es-slow", "pg-terminate", "pg-terminate")
ARTICLE_ROWS = sa.select(articles.c.id, articles.c.url, articles.c.text, articles.c.text_source,
                         articles.c.text_source_reason)
DOC_IN_URL = re.compile(r"/(?:a|go|amp)/([0-9a-f]{16})")


@dataclass
class Doc:
    id: str
    title: str
    paragraphs: list[str]
    source: int
    appears: float  # seconds into the change
    published: datetime
    fault: str | None = None  # "404", "500", "slow", "redirect"
    corrections: list[float] = field(default_factory=list)  # seconds into the change of each correction
    roundup: bool = False  # also listed by the roundup feed


class World:
    """The web as it is ``seconds`` into the change: what each source lists and what each page says."""

    def __init__(self, seed: int, articles: int, change: float) -> None:
        rng = random.Random(seed)
        self.change = change
        self.start = time.monotonic()
        self.wall = datetime.now(UTC).replace(microsecond=0)
        self.lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        corpus = generate(articles, seed=seed)
        outlets = sorted({d.outlet for d in corpus.docs})
        rng.shuffle(outlets)
        self.docs: dict[str, Doc] = {}
        for d in corpus.docs:
            source = outlets.index(d.outlet) % len(KINDS)
            # A backlog there from the start (published in one second), then new entries.
            appears = 0.0 if rng.random() < 0.3 else rng.uniform(0, 0.75 * change)
            doc = Doc(d.id, d.title, [p for p in d.text.split("\n") if p.strip()], source, appears,
                      self.wall - timedelta(hours=2) + timedelta(seconds=appears))
            roll = rng.random()
            if KINDS[source] == ATOM and roll < 0.25:
                first = rng.uniform(appears + 5, change)
                doc.corrections = sorted([first] + ([rng.uniform(first, change)] if rng.random() < 0.4 else []))
            elif roll < 0.05:
                doc.fault = "404"
            elif roll < 0.11:
                doc.fault = "500"
            elif roll < 0.15:
                doc.fault = "slow"
            elif roll < 0.22:
                doc.fault = "redirect"
            doc.roundup = source != ROUNDUP and KINDS[source] != SITEMAP and rng.random() < 0.08
            self.docs[d.id] = doc
        self.base = ""

    def now(self) -> float:
        return min(time.monotonic() - self.start, self.change)

    def changing(self) -> bool:
        return time.monotonic() - self.start < self.change

    def revision(self, doc: Doc, at: float) -> int:
        return sum(1 for c in doc.corrections if c <= at)

    def link(self, doc: Doc, roundup: bool = False) -> str:
        if roundup:
            return f"{self.base}/amp/{doc.id}?utm_source=roundup"  # another page naming the same canonical URL
        return f"{self.base}/{'go' if doc.fault == 'redirect' else 'a'}/{doc.id}"

    def listed(self, source: int, at: float) -> list[tuple[Doc, bool]]:
        """(doc, listed as a roundup copy) on ``source``, newest first (at most 100)."""
        shown = [(d, False) for d in self.docs.values() if d.source == source and d.appears <= at]
        if source == ROUNDUP:
            shown += [(d, True) for d in self.docs.values() if d.roundup and d.appears <= at]
        return sorted(shown, key=lambda x: (x[0].appears, x[0].id), reverse=True)[:100]

    # -- documents --------------------------------------------------------------------------

    def page(self, doc: Doc, rev: int) -> str:
        paragraphs = list(doc.paragraphs)
        for n in range(1, rev + 1):
            # Long enough that even the shortest story's corrected page is text enough to be used.
            paragraphs.append(f"Correction {n} to story {doc.id}: an earlier version of this article misstated "
                              f"the figures given by the council, revised as number {n} of the record. The budget "
                              "is forty-two million, not twenty-four million, and the vote on it is set for "
                              "Thursday evening rather than Tuesday morning, as the article said at first.")
        body = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
        return (f"<!doctype html><html lang=en><head><title>{escape(doc.title)}</title>"
                f'<link rel="canonical" href="/a/{doc.id}"><meta name="author" content="Staff">'
                f'<meta property="article:published_time" content="{doc.published.isoformat()}"></head>'
                f"<body><nav>Home | World | Business</nav><article><h1>{escape(doc.title)}</h1>{body}</article>"
                "<footer>Copyright Soak Media</footer></body></html>")

    def updated(self, doc: Doc, at: float) -> datetime:
        rev = self.revision(doc, at)
        return doc.published + timedelta(seconds=(doc.corrections[rev - 1] - doc.appears) if rev else 0)

    def feed(self, source: int, at: float) -> tuple[str, str]:
        kind, listed = KINDS[source], self.listed(source, at)
        name = f"Soak source {source:02d}"
        if kind == SITEMAP:
            rows = "".join(
                f"<url><loc>{escape(self.link(d))}</loc><news:news><news:publication><news:name>{name}</news:name>"
                f"<news:language>en</news:language></news:publication><news:publication_date>"
                f"{d.published.isoformat()}</news:publication_date><news:title>{escape(d.title)}</news:title>"
                "</news:news></url>" for d, _ in listed)
            return ('<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'
                    f' xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">{rows}</urlset>', "application/xml")
        if kind == ATOM:
            rows = "".join(
                f"<entry><title>{escape(d.title)}</title><id>urn:soak:{d.id}</id>"
                f'<link href="{escape(self.link(d))}"/>'
                f"<published>{d.published.isoformat()}</published><updated>{self.updated(d, at).isoformat()}</updated>"
                f"<summary>{escape(d.paragraphs[0])}</summary></entry>" for d, _ in listed)
            return ('<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
                    f"<title>{name}</title><id>urn:soak:{source}</id><updated>{self.wall.isoformat()}</updated>"
                    f"{rows}</feed>", "application/atom+xml")
        full = kind == RSS_FULL
        rows = "".join(
            f"<item><title>{escape(d.title)}</title><link>{escape(self.link(d, roundup))}</link>"
            f"<guid>{escape(self.link(d, roundup))}</guid><description>{escape(d.paragraphs[0])}</description>"
            + (f"<content:encoded>{escape(''.join(f'<p>{p}</p>' for p in d.paragraphs))}</content:encoded>"
               if full else "")
            + f"<pubDate>{format_datetime(d.published, usegmt=True)}</pubDate></item>" for d, roundup in listed)
        return ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0" '
                'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>'
                f"<title>{name}</title><link>{self.base}/</link><description>{name}</description>{rows}"
                "</channel></rss>",
                "application/rss+xml")

    def answer(self, path: str, if_none_match: str | None) -> tuple[int, bytes, str, dict[str, str], float]:
        """(status, body, content type, headers, seconds to wait first) for GET ``path``."""
        at = self.now()
        with self.lock:
            self.requests[path] += 1
            asked = self.requests[path]
        if m := re.fullmatch(r"/feeds/(\d+)\.xml", path):
            source = int(m[1])
            if source in OUTAGES:
                status, since, until = OUTAGES[source]
                if since * self.change <= at < until * self.change:
                    return status, b"gone for now\n", "text/plain", {}, 0.0
            text, kind = self.feed(source, at)
            etag = '"' + hashlib.sha1(text.encode()).hexdigest()[:16] + '"'
            if if_none_match == etag:
                return 304, b"", kind, {"ETag": etag}, 0.0
            return 200, text.encode(), kind, {"ETag": etag}, 0.0
        m = re.fullmatch(r"/(a|go|amp)/([0-9a-f]{16})", path.split("?", 1)[0])
        doc = self.docs.get(m[2]) if m else None
        if doc is None or doc.appears > at:
            return 404, b"not found\n", "text/plain", {}, 0.0
        if m and m[1] == "go":
            return 301, b"", "text/plain", {"Location": f"/a/{doc.id}"}, 0.0
        if doc.fault == "404":
            return 404, b"not found\n", "text/plain", {}, 0.0
        if doc.fault == "500" and asked <= 2:
            return 500, b"try again\n", "text/plain", {}, 0.0
        wait = 2.5 if doc.fault == "slow" and asked % 2 == 1 else 0.0
        rev = self.revision(doc, at)
        etag = f'"{doc.id}-{rev}"'
        if if_none_match == etag:
            return 304, b"", "text/html", {"ETag": etag}, wait
        return 200, self.page(doc, rev).encode(), "text/html; charset=utf-8", {"ETag": etag}, wait


@contextmanager
def serving(world: World) -> Iterator[str]:
    """The world's web on a loopback port (the fault tests' server), changing from now on."""
    with serving_web() as web:

        def answer(handler: Handler) -> None:
            status, body, kind, headers, wait = world.answer(handler.path, handler.headers.get("If-None-Match"))
            if wait and web.stopping.wait(wait):
                return
            handler.reply(status, body, kind, **headers)

        web.fallback = answer
        world.base = web.base
        world.start = time.monotonic()
        yield world.base


# -- runs -----------------------------------------------------------------------------------


@dataclass
class Run:
    number: int
    process: subprocess.Popen[str]
    stderr: Path
    stdout: Path
    started: float
    action: str = "none"  # "kill", "term", "term-group", "none"
    at: float = 0.0  # seconds after the start the action is due
    signalled: float | None = None
    name: str = "run"  # "run", or the operator command it is


@dataclass
class Tally:
    runs: int = 0
    kills: int = 0
    stops: int = 0
    pairs: int = 0
    commands: Counter[str] = field(default_factory=Counter)  # operator commands by name
    faults: Counter[str] = field(default_factory=Counter)  # backend faults by kind
    terminated: int = 0  # database connections terminated
    windows: list[tuple[float, float, str]] = field(default_factory=list)  # (from, to, kind) of each backend fault
    violations: list[str] = field(default_factory=list)

    def violation(self, text: str) -> None:
        self.violations.append(text)
        print(f"VIOLATION {text}", flush=True)

    def faulted(self, since: float, until: float) -> list[str]:
        """The backend faults that overlapped ``since``..``until`` (monotonic seconds)."""
        return [kind for start, end, kind in list(self.windows) if start <= until and since <= end]


def _signal(run: Run, sig: signal.Signals, group: bool = True) -> None:
    """Send ``sig`` to the run's process group (its workers too), or to the command alone."""
    with suppress(ProcessLookupError):  # it ended meanwhile
        (os.killpg if group else os.kill)(run.process.pid, sig)


class Runner:
    def __init__(self, config: Path, logs: Path, tally: Tally, rng: random.Random) -> None:
        self.config, self.logs, self.tally, self.rng = config, logs, tally, rng
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSAGG_")}
        self.lock = threading.Lock()  # the runs' and the operator's threads number their commands

    def start(self, *, force: bool, action: str = "none", workers: int = 2) -> Run:
        with self.lock:
            self.tally.runs += 1
            n = self.tally.runs
        run = self._spawn(f"run-{n:03d}", ["run", "--json", *(["--force"] if force else [])],
                          {"NEWSAGG_WORKERS": str(workers)})
        run.number, run.action, run.at = n, action, self.rng.uniform(0.3, 5.0)
        print(f"run {n}: pid {run.process.pid} workers {workers}{' --force' if force else ''} {action}", flush=True)
        return run

    def command(self, *args: str) -> Run:
        """An operator's `newsagg ARGS...` beside the runs."""
        with self.lock:
            self.tally.commands[args[0]] += 1
            n = sum(self.tally.commands.values())
        run = self._spawn(f"op-{n:03d}", list(args), {})
        run.number, run.name = n, " ".join(args)
        print(f"operator {n}: pid {run.process.pid} newsagg {run.name}", flush=True)
        return run

    def _spawn(self, log_name: str, args: list[str], env: dict[str, str]) -> Run:
        out, err = self.logs / f"{log_name}.out", self.logs / f"{log_name}.err"
        command = [sys.executable, "-m", "pipeline", "--config", str(self.config), *args]
        with out.open("w") as o, err.open("w") as e:
            process = subprocess.Popen(command, env={**self.env, **env}, text=True, stdin=subprocess.DEVNULL,
                                       stdout=o, stderr=e, start_new_session=True, cwd=ROOT)
        return Run(0, process, err, out, time.monotonic())

    def finish(self, batch: list[Run], timeout: float = 300) -> None:
        """Wait for ``batch``, signalling each as planned; check how each ended."""
        try:
            self._wait(batch, timeout)
        except BaseException:  # the soak itself interrupted: no run outlives it
            for run in batch:
                if run.process.poll() is None:
                    _signal(run, signal.SIGKILL)
                    run.process.wait()
            raise
        for run in batch:
            self.judge(run)

    def _wait(self, batch: list[Run], timeout: float) -> None:
        while any(r.process.poll() is None for r in batch):
            for run in batch:
                age = time.monotonic() - run.started
                if run.process.poll() is not None:
                    continue
                if run.action != "none" and run.signalled is None and age >= run.at:
                    run.signalled = age
                    if run.action == "kill":
                        self.tally.kills += 1
                        _signal(run, signal.SIGKILL)
                    else:
                        self.tally.stops += 1
                        _signal(run, signal.SIGTERM, group=run.action == "term-group")
                if run.signalled is not None and run.action != "kill" and age - run.signalled > 15:
                    self.tally.violation(f"{run.name} {run.number}: still running 15 s after SIGTERM; killed")
                    _signal(run, signal.SIGKILL)
                    run.action = "kill"
                if age > timeout:
                    self.tally.violation(f"{run.name} {run.number}: still running after {timeout:.0f} s "
                                         "(waiting without a word?); killed")
                    _signal(run, signal.SIGKILL)
                    run.action = "kill"
            time.sleep(0.05)

    def judge(self, run: Run) -> None:
        code = run.process.returncode
        # A backend fault under the command may end it with one line saying so (and exit 1).
        faults = self.tally.faulted(run.started, time.monotonic())
        deadline = time.monotonic() + 5
        while (left := group_members(run.process.pid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        if left:
            self.tally.violation(f"{run.name} {run.number}: worker processes {left} outlived it by 5 s; killed")
            for pid in left:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        lines = run.stderr.read_text(errors="replace").splitlines()
        stopped = [line for line in lines if STOP_LINE.match(line)]
        failed = [line for line in lines if faults and FAULT_LINE.match(line)]
        bad = [line for line in lines if BAD_LINE.search(line) and not STOP_LINE.match(line) and line not in failed]
        if len(failed) > 1:
            bad += failed
        if bad:
            shown = "\n  ".join(lines[-40:])
            self.tally.violation(f"{run.name} {run.number} (exit {code}, {run.action}, faults {faults}): stderr:\n  "
                                 f"{shown}")
        signalled = run.signalled is not None
        if code == 0 or (signalled and run.action == "kill" and code == -signal.SIGKILL):
            pass
        elif code == 1 and len(failed) == 1:
            pass
        elif signalled and run.action.startswith("term") and code == 143 and len(stopped) == 1:
            pass
        elif signalled and run.action.startswith("term") and code == -signal.SIGTERM and (
                not lines or run.stdout.read_text().rstrip().endswith("}")):
            # The signal came before the command took SIGTERM over (starting up) or after it gave
            # it back (its report printed): the default action, with nothing begun or all done.
            pass
        elif not bad:
            self.tally.violation(f"{run.name} {run.number}: exit {code} after {run.action}"
                                 f"{f' at {run.signalled:.1f} s' if signalled else ''} (faults {faults}); "
                                 f"stderr: {lines[-10:]}")
        summary = ""
        if code == 0 and run.name == "run":
            try:
                report = json.loads(run.stdout.read_text())
                summary = (f"+{report['articles_added']} articles, {report['clustered']} clustered, "
                           f"{report['stories_built']} stories, {report['indexed']} indexed")
                if report.get("index_error"):
                    self.tally.violation(f"run {run.number}: index error {report['index_error']}")
            except (ValueError, KeyError) as exc:
                self.tally.violation(f"run {run.number}: unreadable report ({exc})")
        elif failed:
            summary = failed[0][:160]
        when = f" at {run.signalled:.1f} s" if signalled else ""
        under = f", faults {','.join(faults)}" if faults else ""
        print(f"{run.name} {run.number}: exit {code} ({run.action}{when}{under}) {summary}", flush=True)


def soak(world: World, runner: Runner, rng: random.Random) -> None:
    """Runs while the web changes: one or two at a time, some killed or stopped."""
    while world.changing():
        pair = rng.random() < 0.5
        runner.tally.pairs += pair
        batch = []
        for _ in range(2 if pair else 1):
            roll = rng.random()
            action = "kill" if roll < 0.2 else "term" if roll < 0.3 else "term-group" if roll < 0.35 else "none"
            batch.append(runner.start(force=rng.random() < 0.7, action=action, workers=rng.choice((1, 2, 2))))
            if pair:
                time.sleep(rng.uniform(0, 1))
        runner.finish(batch)
        time.sleep(rng.uniform(0, 2))


def disturb(world: World, proxy: Proxy, store_url: str, tally: Tally, rng: random.Random) -> None:
    """While the web changes, every few seconds a backend fault for a few seconds: Elasticsearch (through
    ``proxy``) refusing connections, cutting them mid-request or answering slowly; or the server terminating
    every connection to the soak's database, again and again."""
    engine = sa.create_engine(store_url, poolclass=sa.pool.NullPool)
    terminate = sa.text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    try:
        while world.changing():
            time.sleep(rng.uniform(4, 16))
            kind, start = rng.choice(BACKEND_FAULTS), time.monotonic()
            tally.faults[kind] += 1
            lasting, delay = rng.uniform(2, 8), rng.uniform(1, 8)
            if kind == "pg-terminate":  # a burst, as in a failover: one kill would mostly find idle connections
                tally.windows.append((start, start + lasting + 2, kind))  # known before the runs it ends are judged
                while time.monotonic() < start + lasting:
                    with engine.connect() as conn:
                        tally.terminated += conn.execute(terminate).scalar_one()
                    time.sleep(rng.uniform(0.05, 1))
                continue
            if kind == "es-refuse":
                proxy.refuse()
            elif kind == "es-cut":
                proxy.cut()
            else:
                proxy.slow(delay)
            tally.windows.append((start, start + lasting + delay, kind))  # an answer held when it heals comes later
            time.sleep(lasting)
            proxy.heal()
    finally:
        proxy.heal()
        engine.dispose()


def operate(world: World, runner: Runner, rng: random.Random) -> None:
    """While the web changes, an operator's (or cron's) commands beside the runs, one at a time; a feed taken
    out of the list is put back before the end."""
    sources = [i for i, kind in enumerate(KINDS) if kind != SITEMAP and i not in OUTAGES]
    removed: int | None = None

    def feed_url(source: int) -> str:
        return f"{world.base}/feeds/{source}.xml"

    def put_back(source: int) -> list[str]:
        return ["feeds", "add", feed_url(source), "--name", f"Soak source {source:02d}"]

    while world.changing():
        time.sleep(rng.uniform(2, 12))
        if removed is not None and rng.random() < 0.5:
            command, removed = put_back(removed), None
        else:
            choice = rng.choice(("maintenance", "reextract", "outbox") + (("feeds remove",) if removed is None else ()))
            if choice == "feeds remove":
                removed = rng.choice(sources)
            command = {"maintenance": ["maintenance", "--json"], "reextract": ["reextract", "--json"],
                       "outbox": ["outbox", "fill"],
                       "feeds remove": ["feeds", "remove", feed_url(removed or 0)]}[choice]
        runner.finish([runner.command(*command)], timeout=180)
    if removed is not None:
        runner.finish([runner.command(*put_back(removed))], timeout=180)


@contextmanager
def beside(*work: Callable[[], None]) -> Iterator[None]:
    """Run each of ``work`` in a thread while the block runs; wait for them after it (they end with the change)."""
    threads = [threading.Thread(target=w, daemon=True) for w in work]
    for thread in threads:
        thread.start()
    yield  # (the soak interrupted, they are left to end with the process)
    for thread in threads:
        thread.join()


def settle(store_url: str, runner: Runner, limit: int = 8) -> None:
    """Runs one at a time until one finds nothing to do and nothing is left queued."""
    engine = sa.create_engine(store_url, poolclass=sa.pool.NullPool)
    try:
        for _ in range(limit):
            run = runner.start(force=True)
            runner.finish([run])
            with engine.connect() as conn:
                pending = conn.execute(sa.select(sa.func.count()).where(entries.c.state == "pending")).scalar_one()
                left = conn.execute(sa.select(sa.func.count()).select_from(outbox)).scalar_one()
            report = json.loads(run.stdout.read_text() or "{}")
            idle = not any(report.get(k) for k in ("articles_added", "clustered", "stories_built", "indexed"))
            if run.process.returncode == 0 and idle and not pending and not left:
                return
        runner.tally.violation(f"no quiescence after {limit} runs")
    finally:
        engine.dispose()


# -- invariants -----------------------------------------------------------------------------


def corrections(world: World, arts: dict[str, Any], revisions: Counter[str], bad: Callable[[str], None]) -> None:
    """The latest revision of each corrected page is what its article says."""
    for doc in world.docs.values():
        if not doc.corrections:
            continue
        rev = world.revision(doc, world.change)
        found = [a for a in arts.values() if doc.id in a.url]
        if not found:
            bad(f"corrected page {doc.id} has no article")
        elif f"Correction {rev} to story {doc.id}" not in found[0].text or \
                f"Correction {rev + 1} to story" in found[0].text:
            bad(f"corrected page {doc.id} (revision {rev}) shows another text; revisions stored: "
                f"{revisions.get(found[0].id, 0)}")


def check(world: World, store_url: str, es_settings: dict[str, Any], config: Path, tally: Tally) -> dict[str, int]:
    """Check the store, the index, the archive and the runs after quiescence; every violation goes to ``tally``.

    Returns counts of what there is.
    """
    bad = tally.violation
    store = Store(store_url)
    try:
        with store.engine.connect() as conn:
            arts = {r.id: r for r in conn.execute(ARTICLE_ROWS)}
            ents = list(conn.execute(sa.select(entries)).mappings())
            members = {r.article_id: r.cluster_id for r in conn.execute(sa.select(memberships))}
            story_rows = {r.id: r for r in conn.execute(sa.select(stories.c.id, stories.c.sources))}
            aliases = {r.absorbed_id: r.survivor_id for r in conn.execute(sa.select(cluster_aliases))}
            counts = {name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                      for name, t in (("outbox", outbox), ("dead_letters", dead_letters), ("dirty", dirty_clusters))}
            revisions: Counter[str] = Counter(conn.execute(sa.select(article_revisions.c.article_id)).scalars())
            archived = conn.execute(sa.select(sa.func.count()).where(articles.c.warc_file.is_not(None))).scalar_one()
            feed_rows = list(conn.execute(sa.select(feeds.c.name, feeds.c.status, feeds.c.last_error)))

        # Every source is back (the outages ended) and was read without an error at the end.
        for source in feed_rows:
            if source.status != "active" or source.last_error:
                bad(f"source {source.name!r} ended {source.status}: {source.last_error}")

        # No article stored twice: one per story page of the web, whatever link led to it. Only
        # a page never fetched (404, or failing at each attempt) cannot name its canonical URL:
        # its links' feed texts are articles of their own.
        by_doc: dict[str, list[Any]] = defaultdict(list)
        for a in arts.values():
            m = DOC_IN_URL.search(a.url)
            if m is None:
                bad(f"article {a.id} has an URL of no page of the web: {a.url}")
            else:
                by_doc[m[1]].append(a)
        for doc_id, found in by_doc.items():
            fetched = [a for a in found if not (a.text_source_reason or "").startswith("page fetch failed")]
            if len(fetched) > 1:
                bad(f"page {doc_id} stored as {len(fetched)} articles: {[a.url for a in found]}")
        # Every entry done or failed with a reason, none claimed.
        for e in ents:
            if e["state"] not in ("done", "failed") or (e["state"] == "failed" and not e["last_error"]):
                bad(f"entry {e['url']} left {e['state']} (attempts {e['attempts']}, claimed by {e['claimed_by']}, "
                    f"lease {e['lease_until']}, error {e['last_error']!r})")
        entry_docs = {m[1] for e in ents if (m := DOC_IN_URL.search(e["url"]))}
        missing = sorted(world.docs.keys() - entry_docs)  # every page is listed at the end
        if missing:
            bad(f"{len(missing)} pages the web listed were never queued: {missing[:10]}")
        for doc_id in sorted(entry_docs - set(by_doc)):
            doc = world.docs[doc_id]
            failed = [e for e in ents if doc_id in e["url"] and e["state"] == "failed"]
            if not failed:
                bad(f"page {doc_id} ({doc.fault}, source {doc.source} {KINDS[doc.source]}) has no article "
                    "and no failed entry")
        # Each article in exactly one cluster; each story's members are its cluster's.
        clusters: dict[str, set[str]] = defaultdict(set)
        for article_id, cluster_id in members.items():
            clusters[cluster_id].add(article_id)
        for article_id in arts.keys() - members.keys():
            bad(f"article {article_id} ({arts[article_id].url}) is in no cluster")
        for article_id in members.keys() - arts.keys():
            bad(f"membership of article {article_id} that is not stored (cluster {members[article_id]})")
        for cluster_id in clusters.keys() & aliases.keys():
            bad(f"cluster {cluster_id} was absorbed into {aliases[cluster_id]} but still has members")
        for cluster_id, ids in clusters.items():
            row = story_rows.get(cluster_id)
            if row is None:
                bad(f"cluster {cluster_id} ({len(ids)} articles) has no story")
                continue
            sources = {s["article_id"] for s in row.sources}
            if sources != ids:
                bad(f"story {cluster_id}: sources {sorted(sources)} but cluster members {sorted(ids)}")
        for story_id in story_rows.keys() - clusters.keys():
            bad(f"story {story_id} has no cluster")
        for name, n in counts.items():
            if n:
                bad(f"{n} rows left in {name}")
        corrections(world, arts, revisions, bad)
        # The search index holds the store's documents.
        settings = load_settings(None, search_backend="elasticsearch", es=es_settings)
        index = ElasticsearchIndex(settings.es)
        try:
            index.refresh()
            expected_docs: dict[str, dict[str, Any]] = {
                "stories": {i: story_document(s) for i, s in store.stories_by_id(story_rows).items()},
            }
            docs = store.articles_by_id(arts)
            found_members = store.memberships_by_article(docs)
            expected_docs["articles"] = {i: article_document(IndexedArticle(a, found_members[i]))
                                         for i, a in docs.items() if i in found_members}
            for family in FAMILIES:
                hits = index.client.search(index=index.alias(family), size=10_000, query={"match_all": {}}).body
                found_docs = {h["_id"]: h["_source"] for h in hits["hits"]["hits"]}
                if len(found_docs) != len(hits["hits"]["hits"]):
                    bad(f"{family}: a document id twice in the index")
                want = expected_docs[family]
                for doc_id in sorted(want.keys() - found_docs.keys()):
                    bad(f"{family} {doc_id} is in the store, not in the index")
                for doc_id in sorted(found_docs.keys() - want.keys()):
                    bad(f"{family} {doc_id} is in the index, not in the store")
                for doc_id in sorted(found_docs.keys() & want.keys()):
                    if found_docs[doc_id] != want[doc_id]:
                        diff = sorted(k for k in want[doc_id].keys() | found_docs[doc_id].keys()
                                      if want[doc_id].get(k) != found_docs[doc_id].get(k))
                        bad(f"{family} {doc_id}: the index differs from the store in {diff}")
        finally:
            index.close()
    finally:
        store.close()

    def newsagg(*args: str) -> Any:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSAGG_")}
        done = subprocess.run([sys.executable, "-m", "pipeline", "--config", str(config), *args, "--json"], env=env,
                              capture_output=True, text=True, cwd=ROOT, timeout=600)
        if done.returncode != 0:
            bad(f"newsagg {' '.join(args)}: exit {done.returncode}: {done.stderr.strip()[-2000:]}")
        return json.loads(done.stdout or "null")

    states = Counter(r["status"] for r in newsagg("runs", "list", "--limit", "1000") or [])
    if states.get("running"):
        bad(f"runs left running: {states}")
    # The archive holds the page each article's text came from: extracting it again changes nothing.
    # It may strip paragraphs its outlet was found to repeat since (template learning), nothing else.
    again = newsagg("reextract") or {}
    if again.get("unreadable") or again.get("failed") or again.get("examined") != archived:
        bad(f"newsagg reextract over {archived} archived articles: {again}")
    engine = sa.create_engine(store_url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        after = {r.id: r for r in conn.execute(ARTICLE_ROWS)}
    engine.dispose()
    for i, a in arts.items():
        if i in after and after[i].text != a.text and not set(after[i].text.split("\n\n")) < set(a.text.split("\n\n")):
            bad(f"newsagg reextract changed article {a.url} ({a.text_source}, {a.text_source_reason}) otherwise than "
                f"by dropping paragraphs: {len(a.text)} -> {len(after[i].text)} characters ({after[i].text_source})")
    corrections(world, after, revisions, bad)
    return {"articles": len(arts), "entries": len(ents), "stories": len(story_rows), "clusters": len(clusters),
            "multi_article_stories": sum(1 for ids in clusters.values() if len(ids) > 1),
            "revisions": sum(revisions.values()), **{f"runs_{k}": v for k, v in states.items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=6.0, help="how long the web changes (default 6)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--articles", type=int, default=0, help="articles published (default 40 a minute)")
    parser.add_argument("--keep", action="store_true", help="keep the Elasticsearch index (the logs are kept)")
    parser.add_argument("--calm", action="store_true",
                        help="no backend faults and no operator commands beside the runs")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    world = World(args.seed, args.articles or int(40 * args.minutes) + 60, args.minutes * 60)
    es_url = ensure_elasticsearch()
    es_settings = {"urls": [es_url], "index_prefix": f"soak-{uuid.uuid4().hex[:8]}"}
    tally = Tally()
    scratch = Path(tempfile.mkdtemp(prefix="newsagg-soak-"))
    print(f"soak: seed {args.seed}, {len(world.docs)} articles, {args.minutes} min, logs in {scratch}", flush=True)
    with postgres_database() as store_url, serving(world) as base, proxying(es_url) as proxy:
        feeds = [{"name": f"Soak source {i:02d}", "url": f"{base}/feeds/{i}.xml",
                  "type": "sitemap" if kind == SITEMAP else "feed"} for i, kind in enumerate(KINDS)]
        (scratch / "feeds.yaml").write_text(yaml.safe_dump({"feeds": feeds}))
        config = scratch / "soak.yaml"
        config.write_text(yaml.safe_dump({
            "data_dir": str(scratch / "data"), "feeds_file": str(scratch / "feeds.yaml"), "store_url": store_url,
            # The runs reach Elasticsearch through the proxy, and give up on a request held
            # longer than its slowest answers (else an answer held is only a wait).
            "search_backend": "elasticsearch", "es": {**es_settings, "urls": [proxy.url], "request_timeout": 5.0},
            "fetch": {"allowed_hosts": [base.removeprefix("http://")], "politeness_delay": 0.0,
                      "connect_timeout": 1.0, "read_timeout": 1.0, "total_timeout": 3.0},
            "extraction": {"batch_size": 10}, "clustering": {"pool_min_batch": 10},
        }))
        runner = Runner(config, scratch, tally, rng)
        started = time.monotonic()
        try:
            with beside(*([] if args.calm else [
                    partial(disturb, world, proxy, store_url, tally, random.Random(args.seed + 1)),
                    partial(operate, world, runner, random.Random(args.seed + 2))])):
                soak(world, runner, rng)
            print(f"soak: the web stopped changing after {time.monotonic() - started:.0f} s; settling", flush=True)
            settle(store_url, runner)
            numbers = check(world, store_url, es_settings, config, tally)
        finally:
            if not args.keep:
                index = ElasticsearchIndex(load_settings(None, search_backend="elasticsearch", es=es_settings).es)
                index.drop()
                index.close()
    print(f"soak: {tally.runs} runs ({tally.pairs} pairs, {tally.kills} killed, {tally.stops} stopped), "
          f"backend faults {dict(tally.faults)} ({tally.terminated} database connections terminated), operator "
          f"commands {dict(tally.commands)} in {time.monotonic() - started:.0f} s, load {os.getloadavg()[0]:.2f}; "
          + ", ".join(f"{k} {v}" for k, v in numbers.items()), flush=True)
    print(f"soak: {len(tally.violations)} violations", flush=True)
    return 1 if tally.violations else 0


if __name__ == "__main__":
    sys.exit(main())
