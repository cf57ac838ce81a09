"""Several workers on one store share the work: each page fetched once, politeness held between them.

Real `newsagg run --force` processes run at once against a loopback site of three hosts
(127.0.0.1, .2, .3), on one SQLite data directory and on one PostgreSQL database. The
site counts every request (by worker, through the User-Agent) and when it arrived.
Then: a claim left by a worker that died is taken once its lease ends and not before,
and a run killed with SIGKILL is shown as abandoned once the next run starts.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from faultkit import Handler, Web, article_html, fault_settings, rss, serving, write_feed_list
from pipeline.archive import read_page
from pipeline.runner import Pipeline
from pipeline.settings import Settings
from pipeline.storage import Store
from pipeline.storage.schema import runs
from pipeline.storage.base import utc_now
from pipeline.storage.runs import RUN_STALE_AFTER
from services import postgres_database

HOSTS = ("127.0.0.1", "127.0.0.2", "127.0.0.3")
PAGES_PER_HOST = 4
WORKERS = 2
DELAY = 0.4  # seconds between two requests to one host, whichever worker sends them
TOPICS = ("harbour", "railway", "orchard", "library", "glacier", "foundry", "vineyard", "quarry", "airfield")


@dataclass
class Site:
    """Three hosts, each with a feed, a robots.txt and its article pages; every request logged."""

    webs: list[Web]
    log: list[tuple[str, str, str, float]] = field(default_factory=list)  # (host, path, user agent, arrival)
    lock: threading.Lock = field(default_factory=threading.Lock)
    feeds_asked: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    all_asked: threading.Condition = field(default_factory=threading.Condition)

    def requests(self, host: str, path: str | None = None) -> list[tuple[str, float]]:
        with self.lock:
            return [(ua, at) for h, p, ua, at in self.log if h == host and (path is None or p == path)]

    def pages(self) -> list[tuple[str, str]]:
        return [(web.host, f"/a{n}.html") for web in self.webs for n in range(PAGES_PER_HOST)]


@pytest.fixture
def site() -> Iterator[Site]:
    with ExitStack() as stack:
        webs = [stack.enter_context(serving(host=host)) for host in HOSTS]
        yield _build_site(webs)


def _build_site(webs: list[Web]) -> Site:
    site = Site(webs)

    def logged(web: Web, body: bytes, content_type: str, gate: bool = False) -> Callable[[Handler], None]:
        def route(h: Handler) -> None:
            with site.lock:
                site.log.append((web.host, h.path, h.headers.get("User-Agent", ""), time.monotonic()))
            if gate:
                # Each feed answers once every worker asked for it, so the workers fetch pages together.
                with site.all_asked:
                    site.feeds_asked[web.host] += 1
                    site.all_asked.notify_all()
                    site.all_asked.wait_for(lambda: site.feeds_asked[web.host] >= WORKERS, timeout=30)
            h.reply(200, body, content_type)
        return route

    for i, web in enumerate(webs):
        items: list[tuple[str, str, str | None]] = []
        for n in range(PAGES_PER_HOST):
            topic = TOPICS[(i * PAGES_PER_HOST + n) % len(TOPICS)]
            title = f"Host {i} story {n} about the {topic}"
            html = article_html(title, f"{topic}-{i}-{n}")
            web.routes[f"/a{n}.html"] = logged(web, html.encode(), "text/html; charset=utf-8")
            items.append((title, web.url(f"/a{n}.html"), None))
        feed = rss(f"Outlet {i}", items).encode()
        web.routes["/feed.xml"] = logged(web, feed, "application/rss+xml", gate=True)
        web.routes["/robots.txt"] = logged(web, b"User-agent: *\nAllow: /\n", "text/plain")
    return site


def worker_env(site: Site, feeds: Path, data_dir: Path, store_url: str | None, name: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSAGG_")}
    env.update(
        NEWSAGG_DATA_DIR=str(data_dir),
        NEWSAGG_FEEDS_FILE=str(feeds),
        NEWSAGG_SEARCH_BACKEND="sqlite",
        NEWSAGG_FETCH__ALLOWED_HOSTS=json.dumps([f"{w.host}:{w.port}" for w in site.webs]),
        NEWSAGG_FETCH__POLITENESS_DELAY=str(DELAY),
        NEWSAGG_FETCH__USER_AGENT=name,
        NEWSAGG_WORKERS="1",
        NEWSAGG_EXTRACTION__BATCH_SIZE="3",  # several batches each, claimed while the other worker claims
    )
    if store_url is not None:
        env["NEWSAGG_STORE_URL"] = store_url
    return env


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_workers_at_once_fetch_each_page_once_and_keep_the_delay_between_them(
    backend: str, site: Site, tmp_path: Path
) -> None:
    feeds = write_feed_list(tmp_path / "feeds.yaml", {f"outlet{i}": w.url("/feed.xml") for i, w in enumerate(site.webs)})
    with ExitStack() as stack:
        store_url = stack.enter_context(postgres_database()) if backend == "postgresql" else None
        names = [f"newsagg-test-worker{i}" for i in range(WORKERS)]
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "pipeline", "run", "--force", "--json"],
                # One data dir on SQLite (the store is in it); one each beside a PostgreSQL store.
                env=worker_env(site, feeds, tmp_path / ("data" if store_url is None else name), store_url, name),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
            )
            for name in names
        ]
        reports = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            reports.append(json.loads(out))

        total = len(site.pages())
        assert sum(r["articles_added"] for r in reports) == total
        fetched = {page: len(site.requests(*page)) for page in site.pages()}
        assert fetched == {page: 1 for page in site.pages()}, "a page fetched by both workers"
        for web in site.webs:
            robots_by = [ua for ua, _ in site.requests(web.host, "/robots.txt")]
            assert all(robots_by.count(name) <= 1 for name in names), f"robots.txt of {web.host}: {robots_by}"
            starts = sorted(at for _, at in site.requests(web.host))
            gaps = [b - a for a, b in zip(starts, starts[1:])]
            # Slots are DELAY apart; arrivals jitter with the scheduling of a loaded machine (without
            # the shared clock the two workers hit a host within a few milliseconds of each other).
            arrivals = sorted((at, path, ua) for h, path, ua, at in site.log if h == web.host)
            assert min(gaps) > DELAY / 4, f"requests to {web.host} {min(gaps):.3f}s apart: " + ", ".join(
                f"{at - arrivals[0][0]:.3f} {path} {ua[-7:]}" for at, path, ua in arrivals)

        store = Store(store_url or f"sqlite:///{tmp_path / 'data' / 'store.sqlite3'}")
        try:
            assert store.entry_counts() == {"done": total}
            assert store.article_count() == total
            if store_url is None:
                # Both archived into one data dir, into the hour's file they share: every page reads back whole.
                archive = tmp_path / "data" / "archive"
                assert 1 <= len(list(archive.glob("*.warc.gz"))) <= 2  # two if the hour turned during the run
                for article, _, _ in store.iter_articles():
                    record = store.archive_record(article.id)
                    assert record is not None and read_page(archive, record).page.requested_url == article.url
        finally:
            store.close()


def one_worker_settings(site: Site, tmp_path: Path, **extraction: Any) -> Settings:
    """One worker's settings for every host of ``site``, politeness ``DELAY``."""
    feeds = write_feed_list(tmp_path / "feeds.yaml", {f"outlet{i}": w.url("/feed.xml") for i, w in enumerate(site.webs)})
    for web in site.webs:
        site.feeds_asked[web.host] = WORKERS  # one worker here: the feeds need not wait for another
    fetch = {"allowed_hosts": [f"{w.host}:{w.port}" for w in site.webs], "politeness_delay": DELAY}
    return fault_settings(site.webs[0], tmp_path, feeds, fetch=fetch, extraction=extraction)


