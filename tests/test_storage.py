"""The store: idempotent writes, the outbox's sequence guard, cluster merges."""

from __future__ import annotations

import multiprocessing
import random
import string
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

import pipeline.storage.feeds as feed_store
from pipeline.cli import main
from pipeline.errors import StoreError
from pipeline.fetching.politeness import DomainLimiter
from pipeline.models import (
    AgencyCredit,
    ArchiveRecord,
    Article,
    Assignment,
    FeedEntry,
    FeedSource,
    IndexFailure,
    Membership,
    Signature,
    Source,
    Story,
    TextSource,
    Validators,
)
from pipeline.storage import NewArticle, PendingEntry, Store, StoryFilter
from pipeline.storage.schema import domain_clock, outbox_seq
from pipeline.urls import MAX_URL_LENGTH, canonicalize
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


def test_workers_claim_disjoint_entries_and_a_deferred_entry_goes_to_another_worker(store: Store) -> None:
    store.sync_feeds([feed()])
    store.record_feed_fetched("ledger", [entry(n) for n in range(1, 6)], Validators(), now=T0, next_attempt_at=T0)
    first = store.claim_entries(2, "w1", lease_seconds=60)
    second = store.claim_entries(10, "w2", lease_seconds=60)
    assert [p.entry.url for p in first] == [entry(n).url for n in (1, 2)]
    assert [p.entry.url for p in second] == [entry(n).url for n in (3, 4, 5)]
    assert store.claim_entries(10, "w3", lease_seconds=60) == []
    # w1 defers entry 1 (its page may come back): w1 does not take it again, another worker may.
    store.record_entry_failure(entry(1).url, "HTTP 503", final=False)
    assert store.claim_entries(10, "w1", lease_seconds=60) == []
    assert [p.entry.url for p in store.claim_entries(10, "w3", lease_seconds=60)] == [entry(1).url]


def test_a_claim_takes_the_pending_entries_round_robin_over_their_sites(store: Store) -> None:
    # Each feed's entries are discovered together: taken in that order, a batch held one site's
    # pages, fetched at its polite pace while the other sites' pages waited for later batches.
    sites = ("ledger", "courier", "gazette")
    store.sync_feeds([feed(site) for site in sites])
    for minutes, site in enumerate(sites):
        store.record_feed_fetched(site, [entry(n, site) for n in range(1, 5)], Validators(),
                                  now=T0 + timedelta(minutes=minutes), next_attempt_at=T0)
    first = [p.entry.url for p in store.claim_entries(6, "w1", lease_seconds=60)]
    assert sorted(first) == sorted(entry(n, site).url for site in sites for n in (1, 2))
    second = [p.entry.url for p in store.claim_entries(3, "w2", lease_seconds=60)]
    assert sorted(second) == sorted(entry(3, site).url for site in sites)
    rest = [p.entry.url for p in store.claim_entries(10, "w3", lease_seconds=60)]
    assert sorted(rest) == sorted(entry(4, site).url for site in sites)
    assert store.claim_entries(10, "w4", lease_seconds=60) == []


def test_a_claim_shares_out_a_publishers_section_feeds_as_one_site(store: Store) -> None:
    # Politeness is per site: a publisher with a feed per section had a share of each batch per
    # feed, and the batch went at its pace while the other sites' pages waited.
    sections = [FeedSource(id=f"ledger-{name}", name="Harbor City Ledger", url=f"https://ledger.example/{name}.xml")
                for name in ("world", "business", "sport")]
    store.sync_feeds([*sections, feed("courier"), feed("gazette")])
    for minutes, source in enumerate(sections):
        pages = [FeedEntry(feed_id=source.id, url=f"https://www.ledger.example/{source.id}/{n}", title="t", summary="s")
                 for n in range(1, 5)]
        store.record_feed_fetched(source.id, pages, Validators(), now=T0 + timedelta(minutes=minutes), next_attempt_at=T0)
    for minutes, site in enumerate(("courier", "gazette"), start=3):
        store.record_feed_fetched(site, [entry(n, site) for n in range(1, 5)], Validators(),
                                  now=T0 + timedelta(minutes=minutes), next_attempt_at=T0)

    def sites(claim: list[PendingEntry]) -> list[str]:
        return sorted(p.entry.url.split("/")[2].removeprefix("www.") for p in claim)

    assert sites(store.claim_entries(6, "w1", lease_seconds=60)) == ["courier.example", "courier.example",
                                                                     "gazette.example", "gazette.example",
                                                                     "ledger.example", "ledger.example"]
    assert sites(store.claim_entries(6, "w2", lease_seconds=60)) == ["courier.example", "courier.example",
                                                                     "gazette.example", "gazette.example",
                                                                     "ledger.example", "ledger.example"]
    # Once the small sites run out, the publisher's pages fill the batches.
    assert sites(store.claim_entries(20, "w3", lease_seconds=60)) == ["ledger.example"] * 8


