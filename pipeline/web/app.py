"""The web application: read-only pages, JSON API and feeds over the store and search backend.

``create_app`` builds it; ``Guard`` keeps it read-only, sets the security headers on every
response and turns any failure into a generic page, the traceback staying in the server's
log. Outside it, ``UnderPrefix`` serves the application under ``web.root_path``, where a
reverse proxy publishes it.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape
from starlette.exceptions import HTTPException

from pipeline.errors import NewsaggError, SearchBackendError
from pipeline.models import SearchQuery, SearchResults
from pipeline.search import SearchIndex, open_index
from pipeline.search.base import HIGHLIGHT_TAGS
from pipeline.settings import Settings
from pipeline.storage import Store
from pipeline.web.params import BadRequest
from pipeline.web.views import StoryView, story_view

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "
                                 b"form-action 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


@dataclass
class Services:
    """What the routes read from, opened once for the application's life."""

    settings: Settings
    store: Store
    index: SearchIndex | None  # None: it could not be opened (why is logged at start); searches fail
    templates: Environment
    # One search at a time: the SQLite backend shares one connection between the server's threads.
    search_lock: threading.Lock

    def search(self, query: SearchQuery) -> SearchResults:
        if self.index is None:
            raise SearchBackendError("no search index: it could not be opened when the server started (why is "
                                     "logged there); restart the server once it is repaired")
        with self.search_lock:
            return self.index.search(query)

    def page(self, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(self.templates.get_template(name).render(**context), status_code=status_code)

    def link(self, path: str) -> str:
        """The link readers follow to ``path`` (one of the application's, from "/"): under the root path."""
        return self.settings.web.root_path + path

    def story(self, story_id: str, path: str) -> StoryView | RedirectResponse:
        """A story's view; the id of a story merged into another redirects (301) to ``path`` + the survivor's id.

        Raises:
            HTTPException: 404, no such story.
        """
        survivor = self.store.resolve_cluster(story_id)
        if survivor != story_id:
            return RedirectResponse(self.link(f"{path}{survivor}"), status_code=301)
        view = story_view(self.store, story_id)
        if view is None:
            raise HTTPException(404, f"no story {story_id!r}")
        return view


def services(request: Request) -> Services:
    """The application's services (a FastAPI dependency)."""
    found: Services = request.app.state.services
    return found


@contextmanager
def open_services(settings: Settings) -> Iterator[Services]:
    """The store and search backend ``settings`` name, opened, and closed when done.

    Raises:
        NewsaggError: the store cannot be opened, or the settings of the search backend are bad
            (a search backend that cannot be reached or whose index is missing is logged
            instead: the pages that need no search still work, and searches answer 503).
    """
    store = Store(settings.resolved_store_url)
    index: SearchIndex | None = None
    try:
        try:
            index = open_index(settings, stories=lambda: store.counts().stories)
            index.setup()
        except SearchBackendError as exc:
            log.warning("search backend not ready: %s", exc)
        yield Services(settings, store, index, templates(settings.web.root_path), threading.Lock())
    finally:
        if index is not None:
            index.close()
        store.close()


def create_app(settings: Settings, services: Services | None = None) -> FastAPI:
    """The web interface over the store and search backend ``settings`` name.

    Args:
        settings: the same settings the CLI uses (store, search backend).
        services: ``open_services(settings)``, opened by the caller (`newsagg serve`, so that what
            cannot be opened is said before the server starts); None: opened at startup, closed
            at shutdown.
    """
    from pipeline.web import api, metrics, pages, syndication

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if services is not None:
            app.state.services = services
            yield
            return
        with open_services(settings) as app.state.services:
            yield

    app = FastAPI(
        title="newsagg",
        summary="Merged news stories, every outlet that ran them and what each changed; read-only.",
        version="1",
        lifespan=lifespan,
        # The interactive docs load their scripts from a CDN; the description stays at /openapi.json.
        docs_url=None,
        redoc_url=None,
    )
    app.include_router(pages.router)
    app.include_router(syndication.router)
    app.include_router(api.router)
    app.include_router(metrics.router)
    app.mount("/static", StaticFiles(packages=[("pipeline.web", "static")]), name="static")
    app.add_exception_handler(BadRequest, _bad_request)
    app.add_exception_handler(RequestValidationError, _invalid_parameter)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(NewsaggError, _backend_error)
    app.add_middleware(Guard)
    if settings.web.root_path:
        app.add_middleware(UnderPrefix, prefix=settings.web.root_path)
    return app


def templates(root: str) -> Environment:
    """The pages' templates; ``root`` (the root path, or "") begins every link they make."""
    env = Environment(loader=PackageLoader("pipeline.web", "templates"), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.globals["root"] = root
    env.filters["when"] = _when
    env.filters["highlight"] = highlight
    env.filters["score"] = lambda value: "-" if value is None else f"{value:.2f}"
    env.globals["written_in"] = written_in
    return env


_LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*")


def written_in(language: str | None) -> Markup:
    """The attributes of an element holding a story's own words: its language, and a direction the
    browser takes from the text (Arabic, Hebrew, Persian, Urdu right to left) instead of the page's."""
    if language and _LANGUAGE_TAG.fullmatch(language):
        return Markup(' lang="{}" dir="auto"').format(language)
    return Markup(' dir="auto"')


def highlight(snippet: str) -> Markup:
    """A search snippet with its marked terms (``HIGHLIGHT_TAGS``) as <mark>, everything else escaped."""
    opening, closing = HIGHLIGHT_TAGS
    out = Markup()
    rest = " ".join(snippet.split())
    while (start := rest.find(opening)) >= 0 and (end := rest.find(closing, start)) >= 0:
        term = rest[start + len(opening) : end]
        out += escape(rest[:start]) + Markup("<mark>") + escape(term) + Markup("</mark>")
        rest = rest[end + len(closing) :]
    return out + escape(rest)


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if value else "-"


def wants_json(request: Request) -> bool:
    return _answers_json(request.scope)


def _answers_json(scope: Scope) -> bool:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):]
    return path.startswith("/api/") or path == "/feed.json"


