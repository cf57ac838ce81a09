"""The LSH index in Redis (datasketch's Redis storage) against a real Redis server.

The whole demo corpus through several workers sharing one Redis index is in
test_stack_concurrency.py; here, incremental runs and the index's own operations.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from pipeline.clustering import ClusterEngine
from pipeline.clustering.lsh import RedisLSH
from pipeline.demo.run import demo_settings, write_demo_feeds
from pipeline.demo.server import CorpusServer
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