def test_a_feeds_backlog_does_not_keep_the_other_feeds_out_of_the_claims(store: Store) -> None:
    # A first run (or one after an outage) discovers a publisher's whole backlog before the next
    # feed is polled: the oldest free entries a claim picks from were all its, and every batch
    # went at its polite pace until the backlog was nearly gone.
    store.sync_feeds([feed(site) for site in ("ledger", "courier", "gazette")])
    backlog = [FeedEntry(feed_id="ledger", url=f"https://ledger.example/a/{n:03}", title="t", summary="s")
               for n in range(1, 101)]
    store.record_feed_fetched("ledger", backlog, Validators(), now=T0, next_attempt_at=T0)
    for minutes, site in enumerate(("courier", "gazette"), start=1):
        store.record_feed_fetched(site, [entry(n, site) for n in range(1, 3)], Validators(),
                                  now=T0 + timedelta(minutes=minutes), next_attempt_at=T0)
    first = [p.entry.url for p in store.claim_entries(3, "w1", lease_seconds=60)]
    assert sorted(first) == sorted([backlog[0].url, entry(1, "courier").url, entry(1, "gazette").url])
    second = [p.entry.url for p in store.claim_entries(3, "w2", lease_seconds=60)]
    assert sorted(second) == sorted([backlog[1].url, entry(2, "courier").url, entry(2, "gazette").url])
    # Then the backlog, oldest first.
    assert [p.entry.url for p in store.claim_entries(2, "w3", lease_seconds=60)] == [backlog[2].url, backlog[3].url]


