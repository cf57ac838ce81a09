"""Outlet template learning: text blocks that recur across one outlet's articles are its boilerplate.

trafilatura keeps some of a site's furniture in the text (a newsletter box, a "related"
teaser, a photo-credit line, a share bar). One page cannot tell it from the article;
many pages of one site can. Each paragraph of an article's text (a *block*) is known by
a fingerprint of its normalised text, and the store counts, per outlet (its feed's name
on one registrable domain, a ``Site``), on how many distinct articles each fingerprint
appeared: a count that halves every ``template_half_life_days`` without new sightings,
so a box the site dropped is forgotten. A block seen on ``template_min_articles``
articles of the site is its template and is stripped from its later articles, with these
guards:

- counting is per site and per distinct article (a page fetched again adds nothing): a
  wire story that many outlets carry verbatim recurs across sites, never within one;
- a block that is most of the article's text is never stripped;
- a page keeps at least ``template_min_kept`` of its text: a page that is mostly known
  blocks is a repeat of a story the outlet ran before (an update under a new URL),
  whose body must not go.

This module is pure: the store keeps the counts (``pipeline.storage.templates``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import xxhash

from pipeline.fetching.politeness import registrable_domain
from pipeline.settings import ExtractionSettings
from pipeline.urls import link_of

#: A block larger than this share of the text is the article itself, never a template.
MOST_OF_TEXT = 0.5
# Decay over the hours between one run's batches must not keep a block seen on exactly N
# articles from counting N (with the default half-life, 0.05 of an article is half a day).
_SLACK = 0.05


@dataclass(frozen=True, slots=True)
class KnownBlock:
    """What the store knows of one fingerprint on one domain."""

    weight: float  # distinct articles it appeared on, decayed to ``last_seen``
    articles: int  # distinct articles it appeared on, ever
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class StrippedBlock:
    """A block taken out of an article's text as its outlet's template, and on how many articles it recurred."""

    text: str
    articles: int


@dataclass(frozen=True, slots=True)
class Site:
    """Whose template a block belongs to: an outlet (its feed's name) on one registrable domain.

    The domain keeps a wire story that many outlets carry from counting as any one's
    template; the outlet name does the same for outlets that share a domain (a blog
    platform, or the demo's loopback server).
    """

    domain: str
    outlet: str


def site_of(url: str, outlet: str) -> Site | None:
    """The site of an article at ``url`` from ``outlet`` (None: a feed entry without a link)."""
    link = link_of(url)
    host = urlsplit(link).hostname if link else None
    return Site(registrable_domain(host), outlet) if host else None


def blocks(text: str) -> list[str]:
    """The blocks of an article text: its paragraphs (separated by blank lines)."""
    return [b.strip() for b in text.split("\n\n") if b.strip()]


def fingerprint(block: str) -> int:
    """A signed 64-bit fingerprint of a block, blind to case and spacing.

    Not to numbers: a daily market report repeats its sentences with new figures,
    and those figures are its news.
    """
    value = xxhash.xxh3_64_intdigest(" ".join(block.casefold().split()).encode())
    return value - (1 << 64) if value >= 1 << 63 else value  # fits a BIGINT column


#: A text's blocks, each with its fingerprint (:func:`fingerprinted`).
Fingerprinted = Sequence[tuple[str, int]]


def fingerprinted(text: str) -> list[tuple[str, int]]:
    """The blocks of a text, each with its fingerprint.

    Storing a batch needs each article's three times (which counts to read, what to
    strip, what to count): the store computes them once and hands them to :func:`strip`
    and :func:`learned`; fingerprinting each time was most of its time on templates.
    """
    return [(block, fingerprint(block)) for block in blocks(text)]


def decayed(known: KnownBlock, now: datetime, half_life_days: float) -> float:
    """The block's article count as of ``now``: halved for every half-life since it was last seen."""
    age_days = max((now - known.last_seen).total_seconds(), 0.0) / 86400
    return float(known.weight * 0.5 ** (age_days / half_life_days))


def template_fingerprints(
    known: Mapping[int, KnownBlock], now: datetime, settings: ExtractionSettings
) -> set[int]:
    """The fingerprints among ``known`` that are the domain's template now."""
    return {fp for fp, block in known.items() if _is_template(block, now, settings)}


def _is_template(block: KnownBlock, now: datetime, settings: ExtractionSettings) -> bool:
    return decayed(block, now, settings.template_half_life_days) + _SLACK >= settings.template_min_articles


def strip(
    text: str,
    known: Mapping[int, KnownBlock],
    now: datetime,
    settings: ExtractionSettings,
    parts: Fingerprinted | None = None,
) -> tuple[str, list[StrippedBlock]]:
    """``text`` without its domain's template blocks, and what was taken out.

    Nothing is taken out when that would leave less than ``template_min_kept`` of the
    text; a block that is most of the text is always kept. ``parts``: ``fingerprinted(text)``
    when the caller has it.
    """
    if settings.template_min_articles <= 0:
        return text, []
    parts = fingerprinted(text) if parts is None else parts
    total = sum(len(block) for block, _ in parts)
    kept: list[str] = []
    stripped: list[StrippedBlock] = []
    for block, fp in parts:
        # Only the text's own blocks are looked up: ``known`` may hold a whole batch's.
        found = known.get(fp)
        if found is not None and _is_template(found, now, settings) and len(block) <= MOST_OF_TEXT * total:
            stripped.append(StrippedBlock(block, found.articles))
        else:
            kept.append(block)
    if not stripped or sum(map(len, kept)) < settings.template_min_kept * total:
        return text, []
    return "\n\n".join(kept), stripped


def learned(
    text: str,
    known: Mapping[int, KnownBlock],
    now: datetime,
    settings: ExtractionSettings,
    parts: Fingerprinted | None = None,
) -> dict[int, KnownBlock]:
    """The counts of ``text``'s blocks after one more distinct article showed them (``known``: before)."""
    updated: dict[int, KnownBlock] = {}
    for _, fp in fingerprinted(text) if parts is None else parts:
        if fp in updated:
            continue  # a block twice on one page counts once
        before = known.get(fp)
        weight = decayed(before, now, settings.template_half_life_days) if before else 0.0
        updated[fp] = KnownBlock(weight + 1.0, (before.articles if before else 0) + 1, now)
    return updated


def same_content(a: str, b: str, template: Collection[int]) -> bool:
    """Whether two texts of one article differ only in blocks of ``template`` (a correction changes more)."""

    def content(text: str) -> list[str]:
        # Compared exactly: a correction may change only a number, which fingerprints ignore.
        return [" ".join(block.split()) for block in blocks(text) if fingerprint(block) not in template]

    return content(a) == content(b)
