"""The LSH index in Redis (datasketch's Redis storage) against a real Redis server.

The whole demo corpus through several workers sharing one Redis index is in
test_stack_concurrency.py; here, incremental runs and the index's own operations.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.cli import main
from pipeline.clustering import ClusterEngine
from pipeline.clustering.lsh import RedisLSH
from pipeline.demo.run import demo_settings, write_demo_feeds
from pipeline.demo.server import CorpusServer
from pipeline.errors import StoreUnavailable
from pipeline.runner import Pipeline
from pipeline.settings import ClusteringSettings, Settings
from demo_truth import clusters_in, expected_clusters


def redis_settings(settings: Settings, redis_url: str, basename: str) -> Settings:
    clustering = settings.clustering.model_copy(update={"lsh_redis_url": redis_url, "lsh_redis_basename": basename})
    return settings.model_copy(update={"clustering": clustering})


def test_incremental_runs_restore_from_the_store_and_share_the_redis_index(
    corpus_server: CorpusServer, tmp_path: Path, redis_url: str, lsh_basename: str
) -> None:
    """Half the feeds first, then all of them: the second engine finds the first's articles
    already in Redis (left alone) and clusters the rest against them."""
    base = corpus_server.base_url
    feeds = write_demo_feeds(base, tmp_path / "feeds.yaml")
    listed = yaml.safe_load(feeds.read_text(encoding="utf-8"))
    half = tmp_path / "half.yaml"
    half.write_text(yaml.safe_dump({**listed, "feeds": listed["feeds"][: len(listed["feeds"]) // 2]}),
                    encoding="utf-8")
    settings = redis_settings(demo_settings(base, tmp_path / "data", feeds), redis_url, lsh_basename)
    with Pipeline(settings) as pipeline:
        first = pipeline.run(half, force=True)
        second = pipeline.run(force=True)
        assert first.clustered > 0 and second.clustered > 0
        assert first.clustered + second.clustered == pipeline.store.article_count()
        assert clusters_in(pipeline.store) == expected_clusters(base)


def test_redis_lsh_insert_query_remove(redis_url: str, lsh_basename: str) -> None:
    settings = ClusteringSettings(lsh_redis_url=redis_url, lsh_redis_basename=lsh_basename)
    engine = ClusterEngine(settings)
    lsh = RedisLSH(redis_url, lsh_basename, settings.num_perm, engine.bands, engine.rows, settings.seed)
    rng = np.random.default_rng(7)
    values = rng.integers(0, 2**32, size=(3, settings.num_perm), dtype=np.uint64).astype(np.uint32)
    values[1] = values[0]  # a duplicate of the first
    lsh.insert(["a", "b", "c"], values, skip_present=False)
    assert set(lsh.query(values[0])) == {"a", "b"}
    assert lsh.query(values[2]) == ["c"]
    lsh.insert(["a"], values[2:3], skip_present=True)  # already there: left as it was
    assert "a" not in lsh.query(values[2])
    lsh.remove(["b", "missing"])
    assert lsh.query(values[0]) == ["a"]
    # A second client (another worker) sees the same index.
    other = RedisLSH(redis_url, lsh_basename, settings.num_perm, engine.bands, engine.rows, settings.seed)
    assert other.query(values[0]) == ["a"]


def test_unreachable_redis_is_one_transient_error_without_credentials(
    corpus_server: CorpusServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis down stops clustering with our own transient error; the CLI prints one line, no secret."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    base = corpus_server.base_url
    feeds = write_demo_feeds(base, tmp_path / "feeds.yaml")
    monkeypatch.setenv("NEWSAGG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("NEWSAGG_FETCH__ALLOWED_HOSTS", json.dumps([base.removeprefix("http://")]))
    monkeypatch.setenv("NEWSAGG_CLUSTERING__LSH_REDIS_URL", f"redis://:hunter2@127.0.0.1:{port}/0")
    code = main(["run", "--force", "--feeds", str(feeds)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.splitlines()[-1].startswith(f"newsagg: error: the LSH index in Redis at redis://127.0.0.1:{port}/0")
    assert "hunter2" not in err and "Traceback" not in err


def test_a_run_after_redis_comes_back_clusters_what_was_left(
    corpus_server: CorpusServer, tmp_path: Path, redis_url: str, lsh_basename: str
) -> None:
    base = corpus_server.base_url
    settings = demo_settings(base, tmp_path / "data", write_demo_feeds(base, tmp_path / "feeds.yaml"))
    down = redis_settings(settings, "redis://127.0.0.1:1/0", lsh_basename)
    with Pipeline(down) as pipeline, pytest.raises(StoreUnavailable) as raised:
        pipeline.run(force=True)
    assert raised.value.transient  # a retry can help: Airflow retries the task (not a terminal error)
    with Pipeline(redis_settings(settings, redis_url, lsh_basename)) as pipeline:
        report = pipeline.run()
        assert report.clustered == pipeline.store.article_count() == 49
        assert clusters_in(pipeline.store) == expected_clusters(base)