def test_a_claim_made_while_another_is_being_made_gets_its_own_entries(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.sync_feeds([feed(site) for site in ("ledger", "courier", "gazette")])
    for minutes, site in enumerate(("ledger", "courier", "gazette")):
        store.record_feed_fetched(site, [entry(n, site) for n in range(1, 5)], Validators(),
                                  now=T0 + timedelta(minutes=minutes), next_attempt_at=T0)
    choosing, chosen = threading.Event(), threading.Event()
    real_round_robin = feed_store._round_robin

    def first_claim_pauses(urls: list[str], limit: int) -> list[str]:
        if threading.current_thread().name == "first":
            choosing.set()
            assert chosen.wait(30)
        return real_round_robin(urls, limit)

    monkeypatch.setattr(feed_store, "_round_robin", first_claim_pauses)
    claims: dict[str, list[str]] = {}

    def claim(worker: str) -> None:
        claims[worker] = [p.entry.url for p in store.claim_entries(3, worker, lease_seconds=60)]

    first = threading.Thread(target=claim, args=("w1",), name="first")
    first.start()
    assert choosing.wait(30)  # the first claim has read its candidates and is choosing among them
    second = threading.Thread(target=claim, args=("w2",), name="second")
    second.start()
    time.sleep(0.5)
    chosen.set()
    first.join(30)
    second.join(30)
    assert len(claims["w1"]) == 3 and len(claims["w2"]) == 3
    assert not set(claims["w1"]) & set(claims["w2"])


def test_a_claim_does_not_take_an_entry_finished_while_it_chose(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    if store.engine.dialect.name == "sqlite":
        pytest.skip("on SQLite the claim holds the write lock: nothing else writes while it chooses")
    store.sync_feeds([feed()])
    store.record_feed_fetched("ledger", [entry(n) for n in (1, 2, 3)], Validators(), now=T0, next_attempt_at=T0)
    real_round_robin = feed_store._round_robin

    def a_late_worker_finishes_one(urls: list[str], limit: int) -> list[str]:
        # A worker whose lease had ended stores entry 1's article now, in its own transaction.
        with store.engine.begin() as conn:
            conn.execute(sa.text("UPDATE entries SET state = 'done' WHERE url = :url"), {"url": entry(1).url})
        return real_round_robin(urls, limit)

    monkeypatch.setattr(feed_store, "_round_robin", a_late_worker_finishes_one)
    claimed = [p.entry.url for p in store.claim_entries(3, "w1", lease_seconds=60)]
    assert claimed == [entry(2).url, entry(3).url]


def test_a_workers_next_claim_renews_the_claims_it_still_holds(store: Store) -> None:
    store.sync_feeds([feed()])
    store.record_feed_fetched("ledger", [entry(n) for n in (1, 2)], Validators(), now=T0, next_attempt_at=T0)
    now = datetime.now(UTC)
    store.claim_entries(1, "w1", lease_seconds=60, now=now - timedelta(seconds=50))
    store.claim_entries(1, "w1", lease_seconds=60, now=now)  # entry 1's lease now ends in 60 s, not 10
    assert store.claim_entries(10, "w2", lease_seconds=60, now=now + timedelta(seconds=30)) == []
    assert len(store.claim_entries(10, "w2", lease_seconds=60, now=now + timedelta(seconds=61))) == 2


def test_sync_feeds_keeps_polling_state(store: Store) -> None:
    store.sync_feeds([feed()])
    store.record_feed_failure("ledger", "timeout", now=T0, next_attempt_at=T0 + timedelta(hours=1), retire=False)
    store.sync_feeds([FeedSource(id="ledger", name="Renamed", url="https://ledger.example/feed.xml")])
    state = store.feed_state("ledger")
    assert state is not None
    assert (state.source.name, state.status, state.consecutive_failures) == ("Renamed", "failing", 1)


def test_a_sitemap_source_keeps_its_kind_cross_host_flag_and_high_water_mark(store: Store) -> None:
    sitemap = FeedSource(id="news", name="News", url="https://ledger.example/news.xml", kind="sitemap", cross_host=True)
    store.sync_feeds([feed(), sitemap])
    store.record_feed_fetched("news", [], Validators(), now=T0, next_attempt_at=T0, high_water=T0 - timedelta(hours=1))
    store.record_feed_fetched("news", [], Validators(), now=T0, next_attempt_at=T0)  # nothing new: the mark stays
    state = store.feed_state("news")
    assert state is not None and (state.source, state.high_water) == (sitemap, T0 - timedelta(hours=1))
    ledger = store.feed_state("ledger")
    assert ledger is not None and (ledger.source.kind, ledger.source.cross_host, ledger.high_water) == (
        "feed", False, None)


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


def test_saving_an_article_twice_adds_it_once_and_closes_its_entry_and_keeps_its_credit(store: Store) -> None:
    store.sync_feeds([feed()])
    store.record_feed_fetched("ledger", [entry(1)], Validators(), now=T0, next_attempt_at=T0)
    credit = AgencyCredit(agency="Reuters", kind="contributor", rule="contributed", evidence="Reuters contributed.")
    a = replace(article(1), url=entry(1).url, credit=credit)
    assert store.save_article(a) is True
    assert store.save_article(a) is False
    assert store.pending_entries(10) == []
    assert store.articles_by_id(["a1"])["a1"] == a


def test_saving_a_batch_counts_new_articles_once_and_closes_every_entry(store: Store) -> None:
    store.sync_feeds([feed()])
    store.record_feed_fetched("ledger", [entry(n) for n in range(1, 6)], Validators(), now=T0, next_attempt_at=T0)
    store.save_article(replace(article(1), url=entry(1).url))
    # Entry 3's page names article 2's canonical URL: one article, both entries closed.
    batch = [NewArticle(replace(article(n), url=entry(n).url), entry(n).url) for n in (1, 2, 4)]
    batch.insert(2, NewArticle(replace(article(2), url=entry(2).url), entry(3).url))
    assert store.save_articles(batch) == 2  # a2 and a4; a1 was stored, a2 came twice
    assert [p.entry.url for p in store.pending_entries(10)] == [entry(5).url]
    assert set(store.articles_by_id([f"a{n}" for n in range(1, 6)])) == {"a1", "a2", "a4"}
    assert store.save_articles([]) == 0


def test_the_longest_url_canonicalize_lets_through_is_stored_on_every_backend(store: Store) -> None:
    # PostgreSQL's btree indexes hold at most 2,704 bytes an entry (the entries' and the
    # articles' URL keys); letters that do not compress, as in a tracking parameter.
    rng = random.Random(5)
    base = "https://ledger.example/a?"
    longest = base + "".join(rng.choice(string.ascii_letters) for _ in range(MAX_URL_LENGTH - len(base)))
    assert canonicalize(longest) == longest
    assert canonicalize(longest + "x") is None
    store.sync_feeds([feed()])
    long_entry = replace(entry(1), url=longest)
    assert store.record_feed_fetched("ledger", [long_entry], Validators(), now=T0, next_attempt_at=T0) == 1
    assert store.save_articles([NewArticle(replace(article(1), url=longest), longest)]) == 1
    assert store.articles_by_id(["a1"])["a1"].url == longest


def test_an_article_keeps_its_dates_and_paywall_mark(store: Store) -> None:
    a = replace(
        article(1),
        page_published=T0 - timedelta(days=900),
        page_modified=T0 + timedelta(minutes=5),
        feed_published=T0,
        paywalled=True,
        text_source=TextSource.FEED_CONTENT,
        text_source_reason="paywalled: class=paywall",
    )
    store.save_article(a)
    assert store.articles_by_id(["a1"])["a1"] == a


def test_unclustered_articles_come_in_arrival_order(store: Store) -> None:
    for n, minutes in ((1, 30), (2, 10), (3, 20)):
        store.save_article(article(n, minutes))
    assert [a.id for a in store.unclustered_articles(10)] == ["a2", "a3", "a1"]
    assert store.oldest_unclustered_arrival() == T0 + timedelta(minutes=10)
    store.save_assignments([assign(2, "a2")])
    assert [a.id for a in store.unclustered_articles(10)] == ["a3", "a1"]


def test_an_article_waits_for_clustering_at_the_arrival_it_was_stored_with(store: Store) -> None:
    # Two entries of a batch whose pages are one article: the first copy is stored, and queued so.
    first, later_copy = article(1, 30), replace(article(1, 30), published=T0 + timedelta(minutes=5))
    store.save_articles([NewArticle(first, "https://ledger.example/e/1"), NewArticle(later_copy, "https://ledger.example/e/2")])
    store.save_article(article(2, 20))
    assert [a.id for a in store.unclustered_articles(10)] == ["a2", "a1"]
    assert store.oldest_unclustered_arrival() == T0 + timedelta(minutes=20)


def test_articles_whose_membership_a_change_took_are_clustered_again(store: Store) -> None:
    # A revision takes its article's membership, a re-extraction those of its article's cluster:
    # they are clustered again, in arrival order, with the articles never clustered.
    page = ArchiveRecord("pages.warc.gz", 0, 100)
    for n, minutes in ((1, 30), (2, 10), (3, 20), (4, 40)):
        store.save_article(article(n, minutes), archived=page if n == 1 else None)
    store.save_assignments([assign(1, "a1"), assign(2, "a1"), assign(3, "a3")])
    assert [a.id for a in store.unclustered_articles(10)] == ["a4"]
    store.revise_article(replace(article(3, 20), text="corrected " * 50), article(3).url, reason="page changed")
    assert [a.id for a in store.unclustered_articles(10)] == ["a3", "a4"]
    assert store.replace_articles([(replace(article(1, 30), text="extracted again " * 50), page)]) == 1
    assert [a.id for a in store.unclustered_articles(10)] == ["a2", "a3", "a1", "a4"]
    assert store.oldest_unclustered_arrival() == T0 + timedelta(minutes=10)
    store.save_assignments([assign(2, "a2"), assign(3, "a3"), assign(1, "a1"), assign(4, "a4")])
    assert store.unclustered_articles(10) == [] and store.oldest_unclustered_arrival() is None


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


def test_a_dag_run_tasks_batch_commits_add_their_counts_to_its_row_once_each(store: Store) -> None:
    run_id = store.start_run("airflow", airflow_run="manual__1")
    store.counting_run = run_id
    store.save_articles([NewArticle(article(n), article(n).url) for n in (1, 2)])
    store.save_articles([NewArticle(article(1), article(1).url)])  # stored already: adds nothing
    store.save_assignments([assign(1, "a1"), assign(2, "a1")])
    store.save_stories([Story(id="a1", title="Title 1", text="t", summary="t", sources=(), first_seen=T0,
                              last_seen=T0)], [])
    store.outbox_done(store.outbox_batch(10))
    store.counting_run = None
    store.save_articles([NewArticle(article(3), article(3).url)])  # outside the run's tasks: not counted
    store.add_counts(run_id, {"articles_failed": 1})
    assert store.counted("manual__1") == {"articles_added": 2, "clustered": 2, "clusters_merged": 0,
                                          "stories_built": 1, "stories_removed": 0, "indexed": 3,
                                          "articles_failed": 1}
    # The report's stats replace the row's, and keep what was counted for a run cleared and run again.
    store.finish_run(run_id, "ok", {"articles_added": 2})
    assert store.recent_runs(1)[0].stats["counted"]["articles_added"] == 2
    assert store.counted("manual__2") == {}


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


def test_outbox_seq_grows_with_every_change_across_deliveries(store: Store) -> None:
    """The seq is the document's version in the search index: it must never repeat or go back,
    also after a delivery removed the item (which once restarted it at 1)."""
    store.save_article(article(1))
    store.save_article(article(2))
    store.save_assignments([assign(1, "a1"), assign(2, "a1")])
    first = store.outbox_batch(10)
    assert first[0].seq == first[1].seq  # one transaction, one number
    store.outbox_done(first)
    store.save_assignments([assign(1, "a1")])
    (second,) = store.outbox_batch(10)
    assert second.seq > first[0].seq
    store.outbox_done([second])
    store.save_assignments([assign(1, "a1")])
    (third,) = store.outbox_batch(10)
    assert third.seq > second.seq


def test_workers_queueing_one_story_at_once_leave_the_number_of_the_last_commit(store: Store) -> None:
    """Numbers grow in commit order: the outbox ends with the highest number handed out,
    whichever of the concurrent transactions committed last."""
    def save(worker: int) -> None:
        for n in range(10):
            store.save_stories([Story(id="s1", title=f"Strike {worker}.{n}", text="body", summary="body",
                                      sources=(Source("a1", "Ledger", "https://l.example/1", "Strike", T0),),
                                      first_seen=T0, last_seen=T0)], [])

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(save, range(4)))
    (item,) = store.outbox_batch(10)
    with store.engine.connect() as conn:
        assert item.seq == conn.execute(sa.select(outbox_seq.c.last)).scalar_one()


def test_refused_items_move_to_the_dead_letters_after_max_attempts(store: Store) -> None:
    store.save_article(article(1))
    store.save_assignments([assign(1, "a1")])
    (item,) = store.outbox_batch(10)
    refused = IndexFailure("article", "a1", "400 mapper_parsing_exception", transient=False)
    busy = IndexFailure("article", "a1", "429 too many requests", transient=True)

    assert store.outbox_failed([(item, busy)], max_attempts=2) == []  # not the document's fault: not counted
    assert store.outbox_failed([(item, refused)], max_attempts=2) == []
    status = store.outbox_status()
    assert (status.waiting, status.retrying, status.dead_letters) == (1, 1, [])

    store.save_assignments([assign(1, "a1")])  # changed while the refused version was in flight
    assert store.outbox_failed([(item, refused)], max_attempts=2) == []  # the new version starts afresh
    (changed,) = store.outbox_batch(10)
    assert changed.seq > item.seq and store.outbox_status().retrying == 0
    assert store.outbox_failed([(changed, refused)], max_attempts=2) == []
    assert store.outbox_failed([(changed, refused)], max_attempts=2) == [changed]

    status = store.outbox_status()
    assert (status.waiting, status.retrying) == (0, 0) and store.outbox_batch(10) == []
    (dead,) = status.dead_letters
    assert (dead.kind, dead.doc_id, dead.seq, dead.deleted, dead.attempts) == ("article", "a1", changed.seq, False, 2)
    assert dead.last_error == "400 mapper_parsing_exception" and dead.failed_at.tzinfo is not None

    assert store.retry_dead_letters([("story", "a1")]) == []
    assert store.retry_dead_letters([("article", "a1")]) == [("article", "a1")]
    (retried,) = store.outbox_batch(10)
    assert retried.seq > changed.seq and store.outbox_status().dead_letters == []
    assert store.outbox_failed([(retried, refused)], max_attempts=1) == [retried]
    assert store.retry_dead_letters() == [("article", "a1")]  # every one

    # Delivering a newer version makes an older dead letter obsolete.
    store.outbox_failed([(item, refused) for item in store.outbox_batch(10)], max_attempts=1)
    store.save_assignments([assign(1, "a1")])
    store.outbox_done(store.outbox_batch(10))
    assert store.outbox_status().dead_letters == []


def test_requeue_missing_queues_what_the_store_no_longer_holds(store: Store) -> None:
    store.save_article(article(1))
    store.save_article(article(2))  # never clustered: not indexable
    store.save_assignments([assign(1, "a1")])
    store.outbox_done(store.outbox_batch(10))
    keys = [("article", "a1"), ("article", "a2"), ("story", "gone")]
    assert store.requeue_missing(keys) == [("article", "a2"), ("story", "gone")]
    assert [(i.kind, i.doc_id, i.deleted) for i in store.outbox_batch(10)] == [
        ("article", "a2", False), ("story", "gone", False)
    ]


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


def test_pruning_a_story_and_a_membership_joining_it_cannot_interleave(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two connections: while retention deletes story a1 (it has read which articles to delete), clustering
    on another connection adds article a3 to that story. Interleaved, a3 is left in a story that no longer
    exists and is never rebuilt; atomic, the second writer waits and its membership marks the story for a rebuild."""
    for n in (1, 2, 3):
        store.save_article(article(n, n))
    store.save_assignments([assign(1, "a1"), assign(2, "a1")])
    store.save_stories([Story(id="a1", title="Old", text="t", summary="t", sources=(), first_seen=T0, last_seen=T0)], [])
    # The racer gives up at once where it would have to wait, and tries again after the pruning committed.
    racer = Store(store.url if store.engine.dialect.name == "sqlite" else store.url + "?options=-c%20lock_timeout%3D100")
    if store.engine.dialect.name == "sqlite":
        racer.engine.dispose()
        sa.event.listen(racer.engine, "connect", lambda dbapi, _: dbapi.execute("PRAGMA busy_timeout=0"))
    outcome: list[str] = []

    def race(conn: object, cursor: object, statement: str, *_: object) -> None:
        if statement.startswith("DELETE") and not outcome:  # the pruning has read, and starts writing
            try:
                racer.save_assignments([assign(3, "a1")])
                outcome.append("interleaved")
            except StoreError:
                outcome.append("waited")
            # Readers do not wait for the pruning (the racer gives up on any wait): they see what was committed.
            assert {m.article_id for m in racer.memberships_of("a1")} >= {"a1", "a2"}

    sa.event.listen(store.engine, "before_cursor_execute", race)
    try:
        assert store.prune_stories_before(T0 + timedelta(days=1)) == (1, 2)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", race)
    if outcome == ["waited"]:
        racer.save_assignments([assign(3, "a1")])
    racer.close()
    assert store.membership("a3") is not None
    # a3's story is rebuilt by the next build (a dirty mark), or a3 went with the story: not orphaned.
    assert store.dirty_cluster_ids(10) == ["a1"], outcome
    assert outcome == ["waited"]


def test_a_value_postgresql_refuses_is_one_line_naming_the_feed_or_article() -> None:
    """SQLite keeps a 40-character language tag in String(20); PostgreSQL refuses it, and says which item."""
    with postgres_database() as url:
        store = Store(url)
        try:
            long_tag = "x" * 40
            with pytest.raises(StoreError) as caught:
                store.sync_feeds([feed("ok"), replace(feed(), language=long_tag)])
            message = str(caught.value)
            assert message.startswith("the store refused feed ledger (https://ledger.example/feed.xml)")
            assert "value too long" in message and "\n" not in message
            assert store.feed_states() == []  # the feed list is written whole or not at all
            with pytest.raises(StoreError, match=r"^the store refused article https://ledger.example/a/1 .*value too long"):
                store.save_article(replace(article(1), language=long_tag))
        finally:
            store.close()


def test_a_read_postgresql_gives_up_on_is_one_line_naming_the_store() -> None:
    """A table locked longer than the session waits (a migration or a vacuum full elsewhere): the read fails in one line."""
    with postgres_database() as url:
        impatient = sa.make_url(url).update_query_dict({"options": "-c lock_timeout=200"})
        store = Store(impatient.render_as_string(hide_password=False))
        other = sa.create_engine(url, poolclass=sa.pool.NullPool)
        try:
            store.sync_feeds([feed()])
            with other.connect() as conn, conn.begin():
                conn.exec_driver_sql("LOCK TABLE articles, feeds IN ACCESS EXCLUSIVE MODE")
                for read in (lambda: store.articles_by_id(["a1"]), store.article_count, store.feed_states):
                    with pytest.raises(StoreError, match=r"^cannot read the store \(postgresql\+psycopg://.*lock timeout") as caught:
                        read()
                    assert "\n" not in str(caught.value)
            assert store.article_count() == 0
        finally:
            store.close()
            other.dispose()


def test_newsagg_run_refuses_a_bad_language_tag_in_the_feed_list_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(f"feeds:\n  - name: Ledger\n    url: https://ledger.example/feed.xml\n    language: {'x' * 40}\n")
    with postgres_database() as url:
        monkeypatch.setenv("NEWSAGG_STORE_URL", url)
        assert main(["run", "--feeds", str(feeds), "--data-dir", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{feeds}: feed #1 ('Ledger'): 'language' 'xxxx" in err and "is not a language tag such as 'en' or 'pt-BR'" in err


def test_cluster_pages_list_every_cluster_once_in_order_across_ties(store: Store) -> None:
    # 23 stories: sizes 1 to 3 and two last-seen times, so many tie on both and are ordered by id.
    def story(n: int) -> Story:
        size, seen = 1 + n % 3, T0 + timedelta(hours=n % 2, microseconds=7)
        sources = tuple(Source(f"s{n}-{k}", f"Outlet {k}", f"https://o{k}.example/{n}", "Title", T0) for k in range(size))
        return Story(id=f"c{n:02d}", title=f"Story {n}", text="body", summary="body", sources=sources,
                     first_seen=T0, last_seen=seen)

    built = [story(n) for n in range(23)]
    store.save_stories(built, [])
    expected = [s.id for s in sorted(built, key=lambda s: (-s.article_count, -s.last_seen.timestamp(), s.id))]

    listed: list[str] = []
    page = store.cluster_page(5)
    while True:
        listed.extend(c.id for c in page.clusters)
        if page.next is None:
            break
        page = store.cluster_page(5, after=page.next)
    assert listed == expected
    assert [c.id for c in store.all_cluster_summaries(page=4)] == expected
    # A cluster added before the cursor's place does not shift the page after it.
    first = store.cluster_page(5)
    store.save_stories([replace(story(98), id="c98", last_seen=T0 + timedelta(days=1))], [])  # the largest, newest
    assert [c.id for c in store.cluster_page(5, after=first.next).clusters] == expected[5:10]
    assert [c.id for c in store.all_cluster_summaries(min_articles=3)] == ["c98", *expected[:7]]
    with pytest.raises(ValueError):
        store.cluster_page(5, after="not-a-cursor")
    # The export's reading, in chunks across the same ties: least recently seen first, then by id.
    everything = sorted([*built, replace(story(98), id="c98", last_seen=T0 + timedelta(days=1))],
                        key=lambda s: (s.last_seen, s.id))
    assert [s.id for s in store.iter_stories(chunk=4)] == [s.id for s in everything]
    assert [s.id for s in store.iter_stories(since=T0 + timedelta(hours=1), chunk=3)] == [
        s.id for s in everything if s.last_seen >= T0 + timedelta(hours=1)]


def test_story_pages_list_the_newest_first_once_across_ties_and_filter(store: Store) -> None:
    # 13 stories on 3 last-seen times (ties ordered by id, descending); every third from the
    # Ledger (articles a0, a3, ...), every other one in German and credited to dpa.
    def story(n: int) -> Story:
        seen = T0 + timedelta(hours=n % 3)
        return Story(id=f"c{n:02d}", title=f"Story {n}", text="body", summary="body",
                     sources=(Source(f"a{n}", "Outlet", None, "Title", None),), first_seen=seen - timedelta(hours=1),
                     last_seen=seen, language="de" if n % 2 else "en", agency="dpa" if n % 2 else None)

    built = [story(n) for n in range(13)]
    store.save_stories(built, [])
    for n in range(0, 13, 3):
        store.save_article(article(n))
    store.save_assignments([assign(n, f"c{n:02d}") for n in range(0, 13, 3)])
    newest = sorted(built, key=lambda s: (s.last_seen, s.id), reverse=True)

    listed: list[str] = []
    page = store.story_page(4)
    while True:
        listed.extend(s.id for s in page.stories)
        if page.next is None:
            break
        page = store.story_page(4, after=page.next)
    assert listed == [s.id for s in newest]
    odd = [s.id for s in newest if int(s.id[1:]) % 2]
    assert [s.id for s in store.story_page(20, StoryFilter(language="de")).stories] == odd
    assert [s.id for s in store.story_page(20, StoryFilter(agency="dpa", language="de")).stories] == odd
    assert [s.id for s in store.story_page(20, StoryFilter(outlet="Harbor City Ledger")).stories] == [
        s.id for s in newest if int(s.id[1:]) % 3 == 0]
    assert {s.last_seen for s in store.story_page(20, StoryFilter(since=T0 + timedelta(hours=2))).stories} == {
        T0 + timedelta(hours=2)}
    assert {s.first_seen for s in store.story_page(20, StoryFilter(until=T0 - timedelta(minutes=1))).stories} == {
        T0 - timedelta(hours=1)}
    with pytest.raises(ValueError):
        store.story_page(4, after="not-a-cursor")


def test_an_entry_twice_in_one_feed_is_queued_once_with_its_later_update(store: Store) -> None:
    store.sync_feeds([feed()])
    first = replace(entry(1), updated=T0)
    again = replace(entry(1), updated=T0 + timedelta(hours=1), title="Title 1, updated")
    added = store.record_feed_fetched("ledger", [first, again, entry(2)], Validators(), now=T0, next_attempt_at=T0)
    assert added == 2
    assert [(p.entry.url, p.entry.title, p.entry.updated, p.revisit) for p in store.pending_entries(10)] == [
        (entry(1).url, "Title 1, updated", T0 + timedelta(hours=1), False),
        (entry(2).url, "Title 2", None, False),
    ]


def test_a_process_forked_inside_the_clusters_lock_does_not_keep_it(tmp_path: Path) -> None:
    # A stage run alone (an Airflow task, `cluster` then `build_stories` in one process) starts its
    # worker pool inside the lock: the workers outlive the locked work and must not hold the lock.
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    worker = multiprocessing.get_context("fork").Process(target=time.sleep, args=(30,))
    try:
        with store.exclusive("clusters"):
            worker.start()
        taken = threading.Event()

        def take_it_again() -> None:
            with store.exclusive("clusters"):
                taken.set()

        threading.Thread(target=take_it_again, daemon=True).start()
        assert taken.wait(5), "the forked worker kept the lock"
    finally:
        worker.kill()
        worker.join()
        store.close()


def test_requests_of_two_workers_stay_a_delay_apart_when_the_store_made_one_wait(store: Store) -> None:
    # A worker asking for a slot while another transaction holds the clock gets it once that
    # transaction ends; its slot was counted from when it asked, a second in the past by then, so
    # it and the next worker's request started together (two requests to a host 0.09 s apart in CI).
    delay, hold = 1.0, 1.0
    store.reserve_domain_slot("ledger.example", 0.001)
    time.sleep(0.01)  # that slot is over
    asking, started = threading.Event(), {}

    def hold_the_clock() -> None:
        with store.engine.begin() as conn:
            conn.execute(domain_clock.update().where(domain_clock.c.domain == "ledger.example")
                         .values(next_start=domain_clock.c.next_start))
            asking.set()
            time.sleep(hold)

    def request(worker: str) -> None:
        DomainLimiter(total=4, per_domain=1, delay=delay, clock=store.reserve_domain_slot).acquire("ledger.example")
        started[worker] = time.monotonic()

    holder = threading.Thread(target=hold_the_clock)
    holder.start()
    asking.wait(timeout=10)
    request("first")  # waits for the holder
    request("second")
    holder.join()
    assert started["second"] - started["first"] > delay / 2
