"""The store: idempotent writes, the outbox's sequence guard, cluster merges."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.errors import StoreError
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
from pipeline.storage import Store
from services import postgres_database

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """The same tests over SQLite and a real PostgreSQL server (a fresh database each)."""
    with ExitStack() as stack:
        if request.param == "postgresql":
            url = stack.enter_context(postgres_database())
        else:
            url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
        s = Store(url)
        stack.callback(s.close)
        yield s


def feed(feed_id: str = "ledger") -> FeedSource:
    return FeedSource(id=feed_id, name="Harbor City Ledger", url=f"https://{feed_id}.example/feed.xml")


def entry(n: int, feed_id: str = "ledger") -> FeedEntry:
    return FeedEntry(feed_id=feed_id, url=f"https://{feed_id}.example/a/{n}", title=f"Title {n}", summary="s")


def article(n: int, minutes: int = 0) -> Article:
    return Article(
        id=f"a{n}",
        url=f"https://ledger.example/a/{n}",
        outlet="Harbor City Ledger",
        title=f"Title {n}",
        text=f"text {n} " * 50,
        published=T0 + timedelta(minutes=minutes),
        fetched_at=T0 + timedelta(hours=1),
        text_source=TextSource.PAGE,
        feed_id="ledger",
    )


def assign(n: int, cluster: str, absorbed: tuple[str, ...] = ()) -> Assignment:
    return Assignment(
        membership=Membership(f"a{n}", cluster, None if cluster == f"a{n}" else "a1", 0.5, 0.9),
        signature=Signature(f"a{n}", b"sig", T0),
        absorbed=absorbed,
    )


def test_feed_entries_are_queued_once_and_validators_kept(store: Store) -> None:
    store.sync_feeds([feed()])
    validators = Validators(etag='"v1"', last_modified="Sun, 01 Nov 2026 12:00:00 GMT")
    assert store.record_feed_fetched("ledger", [entry(1), entry(2)], validators, now=T0, next_attempt_at=T0) == 2
    assert store.record_feed_fetched("ledger", [entry(2), entry(3)], validators, now=T0, next_attempt_at=T0) == 1
    state = store.feed_state("ledger")
    assert state is not None
    assert state.validators == validators
    assert state.entries_seen == 3
    assert [p.entry.url for p in store.pending_entries(10)] == [entry(n).url for n in (1, 2, 3)]


def test_sync_feeds_keeps_polling_state(store: Store) -> None:
    store.sync_feeds([feed()])
    store.record_feed_failure("ledger", "timeout", now=T0, next_attempt_at=T0 + timedelta(hours=1), retire=False)
    store.sync_feeds([FeedSource(id="ledger", name="Renamed", url="https://ledger.example/feed.xml")])
    state = store.feed_state("ledger")
    assert state is not None
    assert (state.source.name, state.status, state.consecutive_failures) == ("Renamed", "failing", 1)


def test_a_failure_streak_is_dated_and_a_repeated_attempt_not_counted(store: Store) -> None:
    store.sync_feeds([feed(), feed("other")])
    later = T0 + timedelta(hours=5)
    store.record_feed_failure("ledger", "503", now=T0, next_attempt_at=T0, retire=False, attempt="run-1")
    store.record_feed_failure("ledger", "503 again", now=later, next_attempt_at=later, retire=False, attempt="run-1",
                              counted=False)
    state = store.feed_state("ledger")
    assert state is not None
    assert (state.consecutive_failures, state.failure_score, state.last_error) == (1, 1.0, "503 again")
    assert (state.failing_since, state.last_attempt_at, state.attempt_key) == (T0, later, "run-1")
    store.record_feed_fetched("ledger", [], Validators(), now=later, next_attempt_at=later, attempt="run-2")
    state = store.feed_state("ledger")
    assert state is not None and (state.failing_since, state.attempt_key, state.status) == (None, "run-2", "active")
    # Many feeds at once, in chunks, by id.
    ids = [f"f{n:05d}" for n in range(1200)]
    store.sync_feeds([feed(i) for i in ids])
    assert [s.source.id for s in store.feed_states(["other", *ids])] == [*ids, "other"]


def test_saving_an_article_twice_adds_it_once_and_closes_its_entry(store: Store) -> None:
    store.sync_feeds([feed()])
    store.record_feed_fetched("ledger", [entry(1)], Validators(), now=T0, next_attempt_at=T0)
    a = replace(article(1), url=entry(1).url)
    assert store.save_article(a) is True
    assert store.save_article(a) is False
    assert store.pending_entries(10) == []
    assert store.articles_by_id(["a1"])["a1"] == a


def test_unclustered_articles_come_in_arrival_order(store: Store) -> None:
    for n, minutes in ((1, 30), (2, 10), (3, 20)):
        store.save_article(article(n, minutes))
    assert [a.id for a in store.unclustered_articles(10)] == ["a2", "a3", "a1"]
    assert store.oldest_unclustered_arrival() == T0 + timedelta(minutes=10)
    store.save_assignments([assign(2, "a2")])
    assert [a.id for a in store.unclustered_articles(10)] == ["a3", "a1"]


def test_absorbed_cluster_members_move_and_the_alias_resolves(store: Store) -> None:
    for n in (1, 2, 3):
        store.save_article(article(n, n))
    store.save_assignments([assign(1, "a1"), assign(2, "a2")])
    store.save_assignments([assign(3, "a1", absorbed=("a2",))])
    assert {m.article_id for m in store.memberships_of("a1")} == {"a1", "a2", "a3"}
    assert store.memberships_of("a2") == []
    assert store.resolve_cluster("a2") == "a1"
    assert set(store.dirty_cluster_ids(10)) == {"a1", "a2"}
    _, members, aliases = store.clustering_state(since=T0 - timedelta(days=1))
    assert aliases == {"a2": "a1"}
    assert {m.cluster_id for m in members} == {"a1"}


def test_outbox_keeps_a_document_changed_while_in_flight(store: Store) -> None:
    store.save_article(article(1))
    store.save_assignments([assign(1, "a1")])
    in_flight = store.outbox_batch(10)
    assert [(i.kind, i.doc_id) for i in in_flight] == [("article", "a1")]
    store.save_assignments([assign(1, "a1")])  # changed again before delivery completed
    store.outbox_done(in_flight)
    assert [(i.kind, i.doc_id) for i in store.outbox_batch(10)] == [("article", "a1")]
    store.outbox_done(store.outbox_batch(10))
    assert store.outbox_size() == 0


def test_stories_roundtrip_and_removal_is_queued(store: Store) -> None:
    story = Story(
        id="a1",
        title="Port strike",
        text="body",
        summary="body",
        sources=(Source("a1", "Ledger", "https://l.example/1", "Port strike", T0),),
        first_seen=T0,
        last_seen=T0,
        language="en",
        agency="Reuters",
    )
    store.save_stories([story], [])
    assert store.story("a1") == story
    assert store.cluster_summaries(10)[0].article_count == 1
    store.save_stories([], ["a1"])
    assert store.story("a1") is None
    assert [(i.kind, i.deleted) for i in store.outbox_batch(10)] == [("story", True)]


def test_unwritable_data_directory_is_a_clear_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "file").write_text("x")
    with pytest.raises(StoreError, match="cannot"):
        Store(f"sqlite:///{locked / 'file' / 'store.sqlite3'}")
