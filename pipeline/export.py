"""`newsagg export`: stories or articles from the store as JSON lines or CSV, streamed a chunk at a time."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import asdict, fields
from datetime import datetime
from enum import Enum
from typing import Any, Literal, TextIO

from pipeline.models import Article, Story
from pipeline.storage import Store

Kind = Literal["stories", "articles"]
Format = Literal["jsonl", "csv"]

#: The fields of each exported record, in order (the CSV header).
FIELDS: dict[Kind, list[str]] = {
    "articles": [f.name for f in fields(Article)] + ["arrived_at", "cluster_id"],
    "stories": [f.name for f in fields(Story)] + ["article_count", "outlet_count"],
}


def export_records(store: Store, kind: Kind, since: datetime | None = None, chunk: int = 500) -> Iterator[dict[str, Any]]:
    """The records of ``kind``: articles arrived since ``since`` (arrival order), or stories last seen since it.

    Records are plain JSON values (datetimes as ISO 8601 strings). An article has its text, metadata,
    where its text came from and why, the agency it credits, its arrival time and cluster id; a story
    its sources.
    """
    if kind == "articles":
        for article, arrived_at, cluster_id in store.iter_articles(since, chunk):
            yield _plain({**asdict(article), "arrived_at": arrived_at, "cluster_id": cluster_id})
    else:
        for story in store.iter_stories(since, chunk):
            yield _plain({**asdict(story), "article_count": story.article_count, "outlet_count": story.outlet_count})


def write_records(records: Iterator[dict[str, Any]], kind: Kind, fmt: Format, out: TextIO) -> int:
    """Write ``records`` as one JSON object a line, or as CSV with a header (lists and objects as JSON in a cell); returns how many."""
    count = 0
    if fmt == "jsonl":
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
        return count
    writer = csv.DictWriter(out, fieldnames=FIELDS[kind])
    writer.writeheader()
    for record in records:
        writer.writerow({k: json.dumps(v, ensure_ascii=False) if isinstance(v, list | dict) else v
                         for k, v in record.items()})
        count += 1
    return count


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return value
