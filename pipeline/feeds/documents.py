"""One fetched feed document (RSS, Atom, JSON Feed) turned into a ``ParsedFeed`` of clean entries.

feedparser only ever sees bytes we fetched (wrapped in a stream: given ``bytes`` it would
treat them as a file name and open it). Before it does, documents whose DOCTYPE declares
entities are refused (entity expansion, external entities), and documents with far more
entries than we keep are cut after the last entry we could use, because feedparser's
cost grows with the whole document (100,000 entries take it tens of seconds).
"""

from __future__ import annotations

import calendar
import io
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import feedparser
import lxml.etree
import lxml.html

from pipeline.charsets import guess_encoding, parse_json, without_surrogate_references
from pipeline.errors import FeedParseError
from pipeline.models import FeedEntry, FeedSource, Fetched, ParsedFeed
from pipeline.urls import canonicalize, feed_entry_key

logger = logging.getLogger(__name__)

#: Publication dates before this are treated as bogus (the web had few news feeds then;
#: a 1970 date is an epoch-zero default, not a fact).
EARLIEST_DATE = datetime(1995, 1, 1, tzinfo=UTC)
#: Dates further in the future than this are treated as bogus (clock skew is allowed).
FUTURE_TOLERANCE = timedelta(days=1)

_TITLE_FALLBACK_WORDS = 12
_TITLE_FALLBACK_CHARS = 120


# -- feed documents ---------------------------------------------------------------------------


@dataclass(slots=True)
class _RawEntry:
    """One entry as found in the document, before validation."""

    link: str | None
    guid: str | None
    title: str
    summary: str | None
    content: str | None
    author: str | None
    published: datetime | None
    updated: datetime | None = None  # when the publisher last changed the entry (a correction)
    dated_by_update: bool = False  # ``published`` is ``updated``: the entry gave no date of publication


def parse_feed(feed: FeedSource, fetched: Fetched, *, max_entries: int, now: datetime | None = None) -> ParsedFeed:
    """Turn a fetched feed document (RSS, Atom, RDF or JSON Feed) into clean entries.

    Links are canonicalised against the document URL. An entry without a usable link
    that carries content or a summary (microblogs, wires, podcasts) is kept under a key
    of its own (``urls.feed_entry_key``, never fetched), to become an article from its
    feed text; one with neither link nor text is dropped, as are later duplicates (same
    canonical URL or key, or same guid). Dates before
    1995 or more than a day after ``now`` become None; summary and content HTML become
    plain text with paragraphs separated by blank lines; a missing title is made of
    the first words of the summary.

    Args:
        feed: the subscription the document belongs to (its id goes on every entry).
        fetched: the HTTP response; only its bytes, content type and final URL are used.
        max_entries: the number of usable entries kept, first in document order. Only
            the first ``2 * max_entries + 20`` entries of the document are read: a
            100,000-entry document is cut before feedparser sees it.
        now: the reference time for rejecting future dates (default: the current time).

    Returns:
        The feed's title, its entries, its RSS ``ttl`` in minutes, and ``error`` set when
        the document was malformed but still yielded entries. A well-formed feed with no
        items yields an empty list.

    Raises:
        FeedParseError: the document is not a feed (an HTML page, an empty body, garbage),
            declares XML entities, or none of its entries has a usable link or any text;
            or reading it failed in any other way (logged as an error).
    """
    source = f"feed {feed.id} ({fetched.url})"
    try:
        return _parse(feed, fetched, max_entries, _aware(now or datetime.now(UTC)), source)
    except FeedParseError:
        raise
    except Exception as exc:  # a hostile document meeting a fault of ours: it costs this feed's poll, not the run
        logger.error("reading %s failed: %s: %s", source, type(exc).__name__, exc)
        raise FeedParseError(source, f"reading the document failed: {type(exc).__name__}: {exc}") from None


