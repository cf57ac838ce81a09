"""The hard cases of syndication, explainability, bridging, idempotency and order independence."""

from __future__ import annotations

import random
import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from clusterkit import (
    BOILERPLATE,
    BRIDGE_REPORT,
    COURIER_INTRO,
    FERRY_STORY,
    HARBOUR,
    ORCHARD,
    ORSA_BRIEF,
    SHARED_QUOTE,
    T0,
    VELT_BRIEF,
    FakeStore,
    article,
    random_corpus,
    version_1_bytes,
)
from pipeline.clustering import ClusterEngine, cluster_documents
from pipeline.clustering.signatures import Sketch
from pipeline.pool import WorkerPool
from pipeline.runner import Pipeline
from pipeline.settings import ClusteringSettings, Settings


def clusters(settings: ClusteringSettings, *articles: object) -> dict[str, str]:
    memberships = cluster_documents(list(articles), settings)  # type: ignore[arg-type]
    return {m.article_id: m.cluster_id for m in memberships}


def test_abridged_copy_joins_the_full_story(settings: ClusteringSettings) -> None:
    full = article("full", "Marlowe shuts harbour bridge to lorries", HARBOUR)
    short = article("abridged", "Harbour bridge closed", HARBOUR[:3], minutes=40, outlet="gazette")
    result = cluster_documents([full, short], settings)
    assert result[0].cluster_id == result[1].cluster_id
    assert result[1].matched_article_id == "full"
    assert result[1].containment is not None and result[1].containment > 0.8
    assert result[1].jaccard is not None and result[1].jaccard < 0.6  # Jaccard alone would miss it


def test_retitled_rewrapped_copy_joins(settings: ClusteringSettings) -> None:
    full = article("full", "Marlowe shuts harbour bridge to lorries", ["MARLOWE, March 2 (Reuters) - " + HARBOUR[0], *HARBOUR[1:]])
    edited = [p.replace(" said", " says").replace('"', "\u201c", 1).replace('"', "\u201d") for p in HARBOUR]
    edited[3] = edited[3].replace("forty minutes", "half an hour")
    del edited[6]
    rewrapped = [
        "Drivers in the northern estate face long detours from next week, the Courier has learned.",
        "Marlowe (AP) \u2014 " + edited[0] + " " + edited[1],
        "Photo: Lena Brook / AFP",
        *edited[2:5],
        "Also read: Ferry operators eye estuary route",
        " ".join(edited[5:]),
        "(With inputs from agencies)",
        "AFP reported.",
    ]
    copy = article("copy", "Cracks force closure of 1961 bridge", rewrapped, minutes=90, outlet="courier")
    result = clusters(settings, full, copy)
    assert result["full"] == result["copy"]


def test_stories_sharing_a_quoted_paragraph_stay_apart(settings: ClusteringSettings) -> None:
    a = article("bridge", "Bridge closed", [*HARBOUR[:4], SHARED_QUOTE, *HARBOUR[4:]])
    b = article("orchard", "Early harvest", [*ORCHARD[:3], SHARED_QUOTE, *ORCHARD[3:]], minutes=60)
    result = clusters(settings, a, b)
    assert result["bridge"] != result["orchard"]


def test_stories_sharing_a_boilerplate_block_stay_apart(settings: ClusteringSettings) -> None:
    a = article("bridge", "Bridge closed", [*HARBOUR[:4], BOILERPLATE], outlet="courier")
    b = article("orchard", "Early harvest", [*ORCHARD[:4], BOILERPLATE], minutes=60, outlet="courier")
    result = clusters(settings, a, b)
    assert result["bridge"] != result["orchard"]


