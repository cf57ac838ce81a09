"""The store's "clusters" lock on PostgreSQL cannot be lost silently.

The lock's backend is terminated (``pg_terminate_backend``) between two writes of a locked
stage: the stage must fail with ``LockLost`` and commit nothing more, and a rerun completes.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from pipeline.clustering import cluster_documents
from pipeline.errors import LockLost
from pipeline.models import Article, TextSource
from pipeline.runner import Pipeline
from pipeline.settings import Settings
from pipeline.storage import Store

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def corpus(stories: int = 12, copies: int = 3) -> list[Article]:
    """Stories of random words, each published by several outlets."""
    rng = random.Random(7)
    vocab = ["".join(rng.choice("bcdfgklmnprstvz") + rng.choice("aeiou") for _ in range(3)) for _ in range(2000)]
    out = []
    for s in range(stories):
        text = "\n\n".join(" ".join(rng.choice(vocab) for _ in range(60)) for _ in range(5))
        for c in range(copies):
            at = T0 + timedelta(minutes=10 * s + c)
            out.append(
                Article(
                    id=f"s{s}-{c}", url=f"https://outlet{c}.example/s{s}", outlet=f"outlet{c}", title=f"story {s}",
                    text=text, published=at, fetched_at=at, text_source=TextSource.PAGE,
                )
            )
    return out


def groups(memberships: dict[str, str]) -> set[frozenset[str]]:
    by_cluster: dict[str, set[str]] = {}
    for article_id, cluster_id in memberships.items():
        by_cluster.setdefault(cluster_id, set()).add(article_id)
    return {frozenset(g) for g in by_cluster.values()}


@contextmanager
def pipeline_on(url: str, tmp_path: Path) -> Iterator[Pipeline]:
    settings = Settings(data_dir=tmp_path, store_url=url, search_backend="sqlite")
    with Pipeline(settings, progress=False) as pipeline:
        yield pipeline


def terminate_lock_holder(url: str) -> None:
    """Terminate the backend holding an advisory lock in this (the test's own) database."""
    admin = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with admin.begin() as conn:
            pids = conn.execute(
                sa.text(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                )
            ).scalars().all()
            assert len(pids) == 1
            assert conn.execute(sa.select(sa.func.pg_terminate_backend(pids[0]))).scalar()
    finally:
        admin.dispose()


def before_call(obj: Any, name: str, number: int, action: Callable[[], None]) -> None:
    """Run ``action`` just before the ``number``-th call of ``obj.name`` (then call it as usual)."""
    real = getattr(obj, name)
    calls = 0

    def hooked(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == number:
            action()
        return real(*args, **kwargs)

    setattr(obj, name, hooked)


def test_clustering_fails_when_its_lock_is_lost_and_commits_nothing_after(pg_store_url: str, tmp_path: Path) -> None:
    articles = corpus()
    with pipeline_on(pg_store_url, tmp_path) as pipeline:
        store = pipeline.store
        for article in articles:
            store.save_article(article)
        # The lock's backend dies between the first batch's commit and the second's.
        before_call(store, "save_assignments", 2, lambda: terminate_lock_holder(pg_store_url))
        with pytest.raises(LockLost, match="lost the store's lock") as raised:
            pipeline.cluster(batch_size=10)
        assert raised.value.transient  # Airflow retries the task
        assert len(store.memberships_by_article(a.id for a in articles)) == 10  # the first batch only

        del store.save_assignments  # the hook; a rerun (a retry) completes the stage
        assert pipeline.cluster(batch_size=10)[0] == len(articles) - 10
        found = {k: m.cluster_id for k, m in store.memberships_by_article(a.id for a in articles).items()}
        one_batch = {a.id: m.cluster_id for a, m in zip(articles, cluster_documents(articles, pipeline.settings.clustering))}
        assert found == one_batch
        assert len(groups(found)) == 12


def test_story_building_fails_when_its_lock_is_lost(pg_store_url: str, tmp_path: Path) -> None:
    articles = corpus(stories=3)
    with pipeline_on(pg_store_url, tmp_path) as pipeline:
        store = pipeline.store
        for article in articles:
            store.save_article(article)
        pipeline.cluster()
        before_call(store, "save_stories", 1, lambda: terminate_lock_holder(pg_store_url))
        with pytest.raises(LockLost):
            pipeline.build_stories()
        assert len(store.dirty_cluster_ids(10)) == 3 and all(store.story(c) is None for c in store.cluster_ids())

        del store.save_stories
        assert pipeline.build_stories() == (3, 0)
        assert store.dirty_cluster_ids(10) == []


def test_locked_work_fails_when_the_lock_was_lost_after_its_last_write(pg_store_url: str) -> None:
    store = Store(pg_store_url)
    try:
        with pytest.raises(LockLost, match="before the work ended"):
            with store.exclusive("clusters"):
                terminate_lock_holder(pg_store_url)
        with store.exclusive("clusters"):  # the server released it
            pass
    finally:
        store.close()


def test_the_server_ends_the_session_of_a_worker_whose_host_vanished_within_minutes(pg_store_url: str) -> None:
    # A host powered off or cut off the network sends nothing more: the server kept its session,
    # and the clusters (or feed-list) lock it held, until TCP keepalive gave up on it: after two
    # hours and eleven minutes with the server's defaults, every other worker's clustering waiting
    # all along. Seen for real with the holder in a network namespace whose link was then cut: its
    # lock still held five minutes later; with these settings the waiting worker took it in ~2 min.
    store = Store(pg_store_url)
    try:
        with store.exclusive("clusters"):
            holder = store._held.conn  # the session that holds the lock
            probes = [int(holder.exec_driver_sql(f"SHOW {name}").scalar())
                      for name in ("tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count")]
            holder.rollback()
        idle, interval, count = probes
        assert 0 < idle + interval * count <= 180, probes
    finally:
        store.close()


def test_a_worker_gives_up_on_a_server_that_vanished_within_minutes_unless_its_url_says_otherwise(
    pg_store_url: str,
) -> None:
    # The other side of the test above: a command or worker whose database host vanished waited
    # for the system's TCP timeouts (a connection attempt: minutes; a silent session: hours).
    def parameters(url: str) -> dict[str, str]:
        store = Store(url)
        try:
            with store.engine.connect() as conn:
                return dict(conn.connection.driver_connection.info.get_parameters())
        finally:
            store.close()

    given = parameters(pg_store_url)
    assert 0 < int(given.get("connect_timeout", 0)) <= 30, given
    assert given.get("keepalives", "1") == "1"
    probes = [int(given.get(f"keepalives_{name}", 0)) for name in ("idle", "interval", "count")]
    assert 0 < probes[0] + probes[1] * probes[2] <= 180, given
    own = parameters(f"{pg_store_url}{'&' if '?' in pg_store_url else '?'}connect_timeout=3&keepalives_idle=30")
    assert (own["connect_timeout"], own["keepalives_idle"]) == ("3", "30")