def test_each_batch_of_a_run_takes_pages_of_every_site_not_one_site_after_another(
    site: Site, tmp_path: Path
) -> None:
    batch = len(HOSTS)
    settings = one_worker_settings(site, tmp_path, batch_size=batch)
    with Pipeline(settings) as pipeline:
        pipeline.poll_feeds(pipeline.load_feeds())
        assert pipeline.fetch_articles() == (len(site.pages()), 0, 0)
    with site.lock:
        pages = [host for host, path, _, _ in sorted(site.log, key=lambda r: r[3]) if path.startswith("/a")]
    # A batch's downloads end before the next batch's begin: each run of three requests is one batch.
    batches = [sorted(pages[i : i + batch]) for i in range(0, len(pages), batch)]
    assert batches == [sorted(HOSTS)] * PAGES_PER_HOST, "a batch held one site's pages, fetched at its pace"


def test_a_pass_takes_no_new_batch_once_its_time_is_up_and_the_next_pass_goes_on(
    site: Site, tmp_path: Path
) -> None:
    # A backlog (a first run, sitemaps, an outage) took one pass hours to fetch: past the DAG's
    # 30-minute timeout for the fetch task, after which nothing would be clustered or indexed.
    settings = one_worker_settings(site, tmp_path, batch_size=len(HOSTS), max_pass_seconds=DELAY / 2)
    with Pipeline(settings) as pipeline:
        pipeline.poll_feeds(pipeline.load_feeds())
        first = pipeline.fetch_articles()
        waiting = len(pipeline.store.pending_entries(100))
        # The batches it had begun (two download at once) are finished and stored; the rest waits.
        assert first[0] + waiting == len(site.pages()) and 0 < first[0] < len(site.pages())
        assert sum(pipeline.store.waiting_entries().values()) == waiting
        second = pipeline.fetch_articles()
        assert first[0] + second[0] == len(site.pages()) and not pipeline.store.pending_entries(100)
    with site.lock:
        fetched = [(host, path) for host, path, _, _ in site.log if path.startswith("/a")]
    assert sorted(fetched) == sorted(site.pages())  # every page once, over the two passes