def _parse(feed: FeedSource, fetched: Fetched, max_entries: int, now: datetime, source: str) -> ParsedFeed:
    if fetched.not_modified:
        raise FeedParseError(source, "304 Not Modified has no document to parse")
    body = strip_bom(fetched.body)
    if not body.strip():
        raise FeedParseError(source, "empty body")
    content_type = fetched.content_type or fetched.headers.get("content-type") or ""
    # Entries read from the document: slack for those we will drop (no link nor text, duplicates),
    # yet bounded, since parsing and cleaning cost grows with every entry read.
    limit = max_entries * 2 + 20
    if _looks_like_json(body, content_type):
        title, raw_entries, error, ttl = _read_json_feed(fetched, source, limit)
    else:
        title, raw_entries, error, ttl = _read_xml_feed(fetched, content_type, limit, source)
    entries = _clean_entries(feed, raw_entries, max_entries, now, fetched.url, source)
    if raw_entries and not entries:
        raise FeedParseError(source, f"none of its {len(raw_entries)} entries has a usable link or any text")
    return ParsedFeed(title=title, entries=entries, error=error, ttl_minutes=ttl)


def _read_xml_feed(
    fetched: Fetched, content_type: str, limit: int, source: str
) -> tuple[str | None, list[_RawEntry], str | None, int | None]:
    data = _to_utf8_if_wide(fetched.body)
    if data is not fetched.body:
        # Transcoded to UTF-8 (declaration rewritten): a "charset=utf-16" header is now wrong.
        content_type = content_type.split(";")[0]
    data = strip_bom(data)
    if declares_entities(data):
        raise FeedParseError(
            source,
            "the document's DOCTYPE declares XML entities (entity expansion or external "
            "entity attack, or an obsolete feed); refused"
        )
    if _looks_like_html(data):
        hint = _advertised_feed(data, fetched.url)
        raise FeedParseError(source, "HTML page, not a feed" + (f" (it links to the feed {hint})" if hint else ""))
    data, content_type, relabelled = _relabel_utf8(data, content_type)
    if not fetched.body.startswith(_BOMS):
        data, content_type, relabelled = _detect_undeclared(data, content_type, relabelled)
    data = _truncate_entries(data, limit)
    data = without_surrogate_references(data)
    try:
        result = feedparser.parse(
            io.BytesIO(data),
            response_headers={
                # Any XML type: feedparser treats text/html as "not XML" and text/xml
                # without charset as US-ASCII (RFC 3023), neither of which helps us.
                "content-type": _xml_content_type(content_type),
                "content-location": fetched.url,
            },
            # Both rewrite the entries' embedded HTML with feedparser's pure-Python HTML
            # parser, and html_to_text then keeps only its text (without scripts and
            # styles, without links): a tenth of the parse time for nothing.
            sanitize_html=False,
            resolve_relative_uris=False,
        )
    except Exception as exc:  # a third-party parser fed hostile bytes: contain whatever it raises
        raise FeedParseError(source, f"feed parser failed: {type(exc).__name__}: {exc}") from None
    entries = [_raw_from_feedparser(entry) for entry in _list_field(result, "entries")]
    version = _field(result, "version") or ""
    bozo = _field(result, "bozo_exception") if _field(result, "bozo") else None
    if not entries and not version:
        reason = f"not a feed ({_describe(bozo)})" if bozo is not None else "not an RSS, Atom or JSON feed"
        raise FeedParseError(source, reason)
    error = relabelled
    if bozo is not None and not isinstance(bozo, feedparser.NonXMLContentType):
        error = _describe(bozo)
    channel = _field(result, "feed")
    title = _one_line(_detail_text(channel, "title")) or None
    return title, entries, error, _ttl_minutes(_field(channel, "ttl"))


def _field(record: object, key: str) -> Any:
    """A key of a feedparser dict, read raw: its own ``get`` aliases keys and warns doing so."""
    return dict.get(record, key) if isinstance(record, dict) else None


