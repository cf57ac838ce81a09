"""Merge the articles of one cluster into one story."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from pipeline.models import Article, Source, Story
from pipeline.urls import link_of

SUMMARY_CHARS = 320
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def build_story(cluster_id: str, members: Sequence[Article]) -> Story:
    """One story from the articles of a cluster.

    The most complete copy (the longest text; the earliest on a tie) gives the title,
    text and summary, since outlets trim agency copy rather than extend it; every copy
    is listed as a source, oldest first (without a URL when the article came from a feed
    entry without a link). The story carries every tag of its articles, and the agency
    its articles credit (see :func:`story_agency`).

    Args:
        cluster_id: becomes the story id.
        members: the cluster's articles, at least one.
    """
    if not members:
        raise ValueError(f"cluster {cluster_id} has no articles")
    by_arrival = sorted(members, key=lambda a: a.arrival_key)
    representative = max(by_arrival, key=lambda a: len(a.text))  # max keeps the first of equals
    arrivals = [a.arrival_key[0] for a in by_arrival]
    languages = Counter(a.language for a in by_arrival if a.language)
    return Story(
        id=cluster_id,
        title=representative.title,
        text=representative.text,
        summary=summarize(representative.text),
        sources=tuple(
            Source(article_id=a.id, outlet=a.outlet, url=link_of(a.url), title=a.title, published=a.published)
            for a in by_arrival
        ),
        first_seen=min(arrivals),
        last_seen=max(arrivals),
        language=languages.most_common(1)[0][0] if languages else None,
        agency=story_agency(by_arrival),
        tags=tuple(sorted({tag for a in by_arrival for tag in a.tags})),
    )


def story_agency(members: Sequence[Article]) -> str | None:
    """The agency a story is credited to, from its articles' credits.

    The agency most of its articles give a full credit (dateline, byline, sign-off);
    contributor credits ("AP contributed to this report") count only when no article
    gives a full credit, since an outlet's own story using wire material is not the
    wire's story. On a tie, the agency of the earliest article in ``members``.
    """
    for kind in ("full", "contributor"):
        agencies = Counter(a.credit.agency for a in members if a.credit is not None and a.credit.kind == kind)
        if agencies:
            return agencies.most_common(1)[0][0]
    return None


def summarize(text: str, limit: int = SUMMARY_CHARS) -> str:
    """The leading sentences of a text, within ``limit`` characters."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    summary = ""
    for sentence in _SENTENCE_END.split(flat):
        if summary and len(summary) + len(sentence) + 1 > limit:
            break
        summary = f"{summary} {sentence}".strip()
    return summary if len(summary) <= limit else summary[: limit - 1].rsplit(" ", 1)[0] + "…"
