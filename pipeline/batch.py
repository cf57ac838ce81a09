"""Store-less batch jobs: extract files or URLs (``newsagg extract``; ``newsagg dedup`` is pipeline.dedup)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pipeline.errors import FetchError
from pipeline.extraction import extract_page
from pipeline.fetching import Fetcher
from pipeline.settings import Settings

log = logging.getLogger(__name__)

HTML_TYPES = ("text/html", "application/xhtml+xml")


def extract_inputs(inputs: Sequence[str], settings: Settings, *, url: str | None = None) -> Iterator[dict[str, Any]]:
    """One record per input (a file path or an http(s) URL): the extracted fields, or an ``error``.

    Args:
        inputs: file paths and URLs, in the order the records are yielded.
        settings: fetch settings apply to URLs (address guard, size caps, timeouts).
        url: the page URL to assume for file inputs.
    """
    fetcher: Fetcher | None = None
    try:
        for source in inputs:
            page_url = url
            try:
                if source.startswith(("http://", "https://")):
                    fetcher = fetcher or Fetcher(settings.fetch)
                    fetched = fetcher.fetch(source, content_types=HTML_TYPES)
                    body, page_url = fetched.body, fetched.url
                else:
                    body = Path(source).read_bytes()
            except FetchError as exc:
                yield {"source": source, "error": exc.reason}
                continue
            except OSError as exc:
                yield {"source": source, "error": f"cannot read file: {exc.strerror}"}
                continue
            page = extract_page(body, page_url or "")
            if page is None:
                yield {"source": source, "error": "no article text found"}
                continue
            yield {
                "source": source,
                "url": page_url,
                "title": page.title,
                "text": page.text,
                "author": page.author,
                "date": page.date.isoformat() if page.date else None,
                "language": page.language,
            }
    finally:
        if fetcher is not None:
            fetcher.close()
