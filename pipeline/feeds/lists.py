"""The subscription list: ``feeds.yaml`` or an OPML export read into ``FeedSource`` records.

:func:`load_feed_list` reads either; :func:`read_opml`, :func:`merge_feed_lists` and
:func:`write_feed_list` back ``newsagg feeds import-opml``.
"""

from __future__ import annotations

import logging
import re
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote
from xml.parsers import expat

import yaml

from pipeline import files, yamlfiles
from pipeline.errors import ConfigError
from pipeline.feeds.documents import strip_bom
from pipeline.models import FeedSource
from pipeline.urls import MAX_URL_LENGTH, feed_url_key, unused_id

logger = logging.getLogger(__name__)

_YAML_KEYS = frozenset({"name", "url", "language", "tags", "poll_interval", "type", "cross_host"})
_KINDS = ("feed", "sitemap")
# A BCP 47 language tag ("en", "pt-BR", "zh-Hant-TW"), no longer than the store keeps (feeds.language).
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,8}(?:-[A-Za-z0-9]{1,8})*")
_LANGUAGE_MAX = 20


# -- feed lists ------------------------------------------------------------------------------


def load_feed_list(path: Path) -> list[FeedSource]:
    """Read the subscription list from a YAML file or an OPML export.

    The format is detected from the content (OPML is XML and starts with ``<``), not
    from the file name.

    Args:
        path: the feed list file.

    Returns:
        The feeds in file order. Their ids are those a feed new to the store gets (the
        slug of its name, suffixed when taken); a feed the store knows keeps its own,
        whatever its name or place: the store matches feeds by URL (``sync_feeds``).

    Raises:
        ConfigError: the file is missing or unreadable, or an entry is invalid (unknown
            key, missing url, wrong type, a url listed twice as ``feed_url_key`` spells
            it); the message names the file
            and the entry.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: feed list not found (write one, e.g. from config/feeds.yaml, or `newsagg feeds import-opml FILE`)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read feed list: {exc.strerror}") from None
    if is_opml(data):
        return read_opml(data, source=str(path))
    return _read_yaml(data, str(path))


def is_opml(data: bytes) -> bool:
    """Whether a feed list is OPML (XML: it starts with ``<``) rather than YAML."""
    return strip_bom(data).lstrip().startswith(b"<")


def read_opml(data: bytes, *, source: str = "OPML document") -> list[FeedSource]:
    """Read the feeds of an OPML subscription list.

    Outlines with an ``xmlUrl`` are feeds (sitemaps with ``type="sitemap"``); their name is ``title``, else ``text``.
    Enclosing outlines without an ``xmlUrl`` are categories: their names become the
    tags of every feed inside them, together with the feed's own ``category``
    attribute. A DOCTYPE is refused outright: OPML never needs one, and refusing it
    rules out entity expansion and external entities.

    Args:
        data: the OPML document.
        source: how error messages name the document (a file name).

    Returns:
        The feeds in document order, with ids as :func:`load_feed_list` gives them; a
        URL listed twice (as ``feed_url_key`` spells it) is kept once.

    Raises:
        ConfigError: not well-formed XML, not OPML, a DOCTYPE, or a feed outline without
            a usable ``xmlUrl``.
    """
    # Tolerate a BOM or blank lines before the XML declaration, as exporters produce them.
    root = _parse_xml_safely(strip_bom(data).lstrip(), source)
    if _local_name(root.tag) != "opml":
        raise ConfigError(f"{source}: not an OPML document (root element <{root.tag}>)")
    body = next((child for child in root if _local_name(child.tag) == "body"), None)
    if body is None:
        raise ConfigError(f"{source}: OPML document has no <body>")

    found: list[tuple[str, str, str | None, tuple[str, ...], Literal["feed", "sitemap"]]] = []
    # Iterative walk: a hostile file may nest outlines thousands deep.
    stack: list[tuple[ET.Element, tuple[str, ...]]] = [(child, ()) for child in reversed(body)]
    position = 0
    while stack:
        element, tags = stack.pop()
        if _local_name(element.tag) != "outline":
            continue
        position += 1
        attrs = {key.lower(): value.strip() for key, value in element.attrib.items()}
        label = attrs.get("title") or attrs.get("text") or ""
        xml_url = attrs.get("xmlurl")
        children = [child for child in element if _local_name(child.tag) == "outline"]
        if xml_url is None:
            if attrs.get("type", "").lower() in ("rss", "atom", "feed"):
                raise ConfigError(f"{source}: outline #{position} ({quoted(label or 'untitled')}) is a feed without xmlUrl")
            # A category (or an empty folder, or a plain note): its name tags what it holds.
            inner = tags + (label,) if label and label not in tags else tags
            stack.extend((child, inner) for child in reversed(children))
            continue
        url = feed_url(xml_url)
        if url is None:
            raise ConfigError(
                f"{source}: outline #{position} ({quoted(label or 'untitled')}) has an unusable xmlUrl {quoted(xml_url)}")
        own = tuple(t.strip().strip("/") for t in attrs.get("category", "").split(",") if t.strip().strip("/"))
        language = language_tag(attrs.get("language") or "")
        if attrs.get("language") and language is None:
            logger.warning("%s: outline #%d (%s): language %s is not a language tag such as 'en' or 'pt-BR'; ignored",
                           source, position, quoted(label or url), quoted(attrs["language"]))
        kind: Literal["feed", "sitemap"] = "sitemap" if attrs.get("type", "").lower() == "sitemap" else "feed"
        found.append((label or host_name(url), url, language, _unique(tags + own), kind))
        # Some exporters nest feeds under a feed outline; keep them rather than lose them.
        stack.extend((child, tags) for child in reversed(children))

    feeds: list[FeedSource] = []
    seen: set[str] = set()
    ids: set[str] = set()
    for name, url, language, tags, kind in found:
        key = feed_url_key(url) or url
        if key in seen:
            logger.info("%s: feed %s listed twice, keeping the first", source, url)
            continue
        seen.add(key)
        feeds.append(
            FeedSource(id=_unique_slug(name, url, ids), name=name, url=url, language=language, tags=tags, kind=kind)
        )
    return feeds


def merge_feed_lists(existing: Sequence[FeedSource], new: Iterable[FeedSource]) -> list[FeedSource]:
    """Add feeds to a subscription list, skipping those already in it.

    Args:
        existing: the current list; kept as is and in order, ids unchanged.
        new: feeds to add (e.g. from :func:`read_opml`); a feed whose URL is already
            present (as ``feed_url_key`` spells it) is skipped.

    Returns:
        ``existing`` followed by the genuinely new feeds. New feeds get ids the way
        :func:`load_feed_list` will derive them once the list is written and read back
        (slug of the name, suffixed when taken).
    """
    merged = list(existing)
    seen = {feed_url_key(feed.url) or feed.url for feed in existing}
    ids = {feed.id for feed in existing}
    for feed in new:
        key = feed_url_key(feed.url) or feed.url
        if key in seen:
            continue
        seen.add(key)
        merged.append(
            FeedSource(
                id=_unique_slug(feed.name, feed.url, ids),
                name=feed.name,
                url=feed.url,
                language=feed.language,
                tags=feed.tags,
                poll_interval=feed.poll_interval,
                kind=feed.kind,
                cross_host=feed.cross_host,
            )
        )
    return merged


def write_feed_list(path: Path, feeds: Sequence[FeedSource]) -> None:
    """Write a subscription list as ``feeds.yaml``, atomically.

    Only keys that carry information are written (no empty tags, no null language).
    Ids are not written: the store knows a feed by its URL. Comments in an existing
    file are not preserved.

    Args:
        path: the YAML file to (re)write.
        feeds: the feeds, in the order they should appear.

    Raises:
        ConfigError: the file cannot be written.
    """
    entries: list[dict[str, Any]] = []
    for feed in feeds:
        entry: dict[str, Any] = {"name": feed.name, "url": feed.url}
        if feed.language:
            entry["language"] = feed.language
        if feed.tags:
            entry["tags"] = list(feed.tags)
        if feed.poll_interval is not None:
            entry["poll_interval"] = feed.poll_interval
        if feed.kind != "feed":
            entry["type"] = feed.kind
        if feed.cross_host:
            entry["cross_host"] = True
        entries.append(entry)
    text = yaml.safe_dump({"feeds": entries}, sort_keys=False, allow_unicode=True, default_flow_style=False)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with files.replacing(path) as handle:
            handle.write(text)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write feed list: {exc.strerror}") from None


def _read_yaml(data: bytes, source: str) -> list[FeedSource]:
    try:
        document = yamlfiles.load(strip_bom(data).decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: feed list is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{source}: invalid YAML{where}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {exc}") from None
    if not isinstance(document, dict) or "feeds" not in document:
        raise ConfigError(f"{source}: expected a mapping with a 'feeds' list")
    unknown = sorted(str(key) for key in document if key != "feeds")
    if unknown:
        raise ConfigError(f"{source}: unknown top-level key(s) {', '.join(unknown)} (only 'feeds' is allowed)")
    raw_feeds = document["feeds"]
    if raw_feeds is None:
        return []
    if not isinstance(raw_feeds, list):
        raise ConfigError(f"{source}: 'feeds' must be a list, not {_type_name(raw_feeds)}")

    feeds: list[FeedSource] = []
    ids: set[str] = set()
    seen: dict[str, int] = {}
    for index, raw in enumerate(raw_feeds, start=1):
        feed = _yaml_entry(raw, index, source, ids)
        key = feed_url_key(feed.url) or feed.url
        if key in seen:
            raise ConfigError(
                f"{source}: feed #{index} ({feed.name!r}): url {feed.url} is already listed as feed #{seen[key]}"
            )
        seen[key] = index
        feeds.append(feed)
    return feeds


def _yaml_entry(raw: object, index: int, source: str, ids: set[str]) -> FeedSource:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: feed #{index}: expected a mapping with name and url, not {_type_name(raw)}")
    label = raw.get("name") if isinstance(raw.get("name"), str) else raw.get("url")
    where = f"{source}: feed #{index}" + (f" ({quoted(label)})" if isinstance(label, str) else "")
    unknown = sorted(str(key) for key in raw if key not in _YAML_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(_YAML_KEYS))})")
    name, url = raw.get("name"), raw.get("url")
    if url is None:
        raise ConfigError(f"{where}: missing 'url'")
    if not isinstance(url, str):
        raise ConfigError(f"{where}: 'url' must be a string, not {_type_name(url)}")
    try:
        url_to_poll = polled_url(url)
    except ConfigError as exc:
        raise ConfigError(f"{where}: 'url' {exc}") from None
    if name is None:
        raise ConfigError(f"{where}: missing 'name'")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}: 'name' must be a non-empty string, not {_type_name(name)}")
    language = raw.get("language")
    if language is not None and (not isinstance(language, str) or not language.strip()):
        raise ConfigError(f"{where}: 'language' must be a string such as 'en', not {_type_name(language)}")
    if language is not None and language_tag(language) is None:
        raise ConfigError(f"{where}: 'language' {language!r} is not a language tag such as 'en' or 'pt-BR' "
                          f"(letters, digits and hyphens, at most {_LANGUAGE_MAX} characters)")
    tags = raw.get("tags")
    if tags is None:
        tags = []
    if not isinstance(tags, list) or not all(isinstance(tag, str) and tag.strip() for tag in tags):
        raise ConfigError(f"{where}: 'tags' must be a list of strings, e.g. [local, politics]")
    poll_interval = raw.get("poll_interval")
    # bool is an int subclass: "poll_interval: yes" must not become 1 second.
    if poll_interval is not None and (
        isinstance(poll_interval, bool) or not isinstance(poll_interval, int) or poll_interval <= 0
    ):
        raise ConfigError(f"{where}: 'poll_interval' must be a positive number of seconds, not {poll_interval!r}")
    kind = raw.get("type", "feed")
    if kind not in _KINDS:
        raise ConfigError(f"{where}: 'type' must be one of {', '.join(_KINDS)}, not {kind!r}")
    cross_host = raw.get("cross_host", False)
    if not isinstance(cross_host, bool):
        raise ConfigError(f"{where}: 'cross_host' must be true or false, not {cross_host!r}")
    name = name.strip()
    return FeedSource(
        id=_unique_slug(name, url_to_poll, ids),
        name=name,
        url=url_to_poll,
        language=language_tag(language) if language else None,
        tags=_unique(tag.strip() for tag in tags),
        poll_interval=poll_interval,
        kind=kind,
        cross_host=cross_host,
    )


def feed_url(raw: str) -> str | None:
    """The URL to poll as written (stripped; ``feed:`` dropped), or None unless it is absolute http(s)."""
    url = raw.strip()
    # feed:// and feed:https:// are the old "subscribe" pseudo-schemes some OPML exports use.
    if url.lower().startswith("feed:"):
        rest = url[5:]
        url = rest if rest.lower().startswith(("http://", "https://")) else "http:" + rest
    return url if feed_url_key(url) is not None else None


_PRINTABLE_ASCII = "".join(map(chr, range(33, 127)))


def polled_url(raw: str) -> str:
    """``feed_url``, or a ConfigError saying why ``raw`` cannot be polled."""
    url = feed_url(raw)
    if url is not None:
        return url
    written = raw.strip()
    length = len(quote(written, safe=_PRINTABLE_ASCII))  # the URL kept has its other characters percent-encoded
    if length > MAX_URL_LENGTH:
        encoded = " once percent-encoded" if length != len(written) else ""
        raise ConfigError(f"{quoted(written)} is {length} characters long{encoded}, over the {MAX_URL_LENGTH} a URL may have")
    raise ConfigError(f"{quoted(written)} is not an absolute http(s) URL")


def quoted(value: str, limit: int = 100) -> str:
    """``value`` quoted for an error line, cut short when it is long."""
    return repr(value if len(value) <= limit else value[:limit] + "…")


def language_tag(value: str) -> str | None:
    """The language tag written (``pt_BR`` as ``pt-BR``), or None if it is not one the store can keep."""
    tag = value.strip().replace("_", "-")
    return tag if len(tag) <= _LANGUAGE_MAX and _LANGUAGE_TAG.fullmatch(tag) else None


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:60].strip("-")


def _unique_slug(name: str, url: str, taken: set[str]) -> str:
    """Slug of the name (else of the URL's host), suffixed -2, -3... until unused; reserves it."""
    return unused_id(_slug(name) or _slug(host_name(url)) or "feed", taken)



def host_name(url: str) -> str:
    """The host of a feed URL: the name of a feed that has none."""
    canonical = feed_url_key(url)
    return canonical.split("/")[2] if canonical else url


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))


def _type_name(value: object) -> str:
    return "nothing" if value is None else type(value).__name__


def _local_name(tag: object) -> str:
    return tag.rpartition("}")[2].lower() if isinstance(tag, str) else ""


def _parse_xml_safely(data: bytes, source: str) -> ET.Element:
    """Parse XML with expat, refusing any DOCTYPE, entity declaration or external reference."""

    def refuse(*_: object) -> int:  # int: the shape expat expects of ExternalEntityRefHandler
        raise ConfigError(f"{source}: DOCTYPE and entity declarations are not allowed in OPML")

    builder = ET.TreeBuilder()
    parser = expat.ParserCreate()
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(data, True)
        return builder.close()
    except expat.ExpatError as exc:
        raise ConfigError(f"{source}: not well-formed XML: {expat.ErrorString(exc.code)} at line {exc.lineno}") from None
