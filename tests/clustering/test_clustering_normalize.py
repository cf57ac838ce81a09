"""Normalisation for matching: what must not count as a difference between copies."""

from __future__ import annotations

import pytest

from pipeline.clustering.normalize import (
    canonical,
    canonical_utf8,
    fold,
    is_boilerplate_line,
    normalize,
    strip_dateline,
    word_bytes,
    words,
)

BODY = 'The council voted on Tuesday to close the bridge. "We cannot gamble with safety," Calder said.'


def body(text: str) -> tuple[str, ...]:
    """The body tokens as they are compared (canonical forms)."""
    return tuple(canonical(token) for token in normalize("", text).body)


@pytest.mark.parametrize(
    "dateline",
    [
        "KYIV, Sept 30 (Reuters) - ",
        "WASHINGTON (AP) \u2014 ",
        "PARIS, 30 Sept (AFP) - ",
        "Berlin (dpa) - ",
        "NEW DELHI, Oct 2 (Reuters) \u2013 ",
        "MARLOWE, March 2 - ",
    ],
)
def test_datelines_are_stripped(dateline: str) -> None:
    assert body(dateline + BODY) == body(BODY)


def test_a_sentence_starting_with_a_place_is_kept() -> None:
    assert strip_dateline("Paris is preparing for the games.") == "Paris is preparing for the games."


@pytest.mark.parametrize(
    "line",
    [
        "(With inputs from agencies)",
        "(With inputs from PTI)",
        "AFP reported.",
        "\u2014 Reuters",
        "(Reporting by Lena Brook; Editing by Tom Hale)",
        "Also read: Ferry operators eye estuary route",
        "READ MORE: Council budget explained",
        "Photo: Lena Brook / AFP",
        "Firefighters at the scene on Monday. (AP Photo/Lena Brook)",
        "Copyright 2026 The Associated Press. All rights reserved.",
        "Follow us on social media for the latest updates",
    ],
)
def test_credit_caption_teaser_and_footer_lines_are_dropped(line: str) -> None:
    assert is_boilerplate_line(line)
    assert body(BODY + "\n\n" + line) == body(BODY)
    assert body(line + "\n" + BODY) == body(BODY)


def test_story_paragraphs_are_not_boilerplate() -> None:
    assert not is_boilerplate_line(BODY)
    assert not is_boilerplate_line("Photographers gathered outside the court as the verdict was read.")


def test_quotes_case_accents_whitespace_and_paragraph_breaks_do_not_count() -> None:
    variant = "THE  COUNCIL voted on Tuesday\nto close the bridge.\n\n\u201cWe cannot gamble with safety,\u201d Calder said."
    assert body(variant) == body(BODY)
    assert body("Caf\u00e9 owners said") == body("Cafe owners said")


def test_said_and_says_and_per_cent_fold_to_one_form() -> None:
    assert body(BODY.replace("said", "says")) == body(BODY)
    assert body("prices rose 4 per cent") == body("prices rose 4 percent")


def test_inline_agency_credit_is_removed() -> None:
    assert body(BODY + " The ministry confirmed it, AFP reported.") == body(BODY + " The ministry confirmed it.")
    assert body(BODY + " The ministry confirmed it, A.P. reported.") == body(BODY + " The ministry confirmed it.")
    # Where a dateline went first, and in a paragraph after others.
    assert body("KYIV, Sept 30 (Reuters) - Reuters reported the vote.\n\n" + BODY) == body("the vote.\n" + BODY)


def test_title_is_kept_apart_from_body() -> None:
    match = normalize("Bridge closed", BODY)
    assert match.title == ("bridge", "closed")
    assert match.body[:3] == ("the", "council", "voted")


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("\u201cQuoted\u201d \u2014 and \u2018single\u2019\u00a0spaced", "\"Quoted\" - and 'single' spaced"),
        ("Caf\u00e9 cr\u00e8me\u00ad soft\u200bhyphen", "Cafe creme softhyphen"),
        ("a lone \ud800 surrogate \u2019kept\u2019", "a lone \ud800 surrogate 'kept'"),  # as a JSON escape can give
        ("\u0627\u0644\u0643\u062a\u0627\u0628\u064b \u0640\u0649", "\u0627\u0644\u0643\u062a\u0627\u0628 \u064a"),
    ],
)
def test_fold_straightens_quotes_and_drops_accents_invisible_characters_and_marks(text: str, folded: str) -> None:
    assert fold(text) == folded


@pytest.mark.parametrize(
    "text",
    ["the council's vote: 7-2, on tue\x1cs\x1fday_2\tand\x0bthen", "caf\u00e9 au lait", "新华社北京12月5日电", ""],
)
def test_word_bytes_are_the_words_as_utf8_where_the_text_is_ascii(text: str) -> None:
    expected = words(text)
    assert word_bytes(text) == ([word.encode() for word in expected] if text.isascii() else expected)
    assert [canonical_utf8(w) for w in word_bytes(text)] == [canonical(w).encode() for w in expected]
