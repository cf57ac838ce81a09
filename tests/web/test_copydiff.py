"""What an outlet changed in its copy: headline, local intro, trimmed ending, copy-edits."""

from __future__ import annotations

from pipeline.copydiff import WordChange, base_copy, compare

WIRE = """MARISPORT (Reuters) - The government approved a desalination plant on Tuesday.

The plant will produce 280,000 cubic metres of water a day from 2030.

"This is the day we stop praying for rain," the minister said.

Farmers welcomed the decision but said it came too late for this season's crops.

Valmora already runs four smaller desalination plants on its islands.

Reuters"""


def test_a_local_intro_is_added_and_a_trimmed_ending_cut() -> None:
    local = ("Harbor City's water board will vote next month on a small unit of its own.\n\n"
             + WIRE.replace("\n\nFarmers welcomed the decision but said it came too late for this season's crops."
                            "\n\nValmora already runs four smaller desalination plants on its islands.", ""))
    changes = compare("Valmora approves plant", WIRE, "Valmora bets on the sea", local)

    assert changes.headline == "Valmora bets on the sea"
    assert [(p.kind, p.text[:12]) for p in changes.paragraphs] == [
        ("added", "Harbor City'"), ("same", "MARISPORT (R"), ("same", "The plant wi"), ("same", '"This is the'),
        ("cut", "Farmers welc"), ("cut", "Valmora alre"), ("same", "Reuters"),
    ]
    assert (changes.local_intro, changes.trimmed_ending) == (1, 2)  # the sign-off line kept under the cut
    assert not changes.unchanged


def test_a_copy_edit_is_diffed_word_by_word() -> None:
    edited = WIRE.replace("on Tuesday", "this week").replace("280,000", "280 000")
    changes = compare("Valmora approves plant", WIRE, "Valmora approves plant", edited)

    assert changes.headline is None
    assert [p.kind for p in changes.paragraphs] == ["edited", "edited", "same", "same", "same", "same"]
    assert changes.paragraphs[0].words == (
        WordChange("same", "MARISPORT (Reuters) - The government approved a desalination plant"),
        WordChange("removed", "on Tuesday."),
        WordChange("added", "this week."),
    )
    assert (changes.local_intro, changes.trimmed_ending, changes.count("edited")) == (0, 0, 2)


def test_curly_quotes_spacing_and_case_are_not_changes() -> None:
    retyped = WIRE.replace('"This is the day we stop praying for rain,"', "\u201cThis is the day we stop  praying for rain,\u201d")
    assert compare("Title", WIRE, "TITLE", retyped).unchanged


def test_the_base_copy_is_the_one_the_others_share_most_not_the_longest() -> None:
    longest = "A local paragraph nobody else ran, and a long one at that, about the town's own plans.\n\n" + WIRE
    trimmed = "\n\n".join(WIRE.split("\n\n")[:3])
    assert base_copy({"local": longest, "wire": WIRE, "trimmed": trimmed}) == "wire"


def test_a_dropped_sign_off_line_is_not_a_trimmed_ending() -> None:
    changes = compare("Title", WIRE, "Title", WIRE.removesuffix("\n\nReuters"))
    assert (changes.count("cut"), changes.trimmed_ending) == (1, 0)
