"""Canonical article URLs and the ids derived from them.

The same article reaches us under many spellings: ``HTTP://Example.COM:80/a?utm_source=x#top``,
``https://example.com/a?b=2&a=1`` vs ``...?a=1&b=2``, relative links in a feed. Clustering,
deduplication and the store all key on one spelling, produced here.

Rules applied by :func:`canonicalize`, in order:

* relative links are resolved against ``base`` (the feed or page URL);
* only ``http`` and ``https`` survive (``javascript:``, ``data:``, ``mailto:``, ``ftp:``,
  scheme-less text without a base, empty or unparsable input give ``None``);
* scheme and host are lower-cased, non-ASCII host labels IDNA-encoded (UTS #46 mapping,
  so ``Bücher.example`` and ``bücher.example`` agree), one trailing dot of the host dropped;
* userinfo (``user:pass@``) and the fragment are dropped, as is the default port
  (80 for http, 443 for https);
* percent-encoding is normalised: escapes of unreserved characters are decoded
  (``%7E`` -> ``~``), other escapes upper-cased (``%2f`` -> ``%2F``), characters that
  are not allowed in a URL (spaces, non-ASCII) are UTF-8 percent-encoded;
* dot segments are removed from the path, an empty path becomes ``/``; a trailing
  slash is otherwise kept as given (``/a`` and ``/a/`` may be different resources);
* tracking parameters (:data:`TRACKING_PARAMS`, any ``utm_*``) are removed and the
  remaining query parameters are sorted by name. Parameters with the same name keep
  their relative order, since ``?tag=b&tag=a`` may mean something different from
  ``?tag=a&tag=b``. ``+`` in a query is kept as is (it means a space in form
  encoding, and rewriting it would not change the resource).

:func:`canonicalize` is idempotent: canonicalising its own output returns the same string.

A feed entry without a usable link is keyed by :func:`feed_entry_key` instead, a
``urn:newsagg:`` URN that is never fetched; :func:`link_of` tells a link from such a key.

A feed is known by :func:`feed_url_key`, which applies the same rules except the last:
its query stays as written (escapes normalised), since a feed's parameters select what
it carries, and a feed URL is typed or exported once, not shared with tracking added.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import string
from urllib.parse import unquote_plus, urljoin, urlsplit, urlunsplit

import idna

#: Query parameters that only track the reader or the campaign, never select content.
#: Compared case-insensitively. Any parameter starting with ``utm_`` is also removed.
TRACKING_PARAMS: frozenset[str] = frozenset(
    {
        # Ad-click identifiers
        "fbclid",
        "gclid",
        "gclsrc",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "yclid",
        "twclid",
        "ttclid",
        "li_fat_id",
        "igshid",
        "igsh",
        # Mailchimp, HubSpot, Marketo, Vero
        "mc_cid",
        "mc_eid",
        "_hsenc",
        "_hsmi",
        "__hssc",
        "__hstc",
        "__hsfp",
        "hsctatracking",
        "mkt_tok",
        "vero_id",
        "vero_conv",
        # Google Analytics cross-domain linkers
        "_ga",
        "_gl",
        # Referrer and campaign markers used by news sites and aggregators
        "ref",
        "ref_src",
        "ref_url",
        "referrer",
        "cmpid",
        "ocid",
        "ncid",
        "spm",
        "s_cid",
        "icid",
        "sr_share",
        "xtor",
        "at_medium",
        "at_campaign",
        "at_custom1",
        "at_custom2",
        "at_custom3",
        "at_custom4",
        "smid",
        "soc_src",
        "soc_trk",
        "wt_mc",
        "cid_source",
        "__twitter_impression",
    }
)

_TRACKING_PREFIXES: tuple[str, ...] = ("utm_",)

DEFAULT_PORTS = {"http": 80, "https": 443}

# RFC 3986 character classes.
_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_SUB_DELIMS = frozenset("!$&'()*+,;=")
_PATH_SAFE = _UNRESERVED | _SUB_DELIMS | frozenset(":@/")
# Inside one query key or value: '&' and '=' stay escaped because they delimit pairs.
_QUERY_PART_SAFE = (_UNRESERVED | _SUB_DELIMS | frozenset(":@/?")) - frozenset("&=")
_QUERY_SAFE = _UNRESERVED | _SUB_DELIMS | frozenset(":@/?")

_HEX = frozenset(string.hexdigits)
_ASCII_HOST_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?$")
# Control characters and whitespace that browsers strip from inside URLs.
_STRIP_INSIDE = re.compile(r"[\t\n\r]")

#: What the keys of feed entries without a link start with (see :func:`feed_entry_key`).
FEED_ENTRY_URN = "urn:newsagg:"

#: URLs longer than this, as given or once canonical (percent-encoded), are refused:
#: no real article link is this long (the sitemaps protocol allows under 2,048
#: characters), the limit bounds the work done on hostile feed content, and a URL is
#: a key of the store, whose PostgreSQL indexes hold at most 2,704 bytes an entry.
MAX_URL_LENGTH = 2048


def canonicalize(url: str, base: str | None = None, *, tidy_query: bool = True) -> str | None:
    """Return the canonical spelling of an http(s) URL, or None if it is not one.

    Args:
        url: an absolute or relative URL, as found in a feed or page.
        base: the URL ``url`` is relative to (the document it was found in).
        tidy_query: drop tracking parameters and sort the rest (False: keep the query as
            written, escapes normalised; see :func:`feed_url_key`).

    Returns:
        The canonical absolute URL (see the module docstring for the rules), or
        ``None`` for anything that is not a usable http(s) link.
    """
    if not isinstance(url, str):
        return None
    url = _STRIP_INSIDE.sub("", url).strip()
    if not url or len(url) > MAX_URL_LENGTH:
        return None
    try:
        given = urlsplit(url)
        if given.scheme:
            # An explicit scheme is never joined: "mailto:" stays mailto, and "http://"
            # with no host is garbage rather than a link to the base document.
            if given.scheme.lower() not in DEFAULT_PORTS or not given.netloc:
                return None
        elif base:
            base = _STRIP_INSIDE.sub("", base).strip()
            url = urljoin(base, url)
        canonical = _canonicalize_absolute(url, tidy_query=tidy_query)
    except (ValueError, UnicodeError):
        # urlsplit raises on malformed IPv6 literals, idna on invalid labels.
        return None
    return canonical if canonical is None or len(canonical) <= MAX_URL_LENGTH else None


def feed_url_key(url: str) -> str | None:
    """The spelling that identifies a feed: its URL canonicalised except for the query, or None if not http(s).

    ``HTTP://News.Example:80/rss#top`` and ``http://news.example/rss`` are one feed;
    ``/rss?ref=main`` and ``/rss?ref=dev`` are two, and so are ``?a=1&b=2`` and ``?b=2&a=1``
    (a server may read its parameters in order). The scheme counts: ``http`` and
    ``https`` may be different feeds, and moving between them is a change of URL.
    """
    return canonicalize(url, tidy_query=False)


def redact_url(url: str) -> str:
    """``url`` with the password of its userinfo masked (``user:***@``; a lone user, often a token: ``***@``).

    For logs, error messages and ``repr``; anything that is not a URL with userinfo comes back unchanged.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at:
        return url
    user, colon, _password = userinfo.partition(":")
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}" if colon else f"***@{host}"))