def _list_field(record: object, key: str) -> list[dict[str, Any]]:
    value = _field(record, key)
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _raw_from_feedparser(entry: object) -> _RawEntry:
    link = _field(entry, "link")
    if not link:
        link = next(
            (_field(item, "href") for item in _list_field(entry, "links") if _field(item, "rel") in (None, "alternate")),
            None,
        )
    guid = _field(entry, "id")
    if not link and _field(entry, "guidislink"):
        link = guid
    contents = _list_field(entry, "content")
    # Prefer the HTML renderings when a feed offers several (Atom allows text and html).
    chosen = [c for c in contents if "html" in (_field(c, "type") or "text/html")] or contents
    content_html = "\n".join(v for v in (_field(c, "value") for c in chosen) if isinstance(v, str))
    published = None
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        published = _from_struct_time(_field(entry, key))
        if published is not None:
            break
    author = _field(entry, "author")
    return _RawEntry(
        link=link if isinstance(link, str) else None,
        guid=guid.strip() if isinstance(guid, str) and guid.strip() else None,
        title=_one_line(_detail_text(entry, "title")),
        summary=_detail_text(entry, "summary") or None,
        content=html_to_text(content_html) or None,
        author=_one_line(author) if isinstance(author, str) and author.strip() else None,
        published=published,
        updated=_from_struct_time(_field(entry, "updated_parsed")),
        dated_by_update=published is not None and key == "updated_parsed",
    )


def _detail_text(record: object, key: str) -> str:
    """Text of a feedparser text construct, read as HTML only when the feed says it is."""
    value = _field(record, key)
    if not isinstance(value, str):
        return ""
    kind = _field(_field(record, f"{key}_detail"), "type")
    return html_to_text(value) if "html" in (kind if isinstance(kind, str) else "text/html") else _plain_text(value)


def _read_json_feed(
    fetched: Fetched, source: str, limit: int
) -> tuple[str | None, list[_RawEntry], str | None, int | None]:
    try:
        document = parse_json(strip_bom(fetched.body))
    except (ValueError, RecursionError) as exc:
        # ValueError covers UnicodeDecodeError and JSONDecodeError; RecursionError deep nesting.
        raise FeedParseError(source, f"invalid JSON: {str(exc)[:200]}") from None
    if not isinstance(document, dict) or not isinstance(document.get("items"), list):
        raise FeedParseError(source, "JSON document is not a JSON Feed (no 'items' list)")
    version = document.get("version")
    error = None
    if not (isinstance(version, str) and "jsonfeed.org/version/" in version):
        error = f"JSON Feed without a jsonfeed.org version (version={version!r})"
    feed_author = _json_authors(document)
    entries: list[_RawEntry] = []
    for item in document["items"][:limit]:
        if not isinstance(item, dict):
            continue
        link = _json_str(item.get("url")) or _json_str(item.get("external_url"))
        guid = item.get("id")
        html = _json_str(item.get("content_html"))
        content = html_to_text(html) if html else _plain_text(_json_str(item.get("content_text")) or "")
        summary = _plain_text(_json_str(item.get("summary")) or "")
        published = _parse_iso(_json_str(item.get("date_published"))) or _parse_iso(
            _json_str(item.get("date_modified"))
        )
        entries.append(
            _RawEntry(
                link=link,
                # JSON Feed ids are strings, but numbers are common in the wild.
                guid=str(guid).strip() if isinstance(guid, str | int) and str(guid).strip() else None,
                title=_one_line(_json_str(item.get("title")) or ""),
                summary=summary or None,
                content=content or None,
                author=_json_authors(item) or feed_author,
                published=published,
                updated=_parse_iso(_json_str(item.get("date_modified"))),
            )
        )
    title = _one_line(_json_str(document.get("title")) or "") or None
    return title, entries, error, None


def _json_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _json_authors(obj: dict[str, Any]) -> str | None:
    """Author names of a JSON Feed item or feed: ``authors`` (1.1) or ``author`` (1.0)."""
    people = obj.get("authors")
    if not isinstance(people, list):
        people = [obj.get("author")]
    names = [p["name"].strip() for p in people if isinstance(p, dict) and isinstance(p.get("name"), str)]
    return ", ".join(n for n in names if n) or None


def _stamped(raw_entries: Sequence[_RawEntry]) -> bool:
    """Whether the entries' update times are one stamp: the time the feed was built, not corrections.

    Two entries or more corrected in the same second are far less likely than a CMS that
    writes its build time into every entry, which would have every page fetched again at every poll.
    An entry whose update time is the publication time it states was not changed since: it is
    no stamp (entries published in one second would otherwise have their update times dropped,
    and the first correction of each would not be fetched).
    """
    stamps = [raw.updated for raw in raw_entries
              if raw.updated is not None and (raw.dated_by_update or raw.updated != raw.published)]
    return len(set(stamps)) == 1 and len(stamps) >= 2


