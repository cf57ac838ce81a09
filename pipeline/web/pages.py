"""The HTML pages: the story river, search, a story with each outlet's changes, an article, feeds, runs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import HTMLResponse, Response

from pipeline.polling import STATUS_COLUMNS, status_rows
from pipeline.web.app import Services, services
from pipeline.web.params import (
    DEFAULT_HITS,
    DEFAULT_PAGE,
    MAX_OFFSET,
    After,
    Filters,
    FormText,
    Hits,
    Limit,
    Offset,
    Sort,
    checked_cursor,
    filters,
)
from pipeline.web import views
from pipeline.web.views import article_view, folded

router = APIRouter(include_in_schema=False)
Use = Annotated[Services, Depends(services)]
Filtered = Annotated[Filters, Depends(filters)]
RECENT_RUNS = 50


@router.get("/", response_class=HTMLResponse)
def river(use: Use, where: Filtered, after: After = None, limit: Limit = DEFAULT_PAGE) -> HTMLResponse:
    page = use.store.story_page(limit, where.story_filter(), checked_cursor(after))
    more = None
    if page.next is not None:
        query = {**where.query(), "after": page.next, **({"limit": limit} if limit != DEFAULT_PAGE else {})}
        more = use.link("/?" + urlencode(query))
    feed_query = ("?" + urlencode(where.query())) if where.query() else ""
    return use.page("river.html", stories=page.stories, where=where, more=more, feed_query=feed_query,
                    first_page=after is None)


@router.get("/search", response_class=HTMLResponse)
def search(use: Use, where: Filtered, q: FormText = "", sort: Sort = "relevance", limit: Hits = DEFAULT_HITS,
           offset: Offset = 0) -> HTMLResponse:
    results = use.search(where.search_query(q, sort, limit, offset)) if q.strip() else None
    more = None
    if results is not None and offset + len(results.hits) < results.total and offset + limit <= MAX_OFFSET:
        more = use.link("/search?" + urlencode({
            "q": q, **where.query(), **({"sort": sort} if sort != "relevance" else {}),
            **({"limit": limit} if limit != DEFAULT_HITS else {}), "offset": offset + limit}))
    return use.page("search.html", q=q, sort=sort, where=where, results=results, offset=offset, more=more)


@router.get("/stories/{story_id}", response_class=HTMLResponse)
def story(use: Use, story_id: str) -> Response:
    view = use.story(story_id, "/stories/")
    if isinstance(view, Response):
        return view
    return use.page("story.html", view=view, folded=folded, max_compared=views.MAX_COMPARED)


@router.get("/articles/{article_id}", response_class=HTMLResponse)
def article(use: Use, article_id: str) -> HTMLResponse:
    view = article_view(use.store, article_id)
    if view is None:
        raise HTTPException(404, f"no article {article_id!r}")
    return use.page("article.html", view=view)


@router.get("/feeds", response_class=HTMLResponse)
def feeds(use: Use) -> HTMLResponse:
    now = datetime.now(UTC)
    rows = status_rows(use.store.feed_states(), use.store.waiting_entries(), use.settings.feeds, now)
    return use.page("feeds.html", columns=STATUS_COLUMNS, rows=rows)


@router.get("/runs", response_class=HTMLResponse)
def runs(use: Use) -> HTMLResponse:
    return use.page("runs.html", runs=use.store.recent_runs(RECENT_RUNS))
