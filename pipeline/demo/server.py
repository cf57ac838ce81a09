"""A quiet loopback HTTP server for the bundled demo corpus (feeds and article pages).

Text files are served with ``{{BASE}}`` replaced by the server's base URL, so feed
links point back at the server whatever port it got.

Each outlet (a directory with a ``feed.xml``) also gets, made from its feed: a home page
``/<outlet>/`` listing its articles and naming its feed in ``<link rel="alternate">``
(except ``NO_FEED_LINK``'s, which names none), and a Google News sitemap
``/<outlet>/news-sitemap.xml`` that robots.txt lists, so the corpus can be read from
sitemaps alone.

``python -m pipeline.demo.server [--port N]`` serves it until interrupted.
"""

from __future__ import annotations

import argparse
import email.utils
import hashlib
import html
import threading
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import unquote, urlsplit

import yaml

__all__ = ["CorpusServer", "bundled_corpus_dir"]

PLACEHOLDER = b"{{BASE}}"
ROBOTS_TXT = b"User-agent: *\nDisallow: /private/\n"
ROBOTS_MTIME = 1790812800  # 2026-10-01T00:00:00Z, fixed so its validators never change
#: The outlet whose home page names no feed: only robots.txt's sitemap leads to its articles.
NO_FEED_LINK = "coastline-daily"
NEWS_SITEMAP = "news-sitemap.xml"
_ATOM = "{http://www.w3.org/2005/Atom}"
TEXT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".xml": "application/xml",
}


def bundled_corpus_dir() -> Path:
    """The demo corpus shipped inside the package."""
    return Path(__file__).resolve().parent / "corpus"


def _content_type(path: Path, body: bytes) -> str:
    """Content type by extension; XML feeds by their root element."""
    if path.suffix == ".xml":
        rss, atom = body.find(b"<rss", 0, 2048), body.find(b"<feed", 0, 2048)
        if atom >= 0 and (rss < 0 or atom < rss):
            return "application/atom+xml"
        if rss >= 0:
            return "application/rss+xml"
    return TEXT_TYPES.get(path.suffix, "application/octet-stream")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 drops the SYNs of a client opening dozens of
    # connections at once, which then wait a second to retry: a stall no publisher has.
    request_queue_size = 128
    corpus: CorpusServer

    def handle_error(self, request: object, client_address: object) -> None:
        """Stay quiet when a client hangs up mid-response."""


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid the 40 ms delayed-ACK stall
    timeout = 30

    def do_GET(self) -> None:
        self._serve(send_body=True)

    def do_HEAD(self) -> None:
        self._serve(send_body=False)

    def log_message(self, format: str, *args: object) -> None:
        """No per-request logging: see ``CorpusServer.requests``."""

    def _serve(self, send_body: bool) -> None:
        corpus = self.server.corpus
        found = corpus.resolve(self.path)
        if found is None:
            headers = {"Content-Type": "text/plain; charset=utf-8"}
            self._finish(HTTPStatus.NOT_FOUND, b"not found\n", headers, send_body)
            return
        path, body, mtime = found
        if path.suffix in TEXT_TYPES:
            body = body.replace(PLACEHOLDER, corpus.base_url.encode())
        headers = {
            "Content-Type": _content_type(path, body),
            "ETag": '"%s"' % hashlib.sha256(body).hexdigest()[:32],
            "Last-Modified": email.utils.formatdate(mtime, usegmt=True),
        }
        if self._not_modified(headers["ETag"], mtime):
            self._finish(HTTPStatus.NOT_MODIFIED, b"", headers, send_body=False)
        else:
            self._finish(HTTPStatus.OK, body, headers, send_body)

    def _not_modified(self, etag: str, mtime: int) -> bool:
        """RFC 9110 13.2.2: If-None-Match, when present, wins over If-Modified-Since."""
        if_none_match = self.headers.get("If-None-Match")
        if if_none_match is not None:
            tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
            return "*" in tags or etag in tags
        try:
            since = email.utils.parsedate_to_datetime(self.headers.get("If-Modified-Since", ""))
        except (TypeError, ValueError):
            return False
        if since.tzinfo is None:
            since = since.replace(tzinfo=timezone.utc)
        return datetime.fromtimestamp(mtime, timezone.utc) <= since

    def _finish(self, status: HTTPStatus, body: bytes, headers: dict[str, str], send_body: bool) -> None:
        self.server.corpus.log(self.command, self.path, int(status))  # before replying: no race with the client
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if status != HTTPStatus.NOT_MODIFIED:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)