def test_update_that_became_a_different_story_stays_apart(settings: ClusteringSettings) -> None:
    first = article("first", "Marlowe shuts harbour bridge", HARBOUR)
    follow_up = article(
        "later",
        "Lorry crashes into barrier days after bridge ban",
        [
            "A lorry driver was taken to hospital on Friday after his truck smashed into the new concrete barrier "
            "that blocks heavy traffic from the harbour bridge in Marlowe, three days after the ban came into force.",
            "Police said the driver, a 52-year-old man from the northern estate, appeared to have ignored diversion "
            "signs posted along the coast road and was travelling well above the limit when he hit the barrier.",
            '"This is exactly the kind of accident we feared when the detours were planned in a hurry," said '
            "Tomas Reyl, who runs a haulage firm on the docks and has campaigned for a ferry link.",
            "The council said it would add flashing lights and a second warning sign at the junction with Quay "
            "Street, and that it was reviewing the routes used by lorries during the closure.",
            HARBOUR[4],
            "Traffic on the coast road was held up for more than two hours while the wreck was cleared, and the "
            "barrier will be replaced over the weekend, a council spokeswoman said.",
        ],
        minutes=3 * 1440,
    )
    result = clusters(settings, first, follow_up)
    assert result["first"] != result["later"]


def test_different_story_carrying_over_most_of_a_short_report_stays_apart(settings: ClusteringSettings) -> None:
    # Over half of the first report reappears in the ferry story: containment
    # alone would merge them. The ferry story opens with its own news.
    report = article("report", "Marlowe shuts harbour bridge", BRIDGE_REPORT)
    ferry = article("ferry", "Ferry to carry lorries across estuary", FERRY_STORY, minutes=2 * 1440, outlet="herald")
    without_check = clusters(settings.model_copy(update={"lead_perm": 0}), report, ferry)
    assert without_check["report"] == without_check["ferry"]  # the trap is real
    result = clusters(settings, report, ferry)
    assert result["report"] != result["ferry"]


def test_abridged_copy_under_an_outlets_own_intro_joins(settings: ClusteringSettings) -> None:
    full = article("full", "Marlowe shuts harbour bridge to lorries", HARBOUR)
    copy = article("copy", "Bridge closed", [COURIER_INTRO, *HARBOUR[:3]], minutes=60, outlet="courier")
    result = cluster_documents([full, copy], settings)
    assert result[1].matched_article_id == "full"  # the full story's opening is in the copy's lead
    assert result[1].jaccard is not None and result[1].jaccard < settings.jaccard_threshold


def test_signatures_without_openings_still_match_on_containment(settings: ClusteringSettings) -> None:
    # A window persisted by the first signature format has no lead or opening
    # sketches: the opening check is skipped for those articles.
    engine = ClusterEngine(settings)
    (first,) = engine.add_many([article("full", "Marlowe shuts harbour bridge", HARBOUR)])
    old = replace(first.signature, data=version_1_bytes(Sketch.from_bytes(first.signature.data, engine.params), engine.params))
    restored = ClusterEngine(settings)
    restored.restore([old], [first.membership], {})
    (copy,) = restored.add_many([article("copy", "Bridge closed", HARBOUR[:3], minutes=30, outlet="gazette")])
    assert copy.membership.matched_article_id == "full"


def test_briefs_sharing_stock_sentences_but_not_their_opening_stay_apart(settings: ClusteringSettings) -> None:
    # Velt's brief opens with a stock sentence that Orsa's carries second;
    # Orsa's opens with its own news, which Velt's lacks.
    velt = article("velt", "Velt shares rise", [VELT_BRIEF])
    orsa = article("orsa", "Orsa shares fall", [ORSA_BRIEF], minutes=180)
    velt_copy = article(
        "velt2", "Velt Mining up 4%", [f"PERTH, March 2 (Reuters) - {VELT_BRIEF}", "(With inputs from agencies)"], minutes=30
    )
    without_check = clusters(settings.model_copy(update={"short_opening": 0.0}), velt, orsa)
    assert without_check["velt"] == without_check["orsa"]  # the trap is real
    result = clusters(settings, velt, orsa, velt_copy)
    assert result["velt"] != result["orsa"]
    assert result["velt"] == result["velt2"]


