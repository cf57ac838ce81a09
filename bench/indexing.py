"""Indexing: documents per second through our bulk path against one raw ``_bulk`` stream.

The documents are generated articles with their clusters and the clusters' merged
stories (``build_story``), as the pipeline indexes them.

* ours: ``ElasticsearchIndex.write`` in batches of ``OUTBOX_BATCH`` changes, as
  ``Pipeline.index_outbox`` calls it (documents built from records, serialised and sent
  by the client's bulk helper);
* raw: the same action and source lines, serialised by the same serializer
  (``helpers.expand_action`` + the client's JSON serializer), sent with httpx as one
  streamed ``POST /_bulk?require_alias=true`` to the same node (split into consecutive
  streamed requests of at most ``RAW_MAX_BYTES`` only where the node's
  ``http.max_content_length``, 100 MB, requires it).

Neither side asks for a refresh (the same refresh policy: the index's own interval).
Each side writes into fresh indices made from our templates; the sides alternate for
``repeats`` rounds and the fastest round of each counts.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from bench.common import Result, Side, es_server_version, es_url, load_average, save
from pipeline.versions import versions
from bench.corpus import generate_articles
from pipeline.runner import OUTBOX_BATCH

SIZES = {"tiny": 60, "quick": 4000, "full": 20000}
RAW_MAX_BYTES = 90 * 1024 * 1024  # under Elasticsearch's default http.max_content_length (100 MB)


def changes(count: int) -> list[Any]:
    """Index changes for ``count`` generated articles and the stories of their clusters."""
    from pipeline.models import Article, IndexChange, IndexedArticle, Membership, TextSource
    from pipeline.stories import build_story

    fetched = datetime(2024, 9, 30, tzinfo=UTC)
    members: dict[str, list[Article]] = {}
    out: list[IndexChange] = []
    for g in generate_articles(count):
        article = Article(
            id=g.id,
            url=f"https://outlet-{g.outlet}.example/articles/{g.id}.html",
            outlet=f"Outlet {g.outlet}",
            title=g.title,
            text=g.text,
            published=g.published,
            fetched_at=fetched,
            text_source=TextSource.PAGE,
            feed_id=f"outlet-{g.outlet}",
            language="en",
        )
        cluster = members.setdefault(g.label, [])
        membership = Membership(article.id, f"c-{g.label}", cluster[0].id if cluster else None, 0.8 if cluster else None)
        cluster.append(article)
        out.append(IndexChange("article", article.id, IndexedArticle(article, membership), 1))
    for label, articles in members.items():
        out.append(IndexChange("story", f"c-{label}", build_story(f"c-{label}", articles), 1))
    return out


def _index(url: str) -> Any:
    from pipeline.search.elastic import ElasticsearchIndex
    from pipeline.settings import ElasticsearchSettings

    index = ElasticsearchIndex(ElasticsearchSettings(urls=[url], index_prefix=f"bench-{uuid.uuid4().hex[:8]}"))
    index.setup()
    return index


def ndjson(index: Any, batch: list[Any]) -> list[bytes]:
    """The bulk body lines our write() sends for ``batch``, serialised exactly as the client does."""
    from elasticsearch import helpers

    from pipeline.models import Story
    from pipeline.search.elastic.documents import article_document, story_document
    from pipeline.search.elastic.templates import FAMILY_OF_KIND

    serializer = index.client.transport.serializers.get_serializer("application/json")
    lines: list[bytes] = []
    for change in batch:
        source = story_document(change.document) if isinstance(change.document, Story) else article_document(change.document)
        action, data = helpers.expand_action(
            {"_op_type": "index", "_index": index.alias(FAMILY_OF_KIND[change.kind]), "_id": change.id, "_source": source,
             "_version": change.version, "_version_type": "external"}
        )
        lines.append(serializer.dumps(action))
        lines.append(serializer.dumps(data))
    return lines


def _ours(index: Any, docs: list[Any]) -> float:
    started = time.perf_counter()
    for start in range(0, len(docs), OUTBOX_BATCH):
        failures = index.write(docs[start : start + OUTBOX_BATCH])
        if failures:
            raise RuntimeError(f"ours: {len(failures)} documents refused, first: {failures[0]}")
    return time.perf_counter() - started


def _requests(lines: list[bytes]) -> list[list[bytes]]:
    """The lines cut into request bodies of at most RAW_MAX_BYTES, never between an action and its source."""
    bodies: list[list[bytes]] = [[]]
    size = 0
    for start in range(0, len(lines), 2):
        pair = lines[start : start + 2]
        pair_size = sum(len(line) + 1 for line in pair)
        if bodies[-1] and size + pair_size > RAW_MAX_BYTES:
            bodies.append([])
            size = 0
        bodies[-1].extend(pair)
        size += pair_size
    return bodies


def _raw(url: str, lines: list[bytes]) -> float:
    import httpx

    def stream(body: list[bytes]) -> Iterator[bytes]:
        for line in body:
            yield line + b"\n"

    responses = []
    started = time.perf_counter()
    with httpx.Client(timeout=600) as client:
        for body in _requests(lines):
            responses.append(
                client.post(
                    f"{url}/_bulk",
                    params={"require_alias": "true"},
                    content=stream(body),
                    headers={"Content-Type": "application/x-ndjson"},
                )
            )
    elapsed = time.perf_counter() - started
    for response in responses:
        response.raise_for_status()
        result = response.json()
        if result.get("errors"):
            first = next(i for i in result["items"] if next(iter(i.values())).get("error"))
            raise RuntimeError(f"raw: documents refused, first: {first}")
    return elapsed


def run(size: str = "quick", repeats: int = 2, url: str | None = None) -> Result:
    url = url or es_url()
    docs = changes(SIZES[size])
    load = load_average()
    timings: dict[str, list[float]] = {"ours": [], "raw": []}
    counts: dict[str, dict[str, int]] = {}
    body_bytes = raw_requests = 0
    for round_number in range(repeats):
        order = ("ours", "raw") if round_number % 2 == 0 else ("raw", "ours")
        for side in order:
            index = _index(url)
            try:
                if side == "ours":
                    timings["ours"].append(_ours(index, docs))
                else:
                    lines = ndjson(index, docs)
                    body_bytes = sum(len(line) + 1 for line in lines)
                    raw_requests = len(_requests(lines))
                    timings["raw"].append(_raw(url, lines))
                index.refresh()
                counts[side] = index.document_counts()
            finally:
                index.drop()
                index.close()
    ours_rate = len(docs) / min(timings["ours"])
    raw_rate = len(docs) / min(timings["raw"])
    ratio = ours_rate / raw_rate
    stories = sum(c.kind == "story" for c in docs)
    return Result(
        stage="indexing",
        measured=f"{len(docs)} documents ({len(docs) - stories} articles, {stories} stories) into Elasticsearch",
        ours=Side(f"ElasticsearchIndex.write, batches of {OUTBOX_BATCH}", ours_rate, "docs/s"),
        baseline=Side(
            f"same NDJSON, {'one streamed _bulk POST' if raw_requests == 1 else f'{raw_requests} streamed _bulk POSTs'}"
            " (httpx)",
            raw_rate,
            "docs/s",
        ),
        ratio=ratio,
        target=">= 0.7 of the raw rate",
        met=ratio >= 0.7 and counts.get("ours") == counts.get("raw"),
        versions={**versions("elasticsearch", "httpx"), "elasticsearch server": es_server_version(url)},
        details={
            "documents": len(docs),
            "bulk_body_bytes": body_bytes,
            "raw_requests": raw_requests,
            "seconds": timings,
            "indexed_counts": counts,
            "load_average_before": load,
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.indexing")
    parser.add_argument("--size", choices=sorted(SIZES), default="quick")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--es-url", default=None, help="default: NEWSAGG_ES_URL or the scripts/es-node node")
    args = parser.parse_args()
    result = run(args.size, args.repeats, args.es_url)
    print(result.line())
    save(f"indexing-{args.size}.json", result.as_dict())


if __name__ == "__main__":
    main()
