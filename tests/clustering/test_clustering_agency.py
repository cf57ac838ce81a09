"""Detection of the credited wire agency."""

from __future__ import annotations

import pytest

from pipeline.clustering import detect_agency


@pytest.mark.parametrize(
    ("text", "agency"),
    [
        ("KYIV, Sept 30 (Reuters) - Ukraine said on Monday...", "Reuters"),
        ("WASHINGTON (AP) \u2014 The Senate voted...", "AP"),
        ("The minister told The Associated Press that...", "AP"),
        ("Smoke rises over the port. (AP Photo/Lena Brook)", "AP"),
        ("PARIS, 30 Sept (AFP) - France...", "AFP"),
        ("The ministry confirmed the figures, AFP reported.", "AFP"),
        ("He told Agence France-Presse that...", "AFP"),
        ("Berlin (dpa) - Die Regierung...", "dpa"),
        ("The council approved the plan.\n\n(With inputs from agencies)", "agencies"),
        ("Source: Agencies", "agencies"),
        ("The council approved the plan on Tuesday.", None),
        ("AP EAMCET results were announced by the board.", None),
    ],
)
def test_detect_agency(text: str, agency: str | None) -> None:
    assert detect_agency(text) == agency


def test_first_credit_wins() -> None:
    text = "LONDON (Reuters) - The bank said...\n\nAFP contributed to this report.\n(With inputs from agencies)"
    assert detect_agency(text) == "Reuters"
