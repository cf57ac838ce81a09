"""Store-less batch jobs: extract files or URLs, cluster a JSONL file."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from pipeline.clustering import cluster_documents
from pipeline.errors import ConfigError, FetchError
from pipeline.extraction import PageBatch
from pipeline.fetching import Fetcher
from pipeline.models import Article, TextSource
from pipeline.pool import WorkerPool
from pipeline.progress import ProgressBar
from pipeline.settings import ClusteringSettings, Settings

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
            pages = iter(PageBatch(bodies, pool).result())
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


def read_dedup_input(path: Path) -> list[Article]:
    """Parse `newsagg dedup` input lines into articles; a bad line is a ConfigError naming it."""
    handle: TextIO
    try:
        handle = sys.stdin if str(path) == "-" else path.open(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    now = datetime.now(UTC)
    documents: list[Article] = []
    seen: set[str] = set()
    with handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{where}: not JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise ConfigError(f"{where}: expected an object")
            missing = [k for k in ("id", "title", "text") if not isinstance(record.get(k), str | int)]
            if missing:
                raise ConfigError(f"{where}: missing or non-string field(s): {', '.join(missing)}")
            doc_id = str(record["id"])
            if doc_id in seen:
                raise ConfigError(f"{where}: duplicate id {doc_id!r}")
            seen.add(doc_id)
            documents.append(
                Article(
                    id=doc_id,
                    url=str(record.get("url") or ""),
                    outlet=str(record.get("source") or ""),
                    title=str(record["title"]),
                    text=str(record["text"]),
                    published=_published(record.get("published"), where),
                    fetched_at=now,
                    text_source=TextSource.INPUT,
                )
            )
    return documents


def dedup_jsonl(
    path: Path, out: TextIO, settings: ClusteringSettings, *, pool: WorkerPool | None = None, progress: bool = False
) -> tuple[int, int]:
    """Cluster the documents of a JSONL file; writes ``{"id","cluster_id"}`` lines in input order.

    ``pool``'s workers sign the documents (None: this process does).

    Returns:
        (documents, clusters).
    """
    documents = read_dedup_input(path)
    memberships = {m.article_id: m.cluster_id for m in cluster_documents(documents, settings, pool)}
    for doc in ProgressBar(documents, desc="writing", disable=not progress, leave=False):
        out.write(json.dumps({"id": doc.id, "cluster_id": memberships[doc.id]}) + "\n")
    return len(documents), len(set(memberships.values()))


def _published(value: Any, where: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(f"{where}: 'published' is not an ISO datetime: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
