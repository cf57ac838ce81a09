"""The local Elasticsearch node answers the official client for what the ES backend needs.

The node (scripts/es-node, the integration-test distribution) has no `GET /`,
so the client's info()/ping() are not usable; readiness is cluster health.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from elasticsearch import Elasticsearch, helpers
from services import ensure_elasticsearch

OUTLETS = ["ap", "afp", "reuters", "bbc"]
T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def es() -> Iterator[Elasticsearch]:
    client = Elasticsearch(ensure_elasticsearch(), request_timeout=60)
    yield client
    client.close()


@pytest.fixture
def prefix(es: Elasticsearch) -> Iterator[str]:
    """A unique name prefix; the template and indices under it are removed afterwards."""
    name = f"smoke-{uuid.uuid4().hex[:8]}"
    yield name
    indices = list(es.indices.get(index=f"{name}-*", expand_wildcards="all"))  # deletes need exact names
    if indices:
        es.indices.delete(index=",".join(indices))
    es.options(ignore_status=404).indices.delete_index_template(name=name)


def test_cluster_is_healthy(es: Elasticsearch) -> None:
    health = es.cluster.health(wait_for_status="yellow", timeout="30s")
    assert health["status"] in ("green", "yellow")
    assert health["number_of_nodes"] == 1


def test_template_alias_bulk_search_delete(es: Elasticsearch, prefix: str) -> None:
    es.indices.put_index_template(
        name=prefix,
        index_patterns=[f"{prefix}-*"],
        template={
            "settings": {
                "number_of_shards": 1,
                "number_of_replicas": 0,
                "analysis": {
                    "filter": {"english_stop": {"type": "stop", "stopwords": "_english_"}},
                    "analyzer": {
                        "news_text": {
                            "type": "custom",
                            "tokenizer": "standard",
                            "filter": ["lowercase", "english_stop"],
                        }
                    },
                },
            },
            "mappings": {
                "properties": {
                    "title": {"type": "text", "analyzer": "news_text"},
                    "text": {"type": "text", "analyzer": "standard"},
                    "outlet": {"type": "keyword"},
                    "published": {"type": "date"},
                }
            },
            "aliases": {f"{prefix}-read": {}},
        },
    )
    index = f"{prefix}-000001"
    es.indices.create(index=index)
    es.indices.put_alias(index=index, name=f"{prefix}-write")
    mapping = es.indices.get_mapping(index=f"{prefix}-read")[index]["mappings"]["properties"]
    assert mapping["title"]["analyzer"] == "news_text"
    tokens = es.indices.analyze(index=index, analyzer="news_text", text="The Strike at the Port")
    assert [t["token"] for t in tokens["tokens"]] == ["strike", "port"]

    docs = [
        {
            "_index": f"{prefix}-write",
            "_id": f"a{i}",
            "_source": {
                "title": f"Dockworkers strike at port {i}" if i % 2 == 0 else f"Council approves budget {i}",
                "text": "Agency report with inputs from agencies.",
                "outlet": OUTLETS[i % len(OUTLETS)],
                "published": (T0 + timedelta(days=i % 5)).isoformat(),
            },
        }
        for i in range(100)
    ]
    indexed, errors = helpers.bulk(es, docs, chunk_size=30, refresh="wait_for")
    assert (indexed, errors) == (100, [])
    assert es.count(index=f"{prefix}-read")["count"] == 100

    result = es.search(
        index=f"{prefix}-read",
        query={"match": {"title": "STRIKE"}},
        highlight={"fields": {"title": {}}},
        aggs={
            "outlets": {"terms": {"field": "outlet"}},
            "per_day": {"date_histogram": {"field": "published", "calendar_interval": "day"}},
        },
        size=5,
    )
    assert result["hits"]["total"]["value"] == 50
    assert "<em>strike</em>" in result["hits"]["hits"][0]["highlight"]["title"][0]
    buckets = {b["key"]: b["doc_count"] for b in result["aggregations"]["outlets"]["buckets"]}
    assert buckets == {"ap": 25, "reuters": 25}
    assert sum(b["doc_count"] for b in result["aggregations"]["per_day"]["buckets"]) == 50

    scan = helpers.scan(es, index=f"{prefix}-read", query={"query": {"match_all": {}}}, size=40)
    scanned = {hit["_id"] for hit in scan}
    assert len(scanned) == 100

    es.delete(index=f"{prefix}-write", id="a0", refresh=True)
    assert es.count(index=f"{prefix}-read")["count"] == 99
    assert not es.exists(index=index, id="a0")
