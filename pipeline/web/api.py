"""The JSON API under /api: the same data as the pages, typed, so /openapi.json describes it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import Response
from pydantic import BaseModel

from pipeline.models import SearchResults, Story
from pipeline.polling import STATUS_COLUMNS, status_rows
from pipeline.storage import RunRecord
from pipeline.web.app import Services, services
from pipeline.web.params import (
    DEFAULT_HITS,
    DEFAULT_PAGE,
    After,
    Filters,
    Hits,
    Limit,
    Offset,
    Sort,
    Text,
    checked_cursor,
    filters,
)
from pipeline.web.pages import RECENT_RUNS
from pipeline.web.views import ArticleView, StoryView, article_view

router = APIRouter(prefix="/api", tags=["api"])
Use = Annotated[Services, Depends(services)]
Filtered = Annotated[Filters, Depends(filters)]


class StoryList(BaseModel):
    stories: list[Story]
    next: str | None  # pass as `after` for the next page; null on the last


class FeedRow(BaseModel):
    """One feed as `newsagg feeds status` shows it (times in UTC)."""

    feed: str
    status: str
    fails: str
    score: str
    every: str
    entries: str
    waiting: str  # entries whose page is still to be fetched
    last_success: str
    next_poll: str
    last_error: str


class FeedList(BaseModel):
    feeds: list[FeedRow]


class RunList(BaseModel):
    runs: list[RunRecord]


@router.get("/stories", summary="merged stories, most recently seen first, a page at a time")
def stories(use: Use, where: Filtered, after: After = None, limit: Limit = DEFAULT_PAGE) -> StoryList:
    page = use.store.story_page(limit, where.story_filter(), checked_cursor(after))
    return StoryList(stories=page.stories, next=page.next)


@router.get("/stories/{story_id}", summary="one story, every copy and what each outlet changed",
            response_model=StoryView,
            responses={301: {"description": "merged into another story: redirects to it"}, 404: {}})
def story(use: Use, story_id: str) -> StoryView | Response:
    return use.story(story_id, "/api/stories/")


@router.get("/articles/{article_id}",
            summary="one article: text, metadata, text source and why, feed entry, template stripped, revisions,"
                    " archived page",
            responses={404: {}})
def article(use: Use, article_id: str) -> ArticleView:
    view = article_view(use.store, article_id)
    if view is None:
        raise HTTPException(404, f"no article {article_id!r}")
    return view


@router.get("/search", summary="full-text search over stories, with facet counts (the ranking of `newsagg search`)")
def search(use: Use, where: Filtered, q: Text, sort: Sort = "relevance", limit: Hits = DEFAULT_HITS,
           offset: Offset = 0) -> SearchResults:
    return use.search(where.search_query(q, sort, limit, offset))


@router.get("/feeds", summary="health and polling state of every feed")
def feeds(use: Use) -> FeedList:
    now = datetime.now(UTC)
    keys = [column.replace(" ", "_") for column in STATUS_COLUMNS]
    rows = [FeedRow(**dict(zip(keys, row, strict=True)))
            for row in status_rows(use.store.feed_states(), use.store.waiting_entries(), use.settings.feeds, now)]
    return FeedList(feeds=rows)


@router.get("/runs", summary="recent pipeline runs, newest first, with counts and failures")
def runs(use: Use) -> RunList:
    return RunList(runs=use.store.recent_runs(RECENT_RUNS))

