"""Stories and articles as the indices hold them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pipeline.models import IndexedArticle, Story
from pipeline.search.analysis import indexed_terms
from pipeline.urls import link_of


def story_document(story: Story) -> dict[str, Any]:
    """A story as the stories index holds it."""
    return {
        "id": story.id,
        "title": story.title,
        "body": story.text,
        "title_stems": indexed_terms(story.title, story.language),
        "body_stems": indexed_terms(story.text, story.language),
        "summary": story.summary,
        "sources": [
            {
                "article_id": s.article_id,
                "outlet": s.outlet,
                "url": s.url,
                "title": s.title,
                "published": iso(s.published),
            }
            for s in story.sources
        ],
        "outlets": story.outlets,
        "article_count": story.article_count,
        "outlet_count": story.outlet_count,
        "first_seen": iso(story.first_seen),
        "last_seen": iso(story.last_seen),
        "language": story.language,
        "agency": story.agency,
        "tags": list(story.tags),
    }


def article_document(doc: IndexedArticle) -> dict[str, Any]:
    """An article, with its cluster and match scores, as the articles index holds it."""
    article, member = doc.article, doc.membership
    return {
        "id": article.id,
        "cluster_id": member.cluster_id,
        "outlet": article.outlet,
        "url": link_of(article.url),  # None for an entry without a link: Kibana shows no bogus link
        "feed_id": article.feed_id,
        "tags": list(article.tags),
        "title": article.title,
        "text": article.text,
        "author": article.author,
        "language": article.language,
        "text_source": article.text_source.value,
        "published": iso(article.published),
        "fetched_at": iso(article.fetched_at),
        "matched_article_id": member.matched_article_id,
        "jaccard": member.jaccard,
        "containment": member.containment,
    }


def reanalysed(source: dict[str, Any]) -> dict[str, Any]:
    """A copied document, a story's terms made by today's analysis."""
    if "title_stems" not in source:
        return source
    language = source.get("language")
    return {
        **source,
        "title_stems": indexed_terms(source.get("title") or "", language),
        "body_stems": indexed_terms(source.get("body") or "", language),
    }


def iso(value: datetime | None) -> str | None:
    """A datetime as the indices hold it: ISO 8601 in UTC (the pipeline's naive datetimes are UTC)."""
    if value is None:
        return None
    if value.tzinfo is None:  # the pipeline's datetimes are UTC; be explicit for the index
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()
