"""Docs that must stay true to the code."""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.cli import _parser
from pipeline.settings import settings_reference

ROOT = Path(__file__).resolve().parents[1]


def test_settings_reference_is_current() -> None:
    assert (ROOT / "docs" / "settings.md").read_text(encoding="utf-8") == settings_reference(), (
        "run scripts/settings-reference"
    )


def test_every_setting_named_in_readme_exists() -> None:
    known = set(re.findall(r"`(NEWSAGG_[A-Z_]+)`", settings_reference()))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in re.findall(r"NEWSAGG_[A-Z_]*[A-Z]", readme):
        assert name in known or any(k.startswith(name + "__") for k in known), name


def test_every_command_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    parser = _parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name in commands:
        assert f"`newsagg {name}" in readme, name