def test_short_items_on_the_same_topic_stay_apart_and_short_copies_join(settings: ClusteringSettings) -> None:
    stock = "Markets in the region were mixed. Traders said volumes were thin ahead of the central bank meeting."
    a = article("a", "Velt shares rise", [f"Shares of Velt Mining rose 4 percent on Monday after the company raised its output forecast. {stock}"])
    b = article("b", "Orsa shares fall", [f"Shares of Orsa Foods fell 2 percent on Tuesday after it cut its profit outlook. {stock}"], minutes=1440)
    a_copy = article(
        "a2",
        "Velt Mining up 4% on forecast",
        [f"PERTH, March 2 (Reuters) - Shares of Velt Mining rose 4 per cent on Monday after the company raised its output forecast. {stock}", "(With inputs from agencies)"],
        minutes=30,
    )
    result = clusters(settings, a, b, a_copy)
    assert result["a"] != result["b"]
    assert result["a"] == result["a2"]


def test_every_member_explains_its_match(settings: ClusteringSettings) -> None:
    founder = article("full", "t", HARBOUR)
    copy = article("copy", "t2", HARBOUR[:5], minutes=10)
    founder_m, copy_m = cluster_documents([copy, founder], settings)[::-1]
    assert founder_m.matched_article_id is None and founder_m.jaccard is None
    assert copy_m.matched_article_id == "full"
    assert copy_m.jaccard is not None and 0 < copy_m.jaccard <= 1
    assert copy_m.containment is not None and copy_m.containment >= copy_m.jaccard


def test_bridging_merges_into_the_older_cluster(settings: ClusteringSettings) -> None:
    store = FakeStore()
    engine = ClusterEngine(settings)
    first_half = article("part1", "Bridge closed", HARBOUR[:4], minutes=10)
    second_half = article("part2", "Survey and budget", HARBOUR[4:], minutes=20)
    store.save(engine.add_many([first_half, second_half]))
    c1, c2 = store.memberships["part1"].cluster_id, store.memberships["part2"].cluster_id
    assert c1 != c2

    engine = store.engine(settings)  # a later run, restored from what was persisted
    (bridge,) = engine.add_many([article("full", "Bridge closed, survey ordered", HARBOUR, minutes=30)])
    assert bridge.membership.cluster_id == c1  # part1 founded the older cluster
    assert bridge.absorbed == (c2,)
    store.save([bridge])
    assert store.aliases == {c2: c1}
    assert {m.cluster_id for m in store.memberships.values()} == {c1}

    # The absorbed id resolves to the survivor when the next run restores.
    engine = store.engine(settings)
    assert engine.cluster_of("part2") == c1
    (late,) = engine.add_many([article("late", "Budget", HARBOUR[5:], minutes=50)])
    assert late.membership.cluster_id == c1 and late.absorbed == ()


def test_cluster_ids_are_stable_and_sort_by_founder_age(settings: ClusteringSettings) -> None:
    older = article("zzz", "t", HARBOUR, minutes=0)
    newer = article("aaa", "t", ORCHARD, minutes=5)
    result = clusters(settings, newer, older)
    assert result["zzz"] < result["aaa"]  # the id starts with the founder's arrival time
    assert result["zzz"].endswith("-zzz")
    assert clusters(settings, older, newer) == result


def test_add_many_is_idempotent_for_known_articles(settings: ClusteringSettings) -> None:
    engine = ClusterEngine(settings)
    full = article("full", "t", HARBOUR)
    first = engine.add_many([full, article("copy", "t", HARBOUR[:4], minutes=5)])
    again = engine.add_many([full, article("copy", "t", HARBOUR[:4], minutes=5)])
    assert [a.membership for a in again] == [a.membership for a in first]
    assert [a.signature for a in again] == [a.signature for a in first]
    assert all(a.absorbed == () for a in again)
    assert len(engine) == 2
    # The same id twice in one batch is one article.
    dup = engine.add_many([article("x", "t", ORCHARD, 9), article("x", "t", ORCHARD, 9)])
    assert dup[0].membership == dup[1].membership and len(engine) == 3


