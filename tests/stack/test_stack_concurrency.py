"""Several workers at once on one PostgreSQL store, as the stack runs them.

Real `newsagg run` processes (the Celery workers of the stack run the same stages) poll
and fetch the same feeds of the demo corpus at the same moment. They must end with
each article stored once and the clusters a single worker finds, and the store's
"clusters" lock must hold clustering and story building to one worker at a time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pipeline.clustering import ClusterEngine
from pipeline.demo.run import demo_settings, write_demo_feeds
from pipeline.demo.server import CorpusServer
from pipeline.runner import Pipeline
from pipeline.storage import Store
from demo_truth import clusters_in, expected_clusters

WORKERS = 3


def worker_env(base_url: str, feeds: Path, data_dir: Path, store_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSAGG_")}
    env.update(
        NEWSAGG_DATA_DIR=str(data_dir),
        NEWSAGG_FEEDS_FILE=str(feeds),
        NEWSAGG_STORE_URL=store_url,
        NEWSAGG_SEARCH_BACKEND="sqlite",
        NEWSAGG_FETCH__ALLOWED_HOSTS=json.dumps([base_url.split("://", 1)[1]]),
        NEWSAGG_FETCH__POLITENESS_DELAY="0",
        NEWSAGG_WORKERS="1",  # the processes are the parallelism here
    )
    return env


def test_workers_at_once_store_each_article_once_and_cluster_as_one_worker(
    corpus_server: CorpusServer, tmp_path: Path, pg_store_url: str
) -> None:
    base = corpus_server.base_url
    feeds = write_demo_feeds(base, tmp_path / "feeds.yaml")

    # The reference: one worker, embedded defaults (SQLite store, in-process LSH).
    with Pipeline(demo_settings(base, tmp_path / "single", feeds)) as single:
        single.run(force=True)
        single_clusters = clusters_in(single.store)
        single_articles = single.store.article_count()
    assert single_clusters == expected_clusters(base)

    Store(pg_store_url).close()  # the schema exists before the race (workers also create it safely)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "pipeline", "run", "--force", "--json"],
            env=worker_env(base, feeds, tmp_path / f"worker{i}", pg_store_url),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
        )
        for i in range(WORKERS)
    ]
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        reports.append(json.loads(out))
    # Every worker polled every feed; between them they stored and clustered each article once.
    assert all(r["failed_feeds"] == [] for r in reports)
    assert sum(r["articles_added"] for r in reports) == single_articles
    assert sum(r["clustered"] for r in reports) == single_articles

    store = Store(pg_store_url)
    try:
        assert store.article_count() == single_articles
        assert store.entry_counts() == {"done": single_articles}
        assert clusters_in(store) == single_clusters
        assert store.dirty_cluster_ids(10) == []
        assert store.outbox_size() == 0
        for members in single_clusters:
            cluster_id = store.membership(next(iter(members)))
            assert cluster_id is not None
            story = store.story(cluster_id.cluster_id)
            assert story is not None and {s.article_id for s in story.sources} == members
    finally:
        store.close()


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_clustering_waits_for_the_lock_and_resumes_from_what_the_holder_committed(
    backend: str, corpus_server: CorpusServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Another worker holds the "clusters" lock and clusters part of the articles meanwhile: our
    cluster() waits, then restores its state under the lock, so the remainder joins the clusters
    the other worker founded instead of founding duplicates of them."""
    base = corpus_server.base_url
    feeds = write_demo_feeds(base, tmp_path / "feeds.yaml")
    settings = demo_settings(base, tmp_path / "data", feeds)
    if backend == "postgresql":
        settings = settings.model_copy(update={"store_url": request.getfixturevalue("pg_store_url")})
    with Pipeline(settings) as pipeline:
        pipeline.poll_feeds(pipeline.load_feeds())
        pipeline.fetch_articles()
        total = pipeline.store.article_count()
        other = Store(settings.resolved_store_url)  # another worker's connection to the same store
        done: list[tuple[int, int]] = []
        try:
            with other.exclusive("clusters"):
                worker = threading.Thread(target=lambda: done.append(pipeline.cluster()))
                worker.start()
                time.sleep(0.5)
                assert worker.is_alive() and done == []  # blocked on the lock
                # Meanwhile the holder clusters the first half of the articles.
                engine = ClusterEngine(settings.clustering)
                other.save_assignments(engine.add_many(other.unclustered_articles(limit=total // 2)))
            worker.join(timeout=120)
        finally:
            other.close()
        assert done and done[0][0] == total - total // 2
        assert clusters_in(pipeline.store) == expected_clusters(base)