def _clean_entries(
    feed: FeedSource, raw_entries: Sequence[_RawEntry], max_entries: int, now: datetime, base: str, source: str
) -> list[FeedEntry]:
    entries: list[FeedEntry] = []
    seen_urls: set[str] = set()
    seen_guids: set[str] = set()
    document_url = canonicalize(base)
    linkless = skipped = duplicates = bad_dates = 0
    stamped = _stamped(raw_entries)
    if stamped:
        logger.debug("%s: every entry has the same update time (the feed's build time): update times not used", source)
    for raw in raw_entries:
        if len(entries) >= max_entries:
            break
        url = canonicalize(raw.link, base=base) if raw.link else None
        if url is None or url == document_url:  # a link back to the feed itself ("#", "") is none either
            text = raw.content or raw.summary
            if not text:
                skipped += 1
                logger.debug("%s: entry %r skipped: no usable link (%r) and no text", source, raw.title[:80], raw.link)
                continue
            url = feed_entry_key(feed.id, raw.guid, raw.title, text)
            linkless += 1
        if url in seen_urls or (raw.guid is not None and raw.guid in seen_guids):
            duplicates += 1
            logger.debug("%s: duplicate entry %s dropped", source, url)
            continue
        seen_urls.add(url)
        if raw.guid is not None:
            seen_guids.add(raw.guid)
        published = raw.published
        if published is not None and not EARLIEST_DATE <= published <= now + FUTURE_TOLERANCE:
            bad_dates += 1
            logger.debug("%s: entry %s has an implausible date %s; ignored", source, url, published.isoformat())
            published = None
        title = raw.title or _first_words(raw.summary or raw.content or "")
        entries.append(
            FeedEntry(
                feed_id=feed.id,
                url=url,
                title=title,
                summary=raw.summary,
                content=raw.content,
                author=raw.author,
                published=published,
                guid=raw.guid,
                # An implausible or stamped update time would queue the page again at every poll: not used.
                updated=(
                    raw.updated
                    if raw.updated and not stamped and EARLIEST_DATE <= raw.updated <= now + FUTURE_TOLERANCE
                    else None
                ),
            )
        )
    if linkless or skipped or duplicates or bad_dates:
        logger.info(
            "%s: %d entries without a usable link kept for their feed text, %d without link or text skipped, "
            "%d duplicates dropped, %d implausible dates ignored",
            source,
            linkless,
            skipped,
            duplicates,
            bad_dates,
        )
    return entries


# -- document sniffing and hardening -----------------------------------------------------------

