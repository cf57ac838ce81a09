"""The development sets, read from local clones: pages with what each set expects of them."""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The environment variable naming each set's clone.
ENV = {"trafilatura": "NEWSAGG_EVAL_TRAFILATURA", "fundus": "NEWSAGG_EVAL_FUNDUS", "wcxb": "NEWSAGG_EVAL_WCXB"}


@dataclass(frozen=True, slots=True)
class Page:
    """One labelled page. ``expected`` is what the set's metric needs (see :mod:`.score`)."""

    set: str
    id: str
    url: str
    html: bytes
    kind: str = "article"  # WCXB's page type; the other sets are news articles
    expected: dict[str, Any] = field(default_factory=dict)


class MissingSet(Exception):
    """A set's clone is not configured or not where its variable says."""


def root(name: str) -> Path:
    value = os.environ.get(ENV[name])
    if not value:
        raise MissingSet(f"set {ENV[name]} to a clone of the {name} repository (see bench/README.md)")
    path = Path(value)
    if not path.is_dir():
        raise MissingSet(f"{ENV[name]}={value}: no such directory")
    return path


def pages(name: str) -> Iterator[Page]:
    """The pages of one set, in a stable order."""
    return {"trafilatura": _trafilatura, "fundus": _fundus, "wcxb": _wcxb}[name](root(name))


def _trafilatura(base: Path) -> Iterator[Page]:
    tests = base / "tests"
    data = json.loads((tests / "evaldata.json").read_text(encoding="utf-8"))
    for url in sorted(data):
        item = data[url]
        path = next((p for p in (tests / "cache" / item["file"], tests / "eval" / item["file"]) if p.is_file()), None)
        if path is None:
            continue
        yield Page("trafilatura", item["file"], url, path.read_bytes(),
                   expected={"with": item["with"], "without": item["without"]})


def _fundus(base: Path) -> Iterator[Page]:
    data = base / "tests" / "resources" / "parser" / "test_data"
    for country in sorted(p for p in data.iterdir() if p.is_dir()):
        meta_path = country / "meta.info"
        meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
        for expected_path in sorted(country.glob("*.json")):
            versions = json.loads(expected_path.read_text(encoding="utf-8"))
            bodies = [body for v in versions.values() if (body := fundus_body(v.get("body")))]
            if not bodies:
                continue
            for html_path in sorted(country.glob(f"{expected_path.stem}_*.html.gz")):
                html = gzip.decompress(html_path.read_bytes())
                url = (meta.get(html_path.name) or {}).get("url", "")
                yield Page("fundus", f"{country.name}/{html_path.name}", url, html,
                           expected={"body": _matching(bodies, html)})


def fundus_body(body: Any) -> str:
    """A Fundus body as text: its summary, then each section's headline and paragraphs, one per line."""
    if not isinstance(body, dict):
        return ""
    lines = list(body.get("summary") or [])
    for section in body.get("sections") or []:
        lines += list(section.get("headline") or []) + list(section.get("paragraphs") or [])
    return "\n".join(line.strip() for line in lines if line and line.strip())


def _matching(bodies: list[str], html: bytes) -> str:
    """The expected body that belongs to this page: the parser version whose paragraphs the page holds.

    A publisher's JSON has one body per parser version and a page per version, mapped in
    Fundus by crawl date and each version's validity; the body's own words in the page say
    the same without importing Fundus.
    """
    page = html.decode("utf-8", "replace")

    def present(body: str) -> int:
        return sum(1 for line in body.split("\n") if line[:40] in page)

    return max(bodies, key=present)


def _wcxb(base: Path) -> Iterator[Page]:
    dev = base / "dev"  # the test split is held out: never read
    for truth_path in sorted((dev / "ground-truth").glob("*.json")):
        data = json.loads(truth_path.read_text(encoding="utf-8"))
        truth = data.get("ground_truth")
        html_path = dev / "html" / f"{truth_path.stem}.html.gz"
        if not isinstance(truth, dict) or not html_path.is_file():
            continue
        kind = ((data.get("_internal") or {}).get("page_type") or {})
        kind = kind.get("primary", "article") if isinstance(kind, dict) else (kind or "article")
        yield Page("wcxb", truth_path.stem, data.get("url", ""), gzip.decompress(html_path.read_bytes()),
                   kind="collection" if kind == "category" else kind,
                   expected={"main_content": truth.get("main_content") or ""})
