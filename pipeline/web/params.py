"""Query parameters of the web interface and API: read, bounded, and refused with a clear message.

Every page and endpoint takes its parameters through here, so a bad value is one
``BadRequest`` (a 400 naming the parameter), whatever the route.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from fastapi import Query

from pipeline.dates import parse_moment, until
from pipeline.models import SearchQuery
from pipeline.storage import StoryFilter
from pipeline.storage.stories import parse_river_cursor

MAX_QUERY_CHARS = 200
MAX_VALUE_CHARS = 100  # an outlet, agency or language name
MAX_CURSOR_CHARS = 120
DEFAULT_PAGE = 30
MAX_PAGE = 100
DEFAULT_HITS = 10  # as `newsagg search`
MAX_HITS = 50
MAX_OFFSET = 1000  # search pages go this deep; `newsagg export` is the way to everything


class BadRequest(Exception):
    """A query parameter the interface refuses; the message says which and why."""


Outlet = Annotated[str | None, Query(max_length=MAX_VALUE_CHARS, description="only stories this outlet ran")]
Agency = Annotated[str | None, Query(max_length=MAX_VALUE_CHARS, description="only stories credited to this wire agency")]
Language = Annotated[str | None, Query(max_length=MAX_VALUE_CHARS, description="only stories in this language (e.g. en)")]
Since = Annotated[
    str | None,
    Query(max_length=40, description="stories last seen on or after (ISO date: from its start; or datetime, UTC if no offset)"),
]
Until = Annotated[
    str | None,
    Query(max_length=40, description="stories first seen on or before (ISO date: to its end; or datetime, UTC if no offset)"),
]
After = Annotated[
    str | None, Query(max_length=MAX_CURSOR_CHARS, description="the `next` cursor of the page before")
]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="stories per page")]
Text = Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS, description="words that must all match")]
FormText = Annotated[str, Query(max_length=MAX_QUERY_CHARS, description="words that must all match")]
Hits = Annotated[int, Query(ge=1, le=MAX_HITS, description="hits to return")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="hits to skip: the next page starts at offset + limit")]
Sort = Annotated[Literal["relevance", "recency"], Query(description="order of the hits")]


@dataclass(frozen=True, slots=True)
class Filters:
    """The filters of the river, its feeds and search, as given (for links) and as parsed."""

    outlet: str | None
    agency: str | None
    language: str | None
    since: str | None
    until: str | None

    def story_filter(self) -> StoryFilter:
        """Raises ``BadRequest`` for a date that is not ISO."""
        return StoryFilter(
            outlet=self.outlet,
            agency=self.agency,
            language=self.language,
            since=parse_when("since", self.since),
            until=parse_when("until", self.until, end_of_day=True),
        )

    def search_query(self, text: str, sort: Literal["relevance", "recency"], limit: int, offset: int = 0) -> SearchQuery:
        where = self.story_filter()
        return SearchQuery(text=text, since=where.since, until=where.until, outlet=where.outlet,
                           language=where.language, agency=where.agency, sort=sort, limit=limit, offset=offset)

    def query(self) -> dict[str, str]:
        """The filters that are set, for a link that keeps them."""
        return {name: value for name in ("outlet", "agency", "language", "since", "until")
                if (value := getattr(self, name))}


def filters(outlet: Outlet = None, agency: Agency = None, language: Language = None, since: Since = None,
            until: Until = None) -> Filters:
    """The filters of a request (a FastAPI dependency); empty form fields count as unset."""
    return Filters(outlet or None, agency or None, language or None, since or None, until or None)


def checked_cursor(after: str | None) -> str | None:
    if after:
        try:
            parse_river_cursor(after)
        except ValueError:
            raise BadRequest("after: not a cursor this listing gave (use its `next` value)") from None
    return after or None


def parse_when(name: str, text: str | None, *, end_of_day: bool = False) -> datetime | None:
    """An ISO date or datetime (UTC when it has no offset); a date alone ``until`` means its end."""
    if text is None:
        return None
    parsed = parse_moment(text)
    if parsed is None:
        raise BadRequest(f"{name}: not an ISO date or datetime: {text!r}")
    return until(text, parsed) if end_of_day else parsed
