"""``newsagg dedup``: cluster the near-duplicates of a JSONL stream, without a store.

Only what clustering needs is imported (no extraction, no fetching): the
command's start-up is part of every run's time.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from pipeline.clustering import batch_engine
from pipeline.dates import parse_moment
from pipeline.errors import ConfigError
from pipeline.models import Article, TextSource
from pipeline.pool import WorkerPool
from pipeline.progress import ProgressBar
from pipeline.settings import ClusteringSettings


def read_dedup_input(path: Path, seen: dict[str, None]) -> Iterator[Article]:
    """Parse `newsagg dedup` input lines into articles as they are read; a bad line is a ConfigError naming it.

    Each id is recorded in ``seen``, in input order; an id already there is refused.
    """
    handle: TextIO
    try:
        handle = sys.stdin if str(path) == "-" else path.open(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    now = datetime.now(UTC)
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
            seen[doc_id] = None
            yield Article(
                id=doc_id,
                url=str(record.get("url") or ""),
                outlet=str(record.get("source") or ""),
                title=str(record["title"]),
                text=str(record["text"]),
                published=_published(record.get("published"), where),
                fetched_at=now,
                text_source=TextSource.INPUT,
            )


def dedup_jsonl(
    path: Path, out: TextIO, settings: ClusteringSettings, *, pool: WorkerPool | None = None, progress: bool = False
) -> tuple[int, int]:
    """Cluster the documents of a JSONL file; writes ``{"id","cluster_id"}`` lines in input order.

    ``pool``'s workers sign the documents (None: this process does).

    The input is streamed: what stays in memory is the clustering index and
    the ids, not the texts. Output is written once the last line is read,
    because a later document can merge earlier clusters.

    Returns:
        (documents, clusters).
    """
    order: dict[str, None] = {}
    engine = batch_engine(settings, pool)
    articles = read_dedup_input(path, order)
    engine.add_stream(ProgressBar(articles, desc="clustering", unit=" docs", disable=not progress, leave=False))
    clusters: set[str] = set()
    for doc_id in order:
        cluster_id = engine.cluster_of(doc_id)
        assert cluster_id is not None  # every document read was clustered
        clusters.add(cluster_id)
        # What json.dumps({"id": .., "cluster_id": ..}) writes, without a dict per line.
        out.write(f'{{"id": {json.dumps(doc_id)}, "cluster_id": {json.dumps(cluster_id)}}}\n')
    return len(order), len(clusters)


def _published(value: Any, where: str) -> datetime | None:
    if value in (None, ""):
        return None
    parsed = parse_moment(str(value))
    if parsed is None:
        raise ConfigError(f"{where}: 'published' is not an ISO datetime: {value!r}")
    return parsed