class CorpusServer:
    """Serves a corpus directory on 127.0.0.1, substituting {{BASE}} in text files with the server's base URL."""

    def __init__(self, root: Path | None = None, port: int = 0) -> None:
        self.root = (root if root is not None else bundled_corpus_dir()).resolve()
        self.port = port
        self.requests: list[tuple[str, str, int]] = []  # (method, raw request path, status)
        self._lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``; only valid once started."""
        if self._httpd is None:
            raise RuntimeError("CorpusServer is not started")
        return "http://127.0.0.1:%d" % self._httpd.server_address[1]

    def bind(self) -> str:
        """Take the port and return the base URL; requests wait until :meth:`start` serves them.

        A caller that must fork (a run's workers) before this process has a second thread
        binds first, learns its address, forks, then starts.
        """
        if self._httpd is None:
            self._httpd = _HTTPServer(("127.0.0.1", self.port), _Handler)
            self._httpd.corpus = self
        return self.base_url

    def start(self) -> str:
        """Bind if not bound yet, serve from a daemon thread, and return the base URL."""
        self.bind()
        if self._thread is None:
            assert self._httpd is not None
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="corpus-server", daemon=True
            )
            self._thread.start()
        return self.base_url

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._httpd is not None:
            if self._thread is not None:
                self._httpd.shutdown()
                self._thread.join()
            self._httpd.server_close()
            self._httpd, self._thread = None, None

    def __enter__(self) -> CorpusServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def log(self, method: str, path: str, status: int) -> None:
        """Record one served request (thread-safe)."""
        with self._lock:
            self.requests.append((method, path, status))

    def resolve(self, target: str) -> tuple[Path, bytes, int] | None:
        """Map a request target to (file, raw bytes, mtime), or None for a 404.

        The query string is ignored. Empty, ``.`` and ``..`` segments, backslashes and
        anything resolving outside the root (symlinks included) are refused.
        """
        path = unquote(urlsplit(target).path)
        if path == "/robots.txt":
            sitemaps = "".join(f"Sitemap: {PLACEHOLDER.decode()}/{name}/{NEWS_SITEMAP}\n" for name in self._outlets())
            return Path("robots.txt"), ROBOTS_TXT + sitemaps.encode(), ROBOTS_MTIME
        outlet, slash, rest = path.removeprefix("/").partition("/")
        if slash and rest in ("", NEWS_SITEMAP) and outlet in self._outlets() and path.startswith("/"):
            return self._outlet_page(outlet, rest)
        parts = path.split("/")[1:] if path.startswith("/") else []
        if not parts or any(p in ("", ".", "..") or "\\" in p or "\0" in p for p in parts):
            return None
        candidate = self.root.joinpath(*parts).resolve()
        if not candidate.is_relative_to(self.root) or not candidate.is_file():
            return None
        try:
            return candidate, candidate.read_bytes(), int(candidate.stat().st_mtime)
        except OSError:
            return None

    def _outlets(self) -> dict[str, tuple[str, str | None]]:
        """Outlet directory -> (name, language), from the corpus's feeds.yaml where it names them."""
        listed: dict[str, tuple[str, str | None]] = {}
        try:
            document = yaml.safe_load((self.root / "feeds.yaml").read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            document = {}
        for feed in document.get("feeds") or []:
            directory = str(feed.get("url", "")).replace(PLACEHOLDER.decode(), "").strip("/").partition("/")[0]
            listed[directory] = (str(feed.get("name") or directory), feed.get("language"))
        return {p.parent.name: listed.get(p.parent.name, (p.parent.name, None)) for p in sorted(self.root.glob("*/feed.xml"))}

    def _outlet_page(self, outlet: str, page: str) -> tuple[Path, bytes, int] | None:
        """An outlet's home page (``page`` empty) or news sitemap, made from its feed."""
        feed = self.root / outlet / "feed.xml"
        try:
            document, mtime = feed.read_bytes(), int(feed.stat().st_mtime)
            items = _feed_items(document)
        except (OSError, ET.ParseError):
            return None
        name, language = self._outlets()[outlet]
        if page == NEWS_SITEMAP:
            return Path(outlet, NEWS_SITEMAP), _news_sitemap(items, name, language or "en"), mtime
        link = "" if outlet == NO_FEED_LINK else (
            f'<link rel="alternate" type="{_content_type(feed, document)}" title="{html.escape(name)}" href="feed.xml">'
        )
        entries = "".join(f'<li><a href="{html.escape(url)}">{html.escape(title)}</a></li>' for url, title, _ in items)
        body = (f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(name)}</title>{link}</head>"
                f"<body><h1>{html.escape(name)}</h1><ul>{entries}</ul></body></html>")
        return Path(outlet, "index.html"), body.encode(), mtime


def _feed_items(document: bytes) -> list[tuple[str, str, str]]:
    """(link, title, W3C publication date) of each item of an RSS or Atom feed of the corpus."""
    root = ET.fromstring(document)
    items = []
    for item in root.iter("item"):
        published = email.utils.parsedate_to_datetime(item.findtext("pubDate", "")).isoformat()
        items.append((item.findtext("link", ""), item.findtext("title", ""), published))
    for entry in root.iter(_ATOM + "entry"):
        link = next(a.get("href", "") for a in entry.iter(_ATOM + "link") if a.get("rel", "alternate") == "alternate")
        published = entry.findtext(_ATOM + "published") or entry.findtext(_ATOM + "updated") or ""
        items.append((link, entry.findtext(_ATOM + "title", ""), published))
    return items


def _news_sitemap(items: list[tuple[str, str, str]], name: str, language: str) -> bytes:
    urls = "".join(
        f"<url><loc>{html.escape(link)}</loc><news:news><news:publication><news:name>{html.escape(name)}</news:name>"
        f"<news:language>{html.escape(language)}</news:language></news:publication>"
        f"<news:publication_date>{published}</news:publication_date><news:title>{html.escape(title)}</news:title>"
        f"</news:news></url>\n"
        for link, title, published in items
    )
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
            f'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">\n{urls}</urlset>\n').encode()


def main() -> None:
    """Serve the bundled corpus on 127.0.0.1 until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.demo.server", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: any free one)")
    args = parser.parse_args()
    with CorpusServer(port=args.port) as server:
        print(f"serving the demo corpus at {server.base_url}/ (outlet home pages: {server.base_url}/<outlet>/); "
              "Ctrl-C stops", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
