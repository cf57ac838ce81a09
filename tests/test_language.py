"""Language detection (CLD2) for articles whose page and feed declare no language."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.language import detect_language

SAMPLES = json.loads((Path(__file__).parent / "data" / "languages.json").read_text(encoding="utf-8"))
LANGUAGES = sorted(k for k in SAMPLES if not k.startswith("_"))


def test_articles_in_fourteen_languages_are_recognised() -> None:
    assert len(LANGUAGES) == 14
    for language in LANGUAGES:
        headline, paragraph = SAMPLES[language]["short"][0], SAMPLES[language]["long"][0]
        assert detect_language(f"{headline}\n{paragraph}") == language, language


def test_a_headline_alone_is_recognised_or_left_unknown_never_misnamed() -> None:
    named = {(language, text): detect_language(text) for language in LANGUAGES for text in SAMPLES[language]["short"]}
    assert {key: got for key, got in named.items() if got not in (key[0], None)} == {}
    assert sum(got is not None for got in named.values()) >= 0.9 * len(named)


def test_text_without_a_language_has_none() -> None:
    for text in ["", "12:30", "Reuters", "— 2026 —", "OK", "Merkel", "\ud800 lone surrogate"]:
        assert detect_language(text) is None, text


def test_a_stray_control_character_does_not_hide_the_language() -> None:
    text = "Die Hafenarbeiter\x07 in Hamburg haben am Montag\x00 ihre Arbeit niedergelegt."
    assert detect_language(text) == "de"