_BOMS = (b"\xef\xbb\xbf",)
_WIDE_BOMS = (
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\xfe\xff", "utf-16-be"),
    (b"\xff\xfe", "utf-16-le"),
)
_EBCDIC_MARKER = b"\x4c\x6f\xa7\x94"  # "<?xm" in EBCDIC, which feedparser also decodes
_XML_DECL_ENCODING = re.compile(rb"^(<\?xml[^>]*?encoding\s*=\s*)([\"'])([^\"']*)\2", re.IGNORECASE)
_CHARSET = re.compile(r"charset\s*=\s*[\"']?([\w.:-]+)", re.IGNORECASE)
_LATIN1_LABELS = frozenset(
    {"iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "windows-1252", "cp1252", "us-ascii", "ascii"}
)
_FIRST_ELEMENT = re.compile(rb"<[A-Za-z_:]")
_ENTITY_DECL = re.compile(rb"<!\s*ENTITY", re.IGNORECASE)
_NAME = re.compile(rb"[A-Za-z_][\w.:-]*")
# Root elements feedparser reads as feeds (RSS 0.9x/2.0, Atom, RSS 1.0's rdf:RDF); compared by local name.
_FEED_ROOTS = frozenset({b"rss", b"feed", b"rdf", b"channel"})
_HTML_START = re.compile(
    rb"^\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*(?:<!doctype\s+html\b|<html\b)", re.IGNORECASE | re.DOTALL
)
_ALTERNATE_FEED = re.compile(
    rb"<link\b[^>]*type\s*=\s*[\"']application/(?:rss|atom|feed)\+(?:xml|json)[\"'][^>]*>", re.IGNORECASE
)
_HREF = re.compile(rb"href\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
_ENTRY_NAMES = (b"item", b"entry")


def strip_bom(data: bytes) -> bytes:
    return data[3:] if data.startswith(_BOMS) else data


def _to_utf8_if_wide(data: bytes) -> bytes:
    """Re-encode UTF-16/32 and EBCDIC documents as UTF-8, so the byte-level checks below see them.

    The encoding in the XML declaration is rewritten to match.
    """
    encoding = next((name for bom, name in _WIDE_BOMS if data.startswith(bom)), None)
    skip = 0
    if encoding is not None:
        skip = len(next(bom for bom, name in _WIDE_BOMS if name == encoding))
    elif data.startswith(_EBCDIC_MARKER):
        encoding = "cp037"
    elif data[:4] in (b"<\x00?\x00", b"\x00<\x00?"):
        encoding = "utf-16-le" if data[1] == 0 else "utf-16-be"
    if encoding is None:
        return data
    text = data[skip:].decode(encoding, errors="replace").encode("utf-8")
    return _XML_DECL_ENCODING.sub(rb"\1\2utf-8\2", text, count=1)


def _prolog(data: bytes) -> bytes:
    """Everything before the root element: where a DOCTYPE and its declarations live."""
    match = _FIRST_ELEMENT.search(data)
    return data if match is None else data[: match.start()]


def declares_entities(data: bytes) -> bool:
    """Whether the document's prolog declares XML entities (entity expansion, external entities)."""
    # NULs are dropped so that a UTF-16 document without BOM cannot hide a declaration.
    return _ENTITY_DECL.search(_prolog(data).replace(b"\x00", b"")) is not None


def _looks_like_html(data: bytes) -> bool:
    """An HTML page rather than a feed: a feed's root element decides, whatever DOCTYPE precedes it.

    Some CMSs put ``<!DOCTYPE html>`` before ``<rss>``; feedparser goes by the root element too.
    """
    return root_name(data[:65536]) not in _FEED_ROOTS and _HTML_START.match(data[:4096]) is not None


def root_name(data: bytes) -> bytes | None:
    """The root element's local name, lower-cased, found past the XML declaration, comments,
    processing instructions and DOCTYPE; None when text or nothing comes first."""
    pos = 0
    while (start := data.find(b"<", pos)) >= 0 and not data[pos:start].strip():
        if data.startswith(b"<!--", start):
            end, step = data.find(b"-->", start + 4), 3
        elif data.startswith(b"<?", start):
            end, step = data.find(b"?>", start + 2), 2
        elif data.startswith(b"<!", start):
            close = data.find(b">", start)
            bracket = data.find(b"[", start, close) if close >= 0 else -1
            # A DOCTYPE with an internal subset ends at "]>", any other declaration at ">".
            end, step = (data.find(b"]>", bracket), 2) if bracket >= 0 else (close, 1)
        else:
            name = _NAME.match(data, start + 1)
            return name.group(0).rpartition(b":")[2].lower() if name else None
        if end < 0:
            return None
        pos = end + step
    return None


def _advertised_feed(data: bytes, base: str) -> str | None:
    """The feed an HTML page advertises with <link rel="alternate">, to make the error useful."""
    for tag in _ALTERNATE_FEED.findall(data[:65536]):
        href = _HREF.search(tag)
        if href:
            url = canonicalize(href.group(1).decode("utf-8", "replace"), base=base)
            if url:
                return url
    return None


def _looks_like_json(body: bytes, content_type: str) -> bool:
    media_type = content_type.split(";")[0].strip().lower()
    if media_type.endswith(("/json", "+json")):
        return True
    return body.lstrip()[:1] == b"{"


def _charset(content_type: str) -> str | None:
    match = _CHARSET.search(content_type)
    return match.group(1) if match else None


def _xml_content_type(content_type: str) -> str:
    charset = _charset(content_type)
    return f"application/xml; charset={charset}" if charset else "application/xml"


def _relabel_utf8(data: bytes, content_type: str) -> tuple[bytes, str, str | None]:
    """Read a document as UTF-8 when its declared charset cannot be right.

    Publishers often serve UTF-8 under a stale ``charset=iso-8859-1``; Latin-1 text that
    happens to be valid UTF-8 is vanishingly rare, so the bytes are the better witness.
    A UTF-16/32 label on bytes without NULs (real UTF-16 has them; UTF-16 with a BOM was
    transcoded before) is a copy-paste mistake too. The declaration is the HTTP charset,
    else the XML declaration's encoding.

    Returns:
        The data, the content type and a note when the document was relabelled.
    """
    declared = _charset(content_type)
    declaration = _XML_DECL_ENCODING.match(data)
    if declared is None and declaration is not None:
        declared = declaration.group(3).decode("ascii", "replace")
    label = (declared or "").lower().replace("_", "-")
    if label.startswith(("utf-16", "utf-32", "ucs-2", "ucs-4")):
        if b"\x00" in data[:256]:
            return data, content_type, None
    elif label not in _LATIN1_LABELS or data.isascii():
        return data, content_type, None
    else:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return data, content_type, None
    if declaration is not None:
        data = _XML_DECL_ENCODING.sub(rb"\1\2utf-8\2", data, count=1)
    return data, "application/xml; charset=utf-8", f"document declared as {declared} is UTF-8; read as UTF-8"


def _detect_undeclared(data: bytes, content_type: str, note: str | None) -> tuple[bytes, str, str | None]:
    """Transcode to UTF-8 a document that declares no encoding and is not UTF-8, from a detected one.

    Only when neither the HTTP charset, nor the XML declaration, nor a BOM (the caller
    checks) declares one: feedparser would otherwise read Big5 or KOI8-R as windows-1252.

    Returns:
        The data, the content type and the note to report (what was detected, else ``note``).
    """
    if _charset(content_type) or _XML_DECL_ENCODING.match(data) or data.isascii():
        return data, content_type, note
    try:
        data.decode("utf-8")  # XML's default
        return data, content_type, note
    except UnicodeDecodeError:
        pass
    encoding = guess_encoding(data)
    transcoded = data.decode(encoding, "replace").encode("utf-8")
    return transcoded, "application/xml; charset=utf-8", f"no declared encoding; read as {encoding} (detected)"


def _truncate_entries(data: bytes, keep: int) -> bytes:
    """Cut the document before its (keep+1)-th entry and close the elements still open.

    Scans tags with ``bytes.find`` (linear, no regex backtracking), skipping comments,
    CDATA sections, processing instructions and declarations. If the document cannot
    be scanned cleanly it is returned whole: feedparser copes, only slower.
    """
    if sum(data.count(marker) for marker in (b"<item", b"<entry", b":item", b":entry")) <= keep:
        return data
    stack: list[bytes] = []
    count = 0
    pos = data.find(b"<")
    while pos >= 0:
        if data.startswith(b"<!--", pos):
            end = data.find(b"-->", pos + 4)
            step = 3
        elif data.startswith(b"<![CDATA[", pos):
            end = data.find(b"]]>", pos + 9)
            step = 3
        elif data.startswith(b"<?", pos):
            end = data.find(b"?>", pos + 2)
            step = 2
        elif data.startswith(b"<!", pos):
            close = data.find(b">", pos)
            bracket = data.find(b"[", pos, close) if close >= 0 else -1
            # A DOCTYPE with an internal subset ends at "]>", any other declaration at ">".
            end, step = (data.find(b"]>", bracket), 2) if bracket >= 0 else (close, 1)
        else:
            end = data.find(b">", pos)
            step = 1
            if end < 0:
                return data
            tag = data[pos + 1 : end]
            if tag.startswith(b"/"):
                name = tag[1:].strip()
                if name in stack:
                    while stack and stack.pop() != name:
                        pass
            elif not tag.endswith(b"/"):
                name = re.split(rb"[\s/]", tag, maxsplit=1)[0]
                if name.rpartition(b":")[2] in _ENTRY_NAMES:
                    count += 1
                    if count > keep:
                        return data[:pos] + b"".join(b"</" + n + b">" for n in reversed(stack))
                stack.append(name)
            elif re.split(rb"[\s/]", tag, maxsplit=1)[0].rpartition(b":")[2] in _ENTRY_NAMES:
                count += 1  # an empty <item/> still counts
        if end < 0:
            return data
        pos = data.find(b"<", end + step)
    return data


def _describe(exc: object) -> str:
    message = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {message}"[:300]


def _ttl_minutes(value: object) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        minutes = int(value.strip())
    except ValueError:
        return None
    return minutes if minutes > 0 else None


# -- dates --------------------------------------------------------------------------------------


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _from_struct_time(value: object) -> datetime | None:
    """feedparser's dates are UTC ``time.struct_time`` values."""
    if not isinstance(value, time.struct_time):
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), tz=UTC)
    except (OverflowError, ValueError, OSError):
        return None


