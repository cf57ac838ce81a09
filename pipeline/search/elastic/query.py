"""Searching the stories: the query, its filters, highlights and facets, and the hits read back."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pipeline.models import FACETS, SearchHit, SearchQuery, SearchResults
from pipeline.search.analysis import query_terms, stemmed_prefixes
from pipeline.search.base import HIGHLIGHT_TAGS, TITLE_WEIGHT, ordered_facet
from pipeline.search.elastic.connection import ElasticsearchBase
from pipeline.search.elastic.documents import iso

MAX_HITS = 10_000  # the default index.max_result_window; deeper pages are an error in Elasticsearch
FACET_SIZE = 500  # distinct outlets/agencies counted per search; far above any real result set

_STORY_FIELDS = [
    "id", "title", "summary", "outlets", "article_count", "first_seen", "last_seen", "language", "agency", "tags",
]


class StorySearch(ElasticsearchBase):
    """Full-text search over the stories alias, as the SQLite backend searches."""

    def search(self, query: SearchQuery) -> SearchResults:
        """Every word must match in the title or the body (title weighted 3x); filters, facets, highlights."""
        languages = [query.language] if query.language else self._languages()
        terms = query_terms(query.text, languages)
        if not terms:
            return SearchResults(total=0, hits=[])
        filters: list[dict[str, Any]] = []
        if query.since is not None:
            filters.append({"range": {"last_seen": {"gte": iso(query.since)}}})
        if query.until is not None:
            filters.append({"range": {"first_seen": {"lte": iso(query.until)}}})
        for name, value in (
            ("outlets", query.outlet), ("language", query.language), ("agency", query.agency), ("tags", query.tag)
        ):
            if value:
                filters.append({"term": {name: value}})
        # The terms were made in Python (see pipeline.search.analysis), so the query has no
        # syntax to get wrong. combined_fields scores title and body as one field with title
        # words counted three times (BM25F), which is what FTS5's bm25() does with column
        # weights; one clause per term, any of its forms: every term must appear in the title
        # or the body, as in the SQLite backend's "(a OR b) AND c".
        match = {
            "bool": {
                "must": [
                    {
                        "combined_fields": {
                            "query": " ".join(forms),
                            "fields": [f"title_stems^{TITLE_WEIGHT:g}", "body_stems"],
                            "operator": "or",
                        }
                    }
                    for forms in terms
                ]
            }
        }
        # The body is highlighted in its own words: the query's words as typed, and words that
        # start with a stem a stemmer shortened ("failur" for "failures").
        highlight_query = {
            "bool": {
                "should": [
                    {"match": {"body": {"query": query.text}}},
                    *({"prefix": {"body": {"value": stem}}} for stem in stemmed_prefixes(query.text, languages)),
                ]
            }
        }
        order = "_score" if query.sort == "relevance" else "last_seen"
        with self._errors("search"):
            response = self.client.search(
                index=self.alias("stories"),
                query={"bool": {"must": [match], "filter": filters}},
                sort=[{order: "desc"}, {"id": "asc"}],
                from_=min(query.offset, MAX_HITS),
                size=max(0, min(query.limit, MAX_HITS - query.offset)),
                track_total_hits=True,
                track_scores=True,
                source_includes=_STORY_FIELDS,
                highlight={
                    "fields": {
                        "body": {
                            "pre_tags": [HIGHLIGHT_TAGS[0]],
                            "post_tags": [HIGHLIGHT_TAGS[1]],
                            "fragment_size": 200,
                            "number_of_fragments": 1,
                            "highlight_query": highlight_query,
                        }
                    }
                },
                aggs={
                    "outlet": {"terms": {"field": "outlets", "size": FACET_SIZE}},
                    "agency": {"terms": {"field": "agency", "size": FACET_SIZE}},
                    "language": {"terms": {"field": "language", "size": FACET_SIZE}},
                    "day": {
                        "date_histogram": {
                            "field": "first_seen",
                            "calendar_interval": "day",
                            "format": "yyyy-MM-dd",
                            "min_doc_count": 1,
                        }
                    },
                },
            ).body
        hits = [_hit(h) for h in response["hits"]["hits"]]
        aggs = response.get("aggregations", {})
        facets = {
            name: ordered_facet({
                str(b.get("key_as_string", b["key"])): int(b["doc_count"]) for b in aggs[name]["buckets"]
            })
            for name in FACETS
        }
        return SearchResults(total=int(response["hits"]["total"]["value"]), hits=hits, facets=facets)

    def _languages(self) -> list[str | None]:
        """The languages of the indexed stories (None for stories without one)."""
        with self._errors("search"):
            response = self.client.search(
                index=self.alias("stories"),
                size=0,
                aggs={
                    "languages": {"terms": {"field": "language", "size": FACET_SIZE}},
                    "unknown": {"missing": {"field": "language"}},
                },
            ).body
        aggs = response.get("aggregations", {})
        found: list[str | None] = [str(b["key"]) for b in aggs["languages"]["buckets"]]
        return [*found, None] if aggs["unknown"]["doc_count"] else found


def _hit(hit: dict[str, Any]) -> SearchHit:
    source = hit["_source"]
    fragments = (hit.get("highlight") or {}).get("body") or []
    return SearchHit(
        story_id=str(hit["_id"]),
        title=source["title"],
        snippet=fragments[0] if fragments else source.get("summary") or "",
        score=float(hit.get("_score") or 0.0),
        outlets=tuple(source.get("outlets") or ()),
        article_count=int(source["article_count"]),
        first_seen=datetime.fromisoformat(source["first_seen"]),
        last_seen=datetime.fromisoformat(source["last_seen"]),
        language=source.get("language"),
        agency=source.get("agency"),
        tags=tuple(source.get("tags") or ()),
    )