def article_id(canonical_url: str) -> str:
    """Return the stable article id of a canonical URL: 16 hex chars of its SHA-256.

    Args:
        canonical_url: a URL already passed through :func:`canonicalize`.

    Returns:
        The first 16 hexadecimal characters of the SHA-256 digest of the UTF-8 URL.
    """
    return hashlib.sha256(canonical_url.encode("utf-8")).hexdigest()[:16]


def feed_entry_key(feed_id: str, guid: str | None, title: str, text: str) -> str:
    """The key of a feed entry without a link, in place of its canonical URL: never fetched, never a link.

    Stable across polls: made from the feed id and the entry's guid, or, for an entry
    without one, its title and text (an edit without a guid is then a new entry).

    Returns:
        ``urn:newsagg:<feed id>:<32 hex chars of a SHA-256>``.
    """
    basis = f"guid\0{guid}" if guid else f"text\0{title}\0{text}"
    return f"{FEED_ENTRY_URN}{feed_id}:{hashlib.sha256(basis.encode('utf-8')).hexdigest()[:32]}"


def link_of(key: str) -> str | None:
    """The link an article's key stands for: the key itself, or None for a feed entry that had no link."""
    return None if key.startswith(FEED_ENTRY_URN) else key


def _canonicalize_absolute(url: str, *, tidy_query: bool = True) -> str | None:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        return None
    host_port = _authority_host_port(parts.netloc)
    if host_port is None:
        return None
    host_raw, port = host_port
    host = _canonical_host(host_raw)
    if host is None:
        return None
    netloc = host if port is None or port == DEFAULT_PORTS[scheme] else f"{host}:{port}"
    # Escapes first: a decoded "%2E" is a dot segment too, and idempotence needs both done.
    path = _remove_dot_segments(_normalize_percent(parts.path, _PATH_SAFE)) or "/"
    if not path.startswith("/"):
        path = "/" + path
    query = _canonical_query(parts.query) if tidy_query else _normalize_percent(parts.query, _QUERY_SAFE)
    return urlunsplit((scheme, netloc, path, query, ""))