def _final(store: FakeStore) -> dict[str, tuple[str, str | None]]:
    return {k: (m.cluster_id, m.matched_article_id) for k, m in store.memberships.items()}


@pytest.mark.parametrize("seed", [1, 2])
def test_one_batch_equals_ten_arrival_ordered_runs(settings: ClusteringSettings, seed: int) -> None:
    corpus = sorted(random_corpus(seed), key=lambda a: a.arrival_key)
    one = FakeStore()
    one.save(ClusterEngine(settings).add_many(corpus))

    runs = FakeStore()
    size = -(-len(corpus) // 10)
    for start in range(0, len(corpus), size):
        engine = runs.engine(settings)  # a fresh process: state only from the persisted records
        runs.save(engine.add_many(corpus[start : start + size]))

    assert _final(runs) == _final(one)
    assert len({c for c, _ in _final(one).values()}) < len(corpus)  # the corpus does cluster


def _ids(store: FakeStore) -> dict[str, str]:
    return {k: m.cluster_id for k, m in store.memberships.items()}


@pytest.mark.parametrize("seed", [1, 2])
def test_shuffled_runs_give_the_cluster_ids_of_one_batch(settings: ClusteringSettings, seed: int) -> None:
    corpus = random_corpus(seed)
    one = FakeStore()
    one.save(ClusterEngine(settings).add_many(corpus))
    shuffled = random.Random(seed).sample(corpus, len(corpus))

    runs = FakeStore()
    size = -(-len(corpus) // 10)
    for start in range(0, len(corpus), size):
        runs.save(runs.engine(settings).add_many(shuffled[start : start + size]))

    assert _ids(runs) == _ids(one)
    assert runs.aliases  # earlier articles arrived later and renamed clusters
    for absorbed in runs.aliases:  # every id given up leads to a final one
        survivor = absorbed
        while survivor in runs.aliases:
            survivor = runs.aliases[survivor]
        assert survivor in set(_ids(one).values())


def test_an_earlier_article_arriving_later_renames_the_cluster(settings: ClusteringSettings) -> None:
    store = FakeStore()
    store.save(ClusterEngine(settings).add_many([article("copy", "Bridge closed", HARBOUR[:4], minutes=30)]))
    old = store.memberships["copy"].cluster_id
    (full,) = store.engine(settings).add_many([article("full", "Marlowe shuts harbour bridge", HARBOUR, minutes=0)])
    new = full.membership.cluster_id
    assert new.endswith("-full") and new < old
    assert full.absorbed == (old,) and full.membership.matched_article_id == "copy"
    store.save([full])
    assert store.aliases == {old: new} and _ids(store) == {"copy": new, "full": new}


def test_stories_of_shuffled_runs_get_the_ids_of_one_batch(tmp_path: Path) -> None:
    """Through the store: renamed clusters move their members, old stories go, old ids resolve."""
    corpus = random_corpus(5, stories=20)
    settings = Settings(data_dir=tmp_path, search_backend="sqlite", workers=1)
    expected = {m.article_id: m.cluster_id for m in cluster_documents(corpus, settings.clustering)}
    shuffled = random.Random(5).sample(corpus, len(corpus))
    with Pipeline(settings) as pipeline:
        store = pipeline.store
        removed = 0
        for start in range(0, len(corpus), 10):
            for a in shuffled[start : start + 10]:
                store.save_article(a)
            pipeline.cluster()
            removed += pipeline.build_stories()[1]
        found = {k: m.cluster_id for k, m in store.memberships_by_article(expected).items()}
        assert found == expected
        assert removed > 0  # stories of renamed clusters were removed...
        stories = store.stories_by_id(set(expected.values()))
        assert set(stories) == set(expected.values())  # ...and every story has its final id
        _, _, aliases = store.clustering_state(since=T0 - timedelta(days=1))
        assert aliases and all(store.resolve_cluster(old) in stories for old in aliases)


def test_runs_with_a_window_and_eviction_equal_one_batch() -> None:
    settings = ClusteringSettings(window_days=1)
    corpus = sorted(random_corpus(3, stories=60, spread_days=6), key=lambda a: a.arrival_key)
    one = FakeStore()
    one.save(ClusterEngine(settings).add_many(corpus))

    runs = FakeStore()
    window = timedelta(days=1)
    size = -(-len(corpus) // 10)
    engine = ClusterEngine(settings)
    evicted = 0
    for n, start in enumerate(range(0, len(corpus), size)):
        batch = corpus[start : start + size]
        cutoff = batch[0].arrival_key[0] - window
        if n % 2:
            evicted += engine.evict_before(cutoff)  # a long-lived worker evicts...
        else:
            engine = runs.engine(settings, since=cutoff)  # ...a new one restores only the window
        runs.save(engine.add_many(batch))
    assert evicted > 0
    assert _final(runs) == _final(one)


def test_evicted_articles_are_no_longer_matched(settings: ClusteringSettings) -> None:
    engine = ClusterEngine(settings)
    engine.add_many([article("full", "t", HARBOUR)])
    assert engine.evict_before(T0 + timedelta(minutes=1)) == 1
    assert engine.evict_before(T0 + timedelta(minutes=1)) == 0
    (copy,) = engine.add_many([article("copy", "t", HARBOUR, minutes=10)])
    assert copy.membership.matched_article_id is None


def test_window_limits_matching(settings: ClusteringSettings) -> None:
    old = article("old", "t", HARBOUR)
    new = article("new", "t", HARBOUR, minutes=(settings.window_days + 1) * 1440)
    engine = ClusterEngine(settings)
    engine.add_many([old])
    (late,) = engine.add_many([new])
    assert late.membership.matched_article_id is None


def test_batch_matches_undated_documents_with_dated_ones(settings: ClusteringSettings) -> None:
    # newsagg dedup: an undated document arrives at the time of the run, years
    # after the dated copies of the same story in the same file.
    dated = article("dated", "Marlowe shuts harbour bridge", HARBOUR)
    undated = replace(
        article("undated", "Bridge closed", HARBOUR[:4], outlet="gazette"),
        published=None,
        fetched_at=T0 + timedelta(days=900),
    )
    other = replace(article("other", "Early harvest", ORCHARD, outlet="gazette"), published=None)
    result = cluster_documents([undated, other, dated], settings)
    assert [m.article_id for m in result] == ["undated", "other", "dated"]
    assert result[0].cluster_id == result[2].cluster_id != result[1].cluster_id
    assert result[0].matched_article_id == "dated"  # the dated copy came first and named the cluster
    assert result[2].cluster_id.endswith("-dated")


def test_process_pool_gives_the_same_result_and_leaves_the_texts_alone() -> None:
    corpus = [
        replace(a, text=a.text.replace(" the ", " \u201cthe\u201d ") + (" \ud800" if n == 3 else ""))
        for n, a in enumerate(random_corpus(4, stories=20))
    ]
    sizes = [sys.getsizeof(a.text) for a in corpus]
    serial = cluster_documents(corpus, ClusteringSettings())
    with WorkerPool(2) as pool:
        pooled = cluster_documents(corpus, ClusteringSettings(pool_min_batch=10), pool)
    assert pooled == serial
    # Pickling a non-ASCII str would cache a UTF-8 copy inside the caller's text.
    assert [sys.getsizeof(a.text) for a in corpus] == sizes


def test_empty_text_founds_its_own_cluster(settings: ClusteringSettings) -> None:
    result = clusters(settings, article("e1", "Live: updates", []), article("e2", "Live: updates", [], 1))
    assert result["e1"] != result["e2"]
