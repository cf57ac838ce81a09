"""Docs that must stay true to the code."""

from __future__ import annotations

import argparse
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

from pipeline.cli import _parser
from pipeline.settings import _misspelt_variables, settings_reference

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


def test_every_other_variable_named_in_the_docs_is_read_somewhere() -> None:
    # Not a setting: then a DAG, a script, the compose file or the test services read it.
    known = set(re.findall(r"`(NEWSAGG_[A-Z_]+)`", settings_reference()))
    readers = [*(ROOT / "dags").glob("*.py"), *(ROOT / "scripts").iterdir(), *(ROOT / "pipeline").rglob("*.py"),
               ROOT / "docker-compose.yml", ROOT / ".env.example", ROOT / "tests" / "services.py"]
    code = "\n".join(path.read_text(encoding="utf-8") for path in readers if path.is_file())
    for doc in sorted((ROOT / "docs").glob("*.md")):
        for name in set(re.findall(r"NEWSAGG_[A-Z_]*[A-Z]", doc.read_text(encoding="utf-8"))):
            if not (name in known or any(k.startswith(name + "__") for k in known)):
                assert re.search(rf"\b{name}\b", code), f"{doc.name}: {name}"


def test_every_command_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    parser = _parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name in commands:
        assert f"`newsagg {name}" in readme, name


def _command_lines(text: str) -> Iterator[str]:
    """What follows `newsagg ` in the code spans and fenced blocks of a Markdown text."""
    spans: list[str] = []
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif fenced:
            spans.append(line.split(" #")[0])
        else:
            spans.extend(re.findall(r"`([^`]+)`", line))
    for span in spans:
        for match in re.finditer(r"(?:^|[\s/(\"'$])newsagg\s+(\S.*)", span):
            yield match.group(1)


def _problems(line: str, parser: argparse.ArgumentParser) -> list[str]:
    """The commands and options of one documented command line (`feeds add|remove`, `[--limit N]`) that do not exist."""
    tokens = line.split()
    i = 0
    while i < len(tokens) and tokens[i] in ("--config", "--data-dir", "-v", "--verbose"):
        i += 2 if tokens[i] in ("--config", "--data-dir") else 1
    problems: list[str] = []

    def leaves(parser: argparse.ArgumentParser, i: int) -> list[tuple[argparse.ArgumentParser, int]]:
        commands = next((a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        names = re.split(r"[|/]", tokens[i].strip(".,;:)")) if i < len(tokens) else []
        if commands is None or not all(re.fullmatch(r"[a-z][a-z-]*", n) for n in names) or not names:
            return [(parser, i)]
        problems.extend(f"no command {n!r}" for n in names if n not in commands)
        return [leaf for n in names if n in commands for leaf in leaves(commands[n], i + 1)]

    for command, j in leaves(parser, i):
        options = {s for a in command._actions for s in a.option_strings}
        problems.extend(f"{command.prog}: no option {flag}" for token in tokens[j:]
                        for flag in re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", token) if flag not in options)
    return problems


def test_every_command_line_in_the_docs_parses() -> None:
    parser = _parser()
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for line in _command_lines(doc.read_text(encoding="utf-8")):
            assert not _problems(line, parser), f"{doc.name}: newsagg {line}: {_problems(line, parser)}"


def test_no_newsagg_variable_the_project_uses_is_refused_as_a_misspelt_setting() -> None:
    # docker-compose.yml, the DAGs, the scripts and the tests name variables close to settings'
    # (NEWSAGG_WEB_PORT, NEWSAGG_ES_URL): each must be a setting or in OTHER_VARIABLES. The
    # files that show the refusal itself name a misspelling on purpose.
    shows_the_refusal = {"tests/test_cli.py", "docs/settings.md", "pipeline/settings.py", "README.md"}
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in sorted(set(files) - shows_the_refusal):
        try:
            text = (ROOT / name).read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # binary, or a file deleted in the work tree
        variables = set(re.findall(r"NEWSAGG_[A-Z0-9_]*[A-Z0-9]", text))
        assert _misspelt_variables(dict.fromkeys(variables, "")) == [], name
