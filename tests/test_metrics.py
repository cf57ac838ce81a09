"""`newsagg metrics`: the Prometheus text of a store filled by a real demo run, parsed back, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from demo_truth import expected, expected_clusters
from prometheus_client.parser import text_string_to_metric_families
from services import postgres_database

from pipeline.cli import main
from pipeline.errors import ConfigError
from pipeline.demo.server import CorpusServer
from pipeline.metrics import render
from pipeline.runner import Pipeline
from pipeline.settings import Settings

STAGES = {"load_feeds", "poll_feeds", "fetch_articles", "cluster_articles", "merge_stories", "index_stories"}


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, demo_settings: Settings) -> Iterator[Settings]:
    with ExitStack() as stack:
        if request.param == "postgresql":
            url = stack.enter_context(postgres_database())
            yield demo_settings.model_copy(update={"store_url": url})
        else:
            yield demo_settings


def samples(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Every sample by metric name, then by its labels; the text must parse whole."""
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        assert family.type == "gauge" and family.documentation, family.name
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def by(values: dict[tuple[tuple[str, str], ...], float], label: str) -> dict[str, float]:
    return {dict(labels)[label]: value for labels, value in values.items()}


def test_metrics_of_a_demo_run_match_the_store(
    corpus_server: CorpusServer, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    truth = expected()
    feed_count = sum(1 for line in settings.resolved_feeds_file.read_text().splitlines() if "- name:" in line)
    with Pipeline(settings) as pipeline:
        assert samples(render(pipeline.store, settings))["newsagg_articles"] == {
            (("text_source", s),): 0.0 for s in ("page", "feed_content", "feed_summary", "input")
        }
        report = pipeline.run(force=True)
        text = render(pipeline.store, settings)
        [run] = pipeline.store.recent_runs(1)
        sources = Counter(article.text_source.value for article, _, _ in pipeline.store.iter_articles())

    found = samples(text)
    articles = sum(len(c["members"]) for c in truth["clusters"]) + len(truth["singletons"])
    assert sum(sources.values()) == articles == report.articles_added
    assert by(found["newsagg_articles"], "text_source") == {"page": 0, "feed_content": 0, "feed_summary": 0,
                                                             "input": 0, **sources}
    assert found["newsagg_stories"] == {(): len(expected_clusters(corpus_server.base_url))}
    assert by(found["newsagg_feeds"], "state") == {"active": feed_count, "failing": 0, "retired": 0, "removed": 0}
    assert by(found["newsagg_entries"], "state") == {"pending": 0, "done": articles, "failed": 0}
    assert found["newsagg_outbox_items"] == {(): 0} and found["newsagg_dead_letters"] == {(): 0}
    store = "postgresql" if settings.store_url else "sqlite"
    assert found["newsagg_info"] == {(("search_backend", "sqlite"), ("store", store)): 1}

    # The last run: when, how it ended, what it did, how long each stage took.
    assert found["newsagg_run_in_progress"] == {(): 0}
    assert run.finished_at is not None
    assert found["newsagg_last_run_start_timestamp_seconds"] == {(): run.started_at.timestamp()}
    assert found["newsagg_last_run_end_timestamp_seconds"] == {(): run.finished_at.timestamp()}
    assert found["newsagg_last_success_timestamp_seconds"] == {(): run.finished_at.timestamp()}
    assert by(found["newsagg_last_run_status"], "status") == {"ok": 1, "partial": 0, "failed": 0, "abandoned": 0}
    assert by(found["newsagg_last_run_feeds"], "outcome") == {"ok": feed_count, "not_modified": 0, "failed": 0,
                                                               "retired": 0}
    assert by(found["newsagg_last_run_articles"], "outcome") == {"added": articles, "failed": 0, "deferred": 0}
    durations = by(found["newsagg_last_run_stage_duration_seconds"], "stage")
    assert durations == run.stats["stage_seconds"] and set(durations) == STAGES

    # `newsagg metrics` prints the same text.
    capsys.readouterr()
    args = ["metrics", "--data-dir", str(settings.data_dir)]
    with pytest.MonkeyPatch.context() as env:
        env.setenv("NEWSAGG_FEEDS_FILE", str(settings.resolved_feeds_file))
        if settings.store_url:
            env.setenv("NEWSAGG_STORE_URL", settings.store_url)
        assert main(args) == 0
    assert capsys.readouterr().out == text


def test_the_last_run_that_ended_is_reported_and_a_failed_one_keeps_the_last_success(
    corpus_server: CorpusServer, demo_settings: Settings, tmp_path: Path
) -> None:
    with Pipeline(demo_settings) as pipeline:
        pipeline.run(force=True)
        [ok] = pipeline.store.recent_runs(1)
        with pytest.raises(ConfigError, match="feed list not found"):
            pipeline.run(tmp_path / "missing.yaml")
        running = pipeline.store.start_run("cli")  # a run at work now, in this process
        found = samples(render(pipeline.store, demo_settings))
        pipeline.store.finish_run(running, "ok", {})

    assert found["newsagg_run_in_progress"] == {(): 1}
    assert by(found["newsagg_last_run_status"], "status") == {"ok": 0, "partial": 0, "failed": 1, "abandoned": 0}
    assert ok.finished_at is not None
    assert found["newsagg_last_success_timestamp_seconds"] == {(): ok.finished_at.timestamp()}
    assert set(by(found["newsagg_last_run_stage_duration_seconds"], "stage")) == {"load_feeds"}
    assert by(found["newsagg_last_run_feeds"], "outcome") == dict.fromkeys(("ok", "not_modified", "failed", "retired"), 0)