def error_response(request: Request, status: int, message: str) -> Response:
    """An error as JSON for the API and feeds, as a page for a browser."""
    if wants_json(request):
        return JSONResponse({"error": message, "status": status}, status_code=status)
    found: Services | None = getattr(request.app.state, "services", None)
    if found is None:
        return Response(message, status_code=status, media_type="text/plain")
    return found.page("error.html", status, status=status, message=message)


async def _bad_request(request: Request, exc: Exception) -> Response:
    return error_response(request, 400, str(exc))


async def _invalid_parameter(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ())[1:]) or "request"
    return error_response(request, 400, f"{where}: {first.get('msg', 'invalid value')}")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    messages = {404: "not found", 405: "method not allowed: this interface is read-only"}
    response = error_response(request, exc.status_code, str(exc.detail) if exc.status_code != 405 else messages[405])
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _backend_error(request: Request, exc: Exception) -> Response:
    log.error("%s %s: %s", request.method, request.url.path, exc)
    return error_response(request, 503, "the store or search backend is unavailable; try again later")


class Guard:
    """Read-only, security headers on every response, and no traceback ever reaches the client."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] not in ("GET", "HEAD"):
            await _plain(send, 405, "method not allowed: this interface is read-only", [(b"allow", b"GET, HEAD")],
                         as_json=True)
            return
        started = False
        head = scope["method"] == "HEAD"
        if head:  # answered as GET without the body (the routes are GET routes)
            scope = {**scope, "method": "GET"}

        async def with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            elif head and message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        try:
            await self.app(scope, receive, with_headers)
        except Exception:
            log.exception("%s %s failed", scope["method"], scope["path"])
            if not started:
                await _plain(send, 500, "internal error: the server could not answer this request (see its log)",
                             as_json=_answers_json(scope))


class UnderPrefix:
    """The application under a path prefix, whether the reverse proxy in front strips it or passes it on.

    The prefix becomes the request's ``root_path`` and part of its path, as ASGI has them, so
    that the request's URL, its base URL and the OpenAPI servers carry it.
    """

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = {**scope, "root_path": self.prefix}
            path: str = scope["path"]
            if path != self.prefix and not path.startswith(self.prefix + "/"):
                scope["path"] = self.prefix + path
                if scope.get("raw_path") is not None:
                    scope["raw_path"] = self.prefix.encode() + scope["raw_path"]
        await self.app(scope, receive, send)


async def _plain(
    send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None, *, as_json: bool
) -> None:
    """A response made without the application (which failed, or was not asked)."""
    if as_json:
        body, kind = json.dumps({"error": message, "status": status}).encode(), b"application/json"
    else:
        page = f"<!doctype html><title>Error {status}</title><h1>Error {status}</h1><p>{escape(message)}</p>"
        body, kind = page.encode(), b"text/html; charset=utf-8"
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode()),
                            *(headers or []), *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": body})