def _parse_iso(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return _aware(datetime.fromisoformat(value.strip()))
    except ValueError:
        return None


# -- text ---------------------------------------------------------------------------------------

_BLOCK_TAGS = frozenset(
    {
        "address", "article", "aside", "blockquote", "dd", "details", "div", "dl", "dt", "figcaption",
        "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav",
        "ol", "p", "pre", "section", "summary", "table", "tr", "ul",
    }
)  # fmt: skip
_SKIP_TAGS = frozenset({"script", "style", "noscript", "template", "iframe", "object", "svg", "head", "title"})
_SPACES = re.compile(r"\s+")
_HTML_PARSER = lxml.html.HTMLParser(
    encoding="utf-8", remove_comments=True, remove_pis=True, no_network=True, recover=True
)


def html_to_text(markup: str) -> str:
    """Plain text of an HTML fragment: paragraphs separated by a blank line, ``<br>`` a newline.

    Scripts, styles and similar non-content elements are dropped; entities are decoded;
    whitespace inside a line is collapsed. Text without markup is only normalised.
    """
    if not markup or not markup.strip():
        return ""
    if "<" not in markup and "&" not in markup:
        return _plain_text(markup)
    try:
        document = lxml.html.document_fromstring(
            b"<html><body>" + markup.encode("utf-8", "replace") + b"</body></html>", parser=_HTML_PARSER
        )
    except (lxml.etree.ParserError, ValueError):
        return ""
    paragraphs: list[list[list[str]]] = [[[]]]  # paragraphs -> lines -> pieces

    def new_paragraph() -> None:
        if paragraphs[-1] != [[]]:
            paragraphs.append([[]])

    walker = lxml.etree.iterwalk(document, events=("start", "end"))
    for event, element in walker:
        tag = element.tag.lower() if isinstance(element.tag, str) else ""
        if event == "start":
            if tag in _SKIP_TAGS:
                walker.skip_subtree()
                continue
            if tag in _BLOCK_TAGS:
                new_paragraph()
            elif tag == "br":
                paragraphs[-1].append([])
            if element.text and tag not in _SKIP_TAGS:
                paragraphs[-1][-1].append(element.text)
        else:
            if tag in _BLOCK_TAGS:
                new_paragraph()
            if element.tail:
                paragraphs[-1][-1].append(element.tail)
    return _join_paragraphs(paragraphs)


def _join_paragraphs(paragraphs: list[list[list[str]]]) -> str:
    blocks = []
    for paragraph in paragraphs:
        lines = [_SPACES.sub(" ", "".join(pieces)).strip() for pieces in paragraph]
        text = "\n".join(line for line in lines if line)
        if text:
            blocks.append(text)
    return "\n\n".join(blocks)


def _plain_text(text: str) -> str:
    """Normalise plain text: blank lines separate paragraphs, other whitespace collapses."""
    paragraphs = re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n"))
    return _join_paragraphs([[[line] for line in p.split("\n")] for p in paragraphs])


def _one_line(text: str) -> str:
    """Titles and names: one line, whitespace collapsed."""
    return _SPACES.sub(" ", text).strip()


def _first_words(text: str) -> str:
    words = text.split()
    title = " ".join(words[:_TITLE_FALLBACK_WORDS])
    if len(title) > _TITLE_FALLBACK_CHARS:
        title = title[:_TITLE_FALLBACK_CHARS].rsplit(" ", 1)[0]
    return title + ("…" if len(words) > _TITLE_FALLBACK_WORDS or len(title) < len(" ".join(words)) else "")