def test_a_dead_workers_claim_is_taken_once_its_lease_ends_and_not_before(site: Site, tmp_path: Path) -> None:
    web = site.webs[0]
    feeds = write_feed_list(tmp_path / "feeds.yaml", {"outlet": web.url("/feed.xml")})
    site.feeds_asked[web.host] = WORKERS  # one worker here: the feed need not wait for another
    settings = fault_settings(web, tmp_path, feeds, extraction={"claim_lease": 60})
    with Pipeline(settings) as pipeline:
        pipeline.poll_feeds(pipeline.load_feeds())
        dead = Store(settings.resolved_store_url)  # the dead workers' connection
        try:
            # One claimed two minutes ago (its 60 s lease is over), one claimed now.
            # Workers of another machine: whether their processes live cannot be looked up.
            expired = dead.claim_entries(2, "elsewhere/7/a", lease_seconds=60, now=utc_now() - timedelta(minutes=2))
            held = dead.claim_entries(2, "elsewhere/8/b", lease_seconds=60)
        finally:
            dead.close()
        added, failed, deferred = pipeline.fetch_articles()
        assert (added, failed, deferred) == (PAGES_PER_HOST - 2, 0, 0)
        hits = {p.entry.url: len(site.requests(web.host, p.entry.url.removeprefix(web.base))) for p in expired + held}
        assert hits == {**{p.entry.url: 1 for p in expired}, **{p.entry.url: 0 for p in held}}
        assert [p.entry.url for p in pipeline.store.pending_entries(10)] == [p.entry.url for p in held]


def test_a_killed_run_is_shown_abandoned_when_the_next_run_starts(web: Web, tmp_path: Path) -> None:
    reached = threading.Event()

    def stuck(h: Handler) -> None:
        reached.set()
        h.hang()

    web.serve("/feed.xml", rss("Outlet", [("A story about the harbour", web.url("/a.html"), None)]),
              "application/rss+xml")
    web.routes["/a.html"] = stuck
    feeds = write_feed_list(tmp_path / "feeds.yaml", {"outlet": web.url("/feed.xml")})
    settings = fault_settings(web, tmp_path, feeds, fetch={"read_timeout": 30.0, "total_timeout": 30.0})
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSAGG_")}
    env.update(
        NEWSAGG_DATA_DIR=str(settings.data_dir),
        NEWSAGG_FEEDS_FILE=str(feeds),
        NEWSAGG_SEARCH_BACKEND="sqlite",
        NEWSAGG_FETCH__ALLOWED_HOSTS=json.dumps([f"127.0.0.1:{web.port}"]),
        NEWSAGG_FETCH__POLITENESS_DELAY="0",
        NEWSAGG_FETCH__READ_TIMEOUT="30",
        NEWSAGG_FETCH__TOTAL_TIMEOUT="30",
    )
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "run"], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert reached.wait(60), "the run never fetched the page"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def statuses() -> list[str]:
        db = sqlite3.connect(settings.data_dir / "store.sqlite3")
        try:
            return [row[0] for row in db.execute("SELECT status FROM runs ORDER BY id")]
        finally:
            db.close()

    assert statuses() == ["running"]
    web.serve("/a.html", article_html("A story about the harbour", "harbour"))
    with Pipeline(settings) as pipeline:
        report = pipeline.run()
    assert statuses() == ["abandoned", "ok"]
    # The killed worker ran on this machine: its claim on the page is free at once, not after the lease.
    assert report.articles_added == 1


def test_a_run_on_another_host_is_abandoned_only_once_its_heartbeat_is_stale(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    try:
        now = utc_now()
        with store.engine.begin() as conn:
            for beat in (now - RUN_STALE_AFTER - timedelta(minutes=1), now - RUN_STALE_AFTER + timedelta(minutes=1)):
                conn.execute(runs.insert().values(trigger="airflow", started_at=beat, status="running",
                                                  host="elsewhere.example", pid=os.getpid(), heartbeat_at=beat))
        store.start_run("cli", now=now)
        with store.engine.connect() as conn:
            found = [row[0] for row in conn.execute(sa.select(runs.c.status).order_by(runs.c.id))]
        assert found == ["abandoned", "running", "running"]
    finally:
        store.close()

