"""The extractors compared: ours, plain trafilatura, jusText and readability (maintained single extractors)."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

Extractor = Callable[[bytes, str], "str | None"]


def ours(html: bytes, url: str) -> str | None:
    """The text our pipeline stores for a page (``extract_page``, as ``build_article`` takes it)."""
    from pipeline.extraction import extract_page

    found = extract_page(html, url)
    return found.text if found else None


def trafilatura(html: bytes, url: str) -> str | None:
    """Bare ``trafilatura.extract`` with its default settings."""
    from trafilatura import extract

    return extract(html, url=url or None)  # type: ignore[no-any-return]


@cache
def _stoplist() -> frozenset[str]:
    from trafilatura.external import jt_stoplist_init

    return frozenset(jt_stoplist_init())


def justext(html: bytes, url: str) -> str | None:
    """jusText (the paragraph classifier trafilatura falls back on), with every language's
    stop words as trafilatura's own evaluation runs it, since the page's language is unknown."""
    import justext as jt

    paragraphs = jt.justext(html, _stoplist())
    return "\n".join(p.text for p in paragraphs if not p.is_boilerplate) or None


def readability(html: bytes, url: str) -> str | None:
    """readability-lxml (the port of Arc90's Readability) on the page as fetched, its article HTML
    a block a line: what ``extract_page`` asks where trafilatura's text is far short of the page's."""
    from pipeline.candidates import readability_text

    return readability_text(html) or None


EXTRACTORS: dict[str, Extractor] = {"ours": ours, "trafilatura": trafilatura, "justext": justext, "readability": readability}
