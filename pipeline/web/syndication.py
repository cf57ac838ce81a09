"""/feed.atom and /feed.json (JSON Feed 1.1): one entry per merged story, updated when a new outlet runs it.

An entry's id is the story's (``urn:newsagg:story:ID``), so a feed reader shows each story
once however many outlets run it; its ``updated`` time is when the last outlet to join first
ran it, so a reader sees the entry change when the story reaches one more outlet, and not
when an outlet that already ran it publishes another copy.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from pipeline.models import Story
from pipeline.web.app import Services, services
from pipeline.web.params import DEFAULT_PAGE, Filters, Limit, filters

router = APIRouter(include_in_schema=False)
Use = Annotated[Services, Depends(services)]
Filtered = Annotated[Filters, Depends(filters)]


def entry_id(story: Story) -> str:
    return f"urn:newsagg:story:{story.id}"


def outlets_joined(story: Story) -> dict[str, datetime]:
    """When each outlet first ran the story (a copy without a date counts from the story's last sighting)."""
    joined: dict[str, datetime] = {}
    for source in story.sources:
        when = source.published or story.last_seen
        if source.outlet not in joined or when < joined[source.outlet]:
            joined[source.outlet] = when
    return joined


def updated(story: Story) -> datetime:
    """When the last outlet to run the story joined it."""
    return max([story.first_seen, *outlets_joined(story).values()])


@router.get("/feed.atom")
def atom(request: Request, use: Use, where: Filtered, limit: Limit = DEFAULT_PAGE) -> Response:
    stories = use.store.story_page(limit, where.story_filter()).stories
    base = str(request.base_url)
    body = use.templates.get_template("feed.atom").render(
        stories=stories, base=base, self_url=str(request.url), entry_id=entry_id, updated=updated,
        feed_updated=max((updated(s) for s in stories), default=None),
    )
    return _unless_unchanged(request, body.encode(), "application/atom+xml; charset=utf-8")


@router.get("/feed.json")
def json_feed(request: Request, use: Use, where: Filtered, limit: Limit = DEFAULT_PAGE) -> Response:
    stories = use.store.story_page(limit, where.story_filter()).stories
    base = str(request.base_url)
    feed: dict[str, Any] = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "newsagg: merged stories" + (f" ({_described(where)})" if where.query() else ""),
        "home_page_url": base,
        "feed_url": str(request.url),
        "description": "One item per story, however many outlets ran it; updated when another outlet runs it.",
        "language": where.language or "en",
        "items": [_item(story, base) for story in stories],
    }
    return _unless_unchanged(request, bytes(JSONResponse(feed).body), "application/feed+json")


def _unless_unchanged(request: Request, body: bytes, media_type: str) -> Response:
    """The feed, or 304 Not Modified to a reader whose copy has this body's ETag.

    The tag is a digest of the body, so it changes with anything a reader would see. No
    Last-Modified is sent: a story leaving the feed changes it without any newer time.
    """
    tag = f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'
    headers = {"etag": tag, "cache-control": "no-cache"}
    held = {part.strip().removeprefix("W/") for part in request.headers.get("if-none-match", "").split(",")}
    if tag in held or "*" in held:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


def _item(story: Story, base: str) -> dict[str, Any]:
    outlets = story.outlets
    return {
        "id": entry_id(story),
        "url": f"{base}stories/{story.id}",
        "title": story.title,
        "summary": story.summary,
        "content_text": f"{story.summary}\n\nRan in {len(outlets)} outlet{'s' if len(outlets) != 1 else ''}: "
                        + ", ".join(outlets),
        "date_published": story.first_seen.isoformat(),
        "date_modified": updated(story).isoformat(),
        "authors": [{"name": outlet} for outlet in outlets],
        "tags": list(story.tags),
        **({"language": story.language} if story.language else {}),
        "_newsagg": {
            "outlets": outlets,
            "agency": story.agency,
            "copies": [{"outlet": s.outlet, "title": s.title, "url": s.url} for s in story.sources],
        },
    }


def _described(where: Filters) -> str:
    return ", ".join(f"{name} {value}" for name, value in where.query().items())