def _authority_host_port(netloc: str) -> tuple[str, int | None] | None:
    """Split ``user:pass@host:port`` into host and port, dropping the userinfo."""
    hostport = netloc.rpartition("@")[2]
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            return None
        host, rest = hostport[: end + 1], hostport[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:]
    else:
        host, _, port_text = hostport.partition(":")
    port: int | None = None
    if port_text:
        if not port_text.isascii() or not port_text.isdigit():
            return None
        port = int(port_text)
        if not 0 < port < 65536:
            return None
    if not host:
        return None
    return host, port


def _canonical_host(host: str) -> str | None:
    if host.startswith("["):
        try:
            address = ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return None
        return f"[{address.compressed}]"
    host = host.lower()
    if host.endswith("."):
        host = host[:-1]
    if not host.isascii():
        # UTS #46 maps case, compatibility forms and ideographic full stops before Punycode.
        host = idna.uts46_remap(host, std3_rules=False)
    if host.endswith("."):
        host = host[:-1]
    if not host or len(host) > 253:
        return None
    labels = []
    for label in host.split("."):
        if not label:
            return None
        if not label.isascii():
            label = idna.encode(label).decode("ascii")
        if not _ASCII_HOST_LABEL.match(label) or len(label) > 63:
            return None
        labels.append(label)
    return ".".join(labels)


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4, so ``/a/./b/../c`` and ``/a/c`` agree."""
    if "." not in path:
        return path
    output: list[str] = []
    segments = path.split("/")
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == ".":
            if last:
                output.append("")
        elif segment == "..":
            if len(output) > 1:
                output.pop()
            if last:
                output.append("")
        else:
            output.append(segment)
    result = "/".join(output)
    if path.startswith("/") and not result.startswith("/"):
        result = "/" + result
    return result


def _normalize_percent(text: str, safe: frozenset[str]) -> str:
    """Decode escapes of unreserved characters, upper-case the others, escape the unsafe."""
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        char = text[i]
        if char == "%" and i + 2 < n and text[i + 1] in _HEX and text[i + 2] in _HEX:
            decoded = chr(int(text[i + 1 : i + 3], 16))
            out.append(decoded if decoded in _UNRESERVED else "%" + text[i + 1 : i + 3].upper())
            i += 3
            continue
        if char in safe:
            out.append(char)
        else:
            out.extend(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))
        i += 1
    return "".join(out)


def _is_tracking(key: str) -> bool:
    name = unquote_plus(key).strip().lower()
    return name in TRACKING_PARAMS or name.startswith(_TRACKING_PREFIXES)


def _canonical_query(query: str) -> str:
    pairs: list[tuple[str, str | None]] = []
    for item in query.split("&"):
        if not item:
            continue
        key, eq, value = item.partition("=")
        if _is_tracking(key):
            continue
        key = _normalize_percent(key, _QUERY_PART_SAFE)
        pairs.append((key, _normalize_percent(value, _QUERY_PART_SAFE) if eq else None))
    # Stable sort on the name only: repeated names keep their order (see module docstring).
    pairs.sort(key=lambda pair: pair[0])
    return "&".join(key if value is None else f"{key}={value}" for key, value in pairs)


def unused_id(wanted: str, taken: set[str]) -> str:
    """A feed id: ``wanted``, else ``wanted-2``, ``wanted-3``... whichever is not in ``taken``; reserves it there."""
    candidate, counter = wanted, 1
    while candidate in taken:
        counter += 1
        candidate = f"{wanted}-{counter}"
    taken.add(candidate)
    return candidate
