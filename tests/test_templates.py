"""Outlet template learning: the pure rules (pipeline.templates) and the counts in the store,
on SQLite and PostgreSQL, with several writers at once."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from pipeline.models import Article, TextSource
from pipeline.settings import ExtractionSettings
from pipeline.storage import Store
from pipeline.storage.schema import template_blocks
from pipeline.templates import KnownBlock, StrippedBlock, fingerprint, strip
from services import postgres_database

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
SETTINGS = ExtractionSettings()  # template_min_articles 5, half-life 30 days, keeps half the text
BOX = "Sign up to the Ledger Morning briefing, in your inbox every weekday at 7am."


ITEMS = ["budget", "timetable", "staffing", "parking", "lighting", "drainage", "signage", "fencing"]


def body(topic: str, paragraphs: int = 5) -> list[str]:
    return [
        f"The {topic} board met on Tuesday to discuss the {item} part of its plan, which residents of the "
        f"district have argued about for months, and agreed to publish the {topic} costs by spring."
        for item in ITEMS[:paragraphs]
    ]


def make(n: int, paragraphs: list[str], *, outlet: str = "Ledger", domain: str = "ledger.example",
         hours: float = 0) -> Article:
    return Article(
        id=f"{domain}-{n}",
        url=f"https://www.{domain}/news/{n}",
        outlet=outlet,
        title=f"Story {n}",
        text="\n\n".join(paragraphs),
        published=T0,
        fetched_at=T0 + timedelta(hours=hours),
        text_source=TextSource.PAGE,
    )


def saved_text(s: Store, article: Article) -> str:
    return s.articles_by_id([article.id])[article.id].text


# -- the rules ------------------------------------------------------------------------------------


def known(text: str, weight: float, at: datetime = T0) -> dict[int, KnownBlock]:
    return {fingerprint(text): KnownBlock(weight=weight, articles=int(weight), last_seen=at)}


def test_a_block_is_template_from_n_articles_on() -> None:
    text = "\n\n".join([BOX, *body("harbour")])
    assert strip(text, known(BOX, 4), T0, SETTINGS) == (text, [])
    assert strip(text, known(BOX, 5), T0, SETTINGS) == ("\n\n".join(body("harbour")), [StrippedBlock(BOX, 5)])


def test_fingerprints_ignore_case_and_spacing_but_not_numbers() -> None:
    assert fingerprint("Sign up  for our\nnewsletter") == fingerprint("sign up for our Newsletter")
    # A market report repeats its sentences daily with new figures: those are its news.
    assert fingerprint("The index rose 12 points to 7,510.") != fingerprint("The index rose 9 points to 7,507.")


def test_a_block_that_stopped_recurring_is_forgotten() -> None:
    text = "\n\n".join([BOX, *body("harbour")])
    two_half_lives_later = T0 + timedelta(days=60)
    assert strip(text, known(BOX, 12), two_half_lives_later, SETTINGS) == (text, [])  # 12 -> 3
    assert strip(text, known(BOX, 12), T0 + timedelta(days=10), SETTINGS)[1] == [StrippedBlock(BOX, 12)]


def test_a_block_that_is_most_of_the_article_is_never_stripped() -> None:
    long_block = " ".join(body("harbour", 4))
    text = f"{long_block}\n\nA short line."
    assert strip(text, known(long_block, 50), T0, SETTINGS) == (text, [])


def test_a_page_keeps_at_least_half_its_text() -> None:
    paragraphs = body("harbour", 6)
    text = "\n\n".join([*paragraphs, "One new line of update."])
    everything: dict[int, KnownBlock] = {}
    for p in paragraphs:
        everything |= known(p, 6)
    assert strip(text, everything, T0, SETTINGS) == (text, [])


# -- the store ------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with ExitStack() as stack:
        url = stack.enter_context(postgres_database()) if request.param == "postgresql" else f"sqlite:///{tmp_path}/s.db"
        s = Store(url)
        stack.callback(s.close)
        yield s


def test_a_block_on_n_articles_of_an_outlet_is_stripped_from_the_next(store: Store) -> None:
    for n, topic in enumerate(["harbour", "rail", "school", "water", "market"]):
        store.save_article(make(n, [*body(topic), BOX]), templates=SETTINGS)
    later = make(9, [*body("bridge"), BOX], hours=2)
    store.save_article(later, templates=SETTINGS)
    assert saved_text(store, later) == "\n\n".join(body("bridge"))
    assert store.stripped_blocks(later.id) == [StrippedBlock(BOX, 5)]
    # Another outlet of the same domain (a platform's blogs, the demo's loopback server) has its own.
    other = make(10, [*body("bridge"), BOX], outlet="Ledger Sports")
    store.save_article(other, templates=SETTINGS)
    assert BOX in saved_text(store, other)


def test_an_article_counts_once_however_often_it_is_stored(store: Store) -> None:
    first = make(0, [*body("harbour"), BOX])
    for _ in range(6):  # fetched again, or another link naming the same canonical URL
        store.save_article(first, templates=SETTINGS)
    later = make(1, [*body("rail"), BOX])
    store.save_article(later, templates=SETTINGS)
    assert BOX in saved_text(store, later)


def test_a_wire_story_that_many_outlets_carry_is_never_stripped(store: Store) -> None:
    wire = body("flood relief", 6)
    copies = [make(0, wire, outlet=f"Outlet {n}", domain=f"outlet{n}.example") for n in range(12)]
    for copy in copies:
        store.save_article(copy, templates=SETTINGS)
    assert all(saved_text(store, copy) == "\n\n".join(wire) for copy in copies)
    assert all(not store.stripped_blocks(copy.id) for copy in copies)


def test_an_outlet_running_a_story_again_under_new_urls_keeps_its_body(store: Store) -> None:
    # The false positive that matters: an outlet republishes its story as it develops (a new lead
    # paragraph over the same body, a new URL each time). The body recurs on its own articles,
    # but the article is mostly that body, so nothing is stripped.
    story = body("wildfire", 6)
    ridges = ["north", "east", "south", "west", "upper", "lower", "first", "last"]
    updates = [make(n, [f"Update: crews reached the {ridge} ridge overnight, officials said.", *story])
               for n, ridge in enumerate(ridges)]
    for update in updates:
        store.save_article(update, templates=SETTINGS)
    assert all(saved_text(store, u) == u.text for u in updates)


def test_counts_are_exact_with_several_writers_at_once(store: Store) -> None:
    # Each writer is a store of its own (its own connections), as worker processes are.
    writers = [Store(store.url) for _ in range(4)]
    try:
        topics = ["harbour", "rail", "school", "water", "market"]

        def save(w: int) -> None:
            # Distinct words, not numbers: fingerprints ignore numbers.
            for n, topic in enumerate(topics):
                writers[w].save_article(make(10 * w + n, [*body(f"{topic} {topics[w]}"), BOX]), templates=SETTINGS)

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(save, range(4)))
    finally:
        for writer in writers:
            writer.close()
    with store.engine.connect() as conn:
        count = conn.execute(
            sa.select(template_blocks.c.articles).where(template_blocks.c.fingerprint == fingerprint(BOX))
        ).scalar()
    stored_with_box = sum(BOX in saved_text(store, make(10 * w + n, [])) for w in range(4) for n in range(5))
    assert count == 20  # every article counted once, none lost to a writer at the same time
    assert stored_with_box == 5  # the first five (in the order the writers took the lock) taught the rest


def test_blocks_not_seen_again_are_forgotten_by_retention(store: Store) -> None:
    for n, topic in enumerate(["harbour", "rail", "school", "water", "market", "bridge"]):
        store.save_article(make(n, [*body(topic), BOX]), templates=SETTINGS)
    assert store.forget_template_blocks(T0 + timedelta(days=59), SETTINGS.template_half_life_days) == 0
    forgotten = store.forget_template_blocks(T0 + timedelta(days=61), SETTINGS.template_half_life_days)
    assert forgotten == 6 * 5  # each article's own paragraphs (seen once); the box (6) stays
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(template_blocks.c.articles)).scalars().all() == [6]
