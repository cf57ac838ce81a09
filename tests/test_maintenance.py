"""Maintenance: retention of signatures and stories, feed health, the search-backend check."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from pipeline.errors import FetchError, GoneError
from pipeline.maintenance import apply_retention, feed_health_summary, search_index_problems
from pipeline.models import (
    Article,
    Assignment,
    FeedEntry,
    FeedSource,
    Membership,
    Signature,
    Source,
    Story,
    TextSource,
    Validators,
)
from pipeline.settings import Settings, load_settings
from pipeline.storage import Store
from pipeline.storage.schema import domain_clock, entries, outbox

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    yield s
    s.close()


def settings(tmp_path: Path, **overrides: object) -> Settings:
    return load_settings(data_dir=tmp_path, **overrides)


def add_story(store: Store, name: str, days_ago: float, size: int = 2) -> list[str]:
    """A cluster of ``size`` articles that arrived ``days_ago``, with its story; returns the article ids."""
    at = NOW - timedelta(days=days_ago)
    store.sync_feeds([FeedSource(id="ledger", name="Ledger", url="https://ledger.example/feed.xml")])
    ids = [f"{name}{i}" for i in range(size)]
    store.record_feed_fetched(
        "ledger",
        [FeedEntry(feed_id="ledger", url=f"https://ledger.example/{i}", title=i) for i in ids],
        Validators(),
        now=at,
        next_attempt_at=at,
    )
    articles = [
        Article(
            id=i, url=f"https://ledger.example/{i}", outlet="Ledger", title=f"Story {name}", text="text " * 100,
            published=at, fetched_at=at, text_source=TextSource.PAGE, feed_id="ledger",
        )
        for i in ids
    ]
    for a in articles:
        store.save_article(a)
    store.save_assignments(
        [
            Assignment(Membership(i, ids[0], None if i == ids[0] else ids[0]), Signature(i, b"sig", at))
            for i in ids
        ]
    )
    story = Story(
        id=ids[0], title=f"Story {name}", text="text", summary="text",
        sources=tuple(Source(a.id, a.outlet, a.url, a.title, a.published) for a in articles),
        first_seen=at, last_seen=at,
    )
    store.save_stories([story], [])
    store.outbox_done(store.outbox_batch(1000))
    return ids


def test_retention_drops_only_signatures_outside_the_window(store: Store, tmp_path: Path) -> None:
    old = add_story(store, "old", days_ago=30)
    new = add_story(store, "new", days_ago=1)

    result = apply_retention(store, settings(tmp_path), now=NOW)

    assert result.signatures_dropped == len(old)
    assert result.signature_cutoff == NOW - timedelta(days=7)
    assert (result.stories_pruned, result.articles_pruned, result.story_cutoff) == (0, 0, None)
    sigs, _, _ = store.clustering_state(since=NOW - timedelta(days=365))
    assert {s.article_id for s in sigs} == set(new)
    assert store.article_count() == len(old) + len(new)  # articles stay stored and searchable
    assert store.story(old[0]) is not None
    assert apply_retention(store, settings(tmp_path), now=NOW).signatures_dropped == 0


def test_story_retention_deletes_old_stories_with_their_articles(store: Store, tmp_path: Path) -> None:
    old = add_story(store, "old", days_ago=120, size=3)
    kept = add_story(store, "kept", days_ago=20)

    result = apply_retention(store, settings(tmp_path, story_retention_days=90), now=NOW)

    assert (result.stories_pruned, result.articles_pruned) == (1, 3)
    assert result.story_cutoff == NOW - timedelta(days=90)
    assert store.story(old[0]) is None and store.story(kept[0]) is not None
    assert set(store.articles_by_id(old + kept)) == set(kept)
    assert store.memberships_of(old[0]) == []
    queued = {(i.kind, i.doc_id, i.deleted) for i in store.outbox_batch(100)}
    assert queued == {("story", old[0], True)} | {("article", i, True) for i in old}
    with store.engine.connect() as conn:  # the URLs are remembered: a feed cannot bring them back
        assert conn.execute(sa.select(sa.func.count()).select_from(entries)).scalar_one() == 5
    again = apply_retention(store, settings(tmp_path, story_retention_days=90), now=NOW)
    assert (again.stories_pruned, again.articles_pruned) == (0, 0)


def test_story_retention_never_cuts_inside_the_matching_window(store: Store, tmp_path: Path) -> None:
    recent = add_story(store, "recent", days_ago=3)
    result = apply_retention(store, settings(tmp_path, story_retention_days=1), now=NOW)
    assert result.story_cutoff == NOW - timedelta(days=7)
    assert result.stories_pruned == 0 and store.story(recent[0]) is not None


def test_story_retention_works_in_batches(store: Store, tmp_path: Path) -> None:
    for n in range(3):
        add_story(store, f"s{n}-", days_ago=100, size=1)
    assert store.prune_stories_before(NOW - timedelta(days=90), limit=2) == (2, 2)
    assert store.prune_stories_before(NOW - timedelta(days=90), limit=2) == (1, 1)
    assert store.prune_stories_before(NOW - timedelta(days=90), limit=2) == (0, 0)
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(outbox)).scalar_one() == 6


def test_feed_health_lists_failing_retired_and_never_working_feeds(store: Store) -> None:
    feeds = [FeedSource(id=n, name=n.title(), url=f"https://{n}.example/feed.xml") for n in
             ("fine", "flaky", "broken", "gone", "new")]
    store.sync_feeds(feeds)
    store.record_feed_fetched("fine", [], Validators(), now=NOW, next_attempt_at=NOW)
    store.record_feed_fetched("broken", [], Validators(), now=NOW - timedelta(days=9), next_attempt_at=NOW)
    store.record_feed_failure("flaky", "timeout", now=NOW, next_attempt_at=NOW, retire=False)
    for n in range(4):
        store.record_feed_failure(
            "broken", str(FetchError("https://broken.example/feed.xml", "HTTP 500")), now=NOW,
            next_attempt_at=NOW + timedelta(hours=2**n), retire=False,
        )
    store.record_feed_failure("gone", str(GoneError("https://gone.example/feed.xml", "HTTP 410")), now=NOW,
                              next_attempt_at=None, retire=True)

    health = feed_health_summary(store, min_failures=3)

    assert (health.total, health.healthy) == (5, 2)  # "new" was never polled: nothing wrong yet
    assert [(p.feed_id, p.consecutive_failures) for p in health.failing] == [("broken", 4)]
    assert health.failing[0].next_attempt_at == NOW + timedelta(hours=8)  # backed off
    assert "HTTP 500" in (health.failing[0].last_error or "")
    assert [p.feed_id for p in health.retired] == ["gone"]
    assert sorted(health.never_succeeded) == ["flaky", "gone"]
    data = json.loads(json.dumps(health.as_dict()))
    assert data["failing"][0]["last_success_at"] == (NOW - timedelta(days=9)).isoformat()
    assert [p.feed_id for p in feed_health_summary(store, min_failures=1).failing] == ["broken", "flaky"]
    with pytest.raises(ValueError, match="at least 1"):
        feed_health_summary(store, min_failures=0)


def test_search_check_is_for_elasticsearch_only(tmp_path: Path) -> None:
    assert search_index_problems(settings(tmp_path)) is None


def test_search_check_reports_what_elasticsearch_lacks(tmp_path: Path) -> None:
    from services import ensure_elasticsearch

    from pipeline.search.elastic import ElasticsearchIndex

    es = {"urls": [ensure_elasticsearch()], "index_prefix": f"t-maint-{uuid.uuid4().hex[:8]}"}
    configured = settings(tmp_path, search_backend="elasticsearch", es=es)
    index = ElasticsearchIndex(configured.es)
    try:
        problems = search_index_problems(configured)
        assert problems and all("newsagg es setup" in p for p in problems)
        index.install()
        assert search_index_problems(configured) == []
    finally:
        index.drop()
        index.close()


def test_retention_prunes_domain_clocks_unused_for_a_day(store: Store, tmp_path: Path) -> None:
    store.reserve_domain_slot("ledger.example", 2.0)
    store.reserve_domain_slot("courier.example", 2.0)
    now = datetime.now(UTC)

    kept = apply_retention(store, settings(tmp_path), now=now + timedelta(hours=23))
    later = apply_retention(store, settings(tmp_path), now=now + timedelta(days=1, minutes=1))

    assert (kept.domain_clocks_pruned, later.domain_clocks_pruned) == (0, 2)
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(domain_clock)).scalar_one() == 0
    # A pruned domain's clock starts afresh: its next request may start at once.
    assert store.reserve_domain_slot("ledger.example", 2.0) < 0.01


def test_a_retention_batch_queues_its_deletions_in_two_statements(store: Store) -> None:
    # One statement per deleted story and article was most of a batch's time (3 s for 500 stories),
    # with the store's write lock held.
    for n in range(3):
        add_story(store, f"s{n}-", days_ago=100)
    queued: list[str] = []
    sa.event.listen(store.engine, "before_cursor_execute",
                    lambda conn, cursor, sql, *_: queued.append(sql) if sql.startswith("INSERT INTO outbox ") else None)
    assert store.prune_stories_before(NOW - timedelta(days=90)) == (3, 6)
    assert len(queued) == 2, queued
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(outbox.c.kind, outbox.c.deleted).where(outbox.c.deleted)).all()
    assert sorted(kind for kind, _ in rows) == ["article"] * 6 + ["story"] * 3
