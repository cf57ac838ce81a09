from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from pipeline.agency import detect_credit
from pipeline.models import AgencyCredit, Article, TextSource
from pipeline.stories import build_story, story_agency, summarize

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def copy(article_id: str, outlet: str, title: str, text: str, minutes: int, language: str = "en") -> Article:
    return Article(
        id=article_id, url=f"https://{outlet}.example/{article_id}", outlet=outlet, title=title, text=text,
        published=T0 + timedelta(minutes=minutes), fetched_at=T0 + timedelta(hours=2),
        text_source=TextSource.PAGE, language=language, credit=detect_credit(text),
    )


FULL = ("LISBON, Nov 2 (Reuters) - Dockworkers in Lisbon walked out on Monday. " * 10).strip()


def test_most_complete_copy_represents_the_story_and_every_source_is_listed() -> None:
    story = build_story("c1", [
        copy("b", "gazette", "Lisbon port halted", FULL[:200], 30),
        copy("a", "ledger", "Dockworkers strike in Lisbon", FULL, 10),
        copy("c", "courier", "Strike hits Lisbon", FULL[:300], 50, language="pt"),
    ])
    assert story.id == "c1"
    assert story.title == "Dockworkers strike in Lisbon"
    assert story.text == FULL
    assert [s.article_id for s in story.sources] == ["a", "b", "c"]
    assert (story.first_seen, story.last_seen) == (T0 + timedelta(minutes=10), T0 + timedelta(minutes=50))
    assert (story.article_count, story.outlet_count, story.outlets) == (3, 3, ["courier", "gazette", "ledger"])
    assert story.language == "en"
    assert story.agency == "Reuters"


def credited(article_id: str, agency: str | None, kind: str = "full") -> Article:
    article = copy(article_id, "outlet", "t", "text", 0)
    if agency is None:
        return article
    credit = AgencyCredit(agency=agency, kind="full" if kind == "full" else "contributor", rule="r", evidence="e")
    return replace(article, credit=credit)


@pytest.mark.parametrize(
    ("credits", "agency"),
    [
        ([("AP", "full"), ("Reuters", "full"), ("Reuters", "full")], "Reuters"),  # the most common full credit
        ([("Reuters", "contributor"), ("Reuters", "contributor"), ("AFP", "full")], "AFP"),  # full beats contributor
        ([("AP", "contributor"), (None, "")], "AP"),  # a contributor credit when no article gives a full one
        ([("AFP", "full"), ("dpa", "full")], "AFP"),  # a tie: the earliest article's
        ([(None, ""), (None, "")], None),
    ],
)
def test_story_agency_follows_from_its_articles_credits(credits: list[tuple[str | None, str]], agency: str | None) -> None:
    members = [credited(str(i), name, kind) for i, (name, kind) in enumerate(credits)]
    assert story_agency(members) == agency
    assert build_story("c1", members).agency == agency


def test_a_cluster_without_articles_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="no articles"):
        build_story("c1", [])


def test_summary_keeps_whole_sentences_within_the_limit() -> None:
    text = "First sentence here. Second one follows. " + "Third is very long " * 40
    assert summarize(text, limit=50) == "First sentence here. Second one follows."
    assert len(summarize("word " * 200, limit=60)) <= 60
    assert summarize("Short.") == "Short."
