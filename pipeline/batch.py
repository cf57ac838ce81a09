"""Store-less batch jobs: extract files or URLs (``newsagg extract``; ``newsagg dedup`` is pipeline.dedup)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pipeline.errors import FetchError
from pipeline.extraction import extract_pages
from pipeline.fetching import Fetcher
from pipeline.pool import WorkerPool
from pipeline.settings import Settings

log = logging.getLogger(__name__)

HTML_TYPES = ("text/html", "application/xhtml+xml")


#: Inputs read (or fetched) before their pages go to the workers together.
EXTRACT_BATCH = 64


def extract_inputs(
    inputs: Sequence[str], settings: Settings, *, url: str | None = None, pool: WorkerPool | None = None
) -> Iterator[dict[str, Any]]:
    """One record per input (a file path or an http(s) URL): the extracted fields, or an ``error``.

    Args:
        inputs: file paths and URLs, in the order the records are yielded.
        settings: fetch settings apply to URLs (address guard, size caps, timeouts).
        url: the page URL to assume for file inputs.
        pool: worker processes extracting ``EXTRACT_BATCH`` inputs at a time; None extracts here.
    """
    fetcher: Fetcher | None = None
    try:
        for start in range(0, len(inputs), EXTRACT_BATCH):
            read: list[tuple[str, str | None, bytes | None, str | None]] = []  # source, url, body, error
            for source in inputs[start : start + EXTRACT_BATCH]:
                try:
                    if source.startswith(("http://", "https://")):
                        fetcher = fetcher or Fetcher(settings.fetch)
                        fetched = fetcher.fetch(source, content_types=HTML_TYPES)
                        read.append((source, fetched.url, fetched.body, None))
                    else:
                        read.append((source, url, Path(source).read_bytes(), None))
                except FetchError as exc:
                    read.append((source, url, None, exc.reason))
                except OSError as exc:
                    read.append((source, url, None, f"cannot read file: {exc.strerror}"))
            bodies = [(page_url or "", body) for _, page_url, body, _ in read if body is not None]
            pages = iter(extract_pages(bodies, pool))
            for source, page_url, body, error in read:
                page = next(pages) if body is not None else None
                if error is not None or page is None:
                    yield {"source": source, "error": error or "no article text found"}
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
