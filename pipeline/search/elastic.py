"""The production search backend: Elasticsearch 9 through the official client.

What lives in the cluster, for ``index_prefix`` P (``newsagg`` by default)::

    index template P-stories    patterns P-stories-v*    from config/elasticsearch/stories.json
    alias P-stories   ->  index P-stories-v<N>           one document per cluster (_id = cluster id)
    index template P-articles   patterns P-articles-v*   from config/elasticsearch/articles.json
    alias P-articles  ->  index P-articles-v<N>          one document per article (_id = article id)

Everything reads and writes through the aliases; only `reindex` names a concrete index.
A mapping change is rolled out by `reindex`: a new generation N+1 is created from the
current template, the documents are copied with scan + bulk (the server-side _reindex is
not part of every distribution), and the alias moves in one atomic ``update_aliases``
call, so searches never see an empty or half-filled index. Each index records the
template's version and checksum in its mapping ``_meta``; `check` compares them.

Search matches what the SQLite backend matches: both index the terms `pipeline.search.analysis`
makes (folded words stemmed in the story's language, pairs of characters for Chinese,
Japanese, Korean and Thai: a core node has neither stemmers nor those filters, so the
terms are made here) and both rank with BM25 over title and body, title words counting
three times.

Transient trouble (connection errors, timeouts, 429 and 5xx answers) becomes
``SearchUnavailable`` and the runner keeps its outbox; documents the cluster refuses one
by one come back as ``IndexFailure``. No message carries a credential: URLs are shown
without their userinfo and known secrets are masked.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from elasticsearch import (
    ApiError,
    ConnectionError,
    ConnectionTimeout,
    Elasticsearch,
    NotFoundError,
    SSLError,
    TransportError,
    helpers,
)
from elasticsearch.serializer import OrjsonSerializer

from pipeline.errors import ConfigError, NewsaggError, SearchBackendError, SearchUnavailable
from pipeline.models import (
    FACETS,
    IndexChange,
    IndexedArticle,
    IndexFailure,
    SearchHit,
    SearchQuery,
    SearchResults,
    Story,
)
from pipeline.search.analysis import analyze, query_terms, stemmed_prefixes
from pipeline.settings import ElasticsearchSettings, bundled_config_dir
from pipeline.urls import link_of, redact_url

log = logging.getLogger(__name__)

Family = Literal["stories", "articles"]
FAMILIES: tuple[Family, ...] = ("stories", "articles")
FAMILY_OF_KIND: dict[str, Family] = {"story": "stories", "article": "articles"}

TEMPLATES_DIR = bundled_config_dir() / "elasticsearch"

# Title matches count three times as much as body matches, as in the SQLite backend.
TITLE_WEIGHT = 3.0
HIGHLIGHT_TAGS = ("[[", "]]")
MAX_HITS = 10_000  # the default index.max_result_window; deeper pages are an error in Elasticsearch
FACET_SIZE = 500  # distinct outlets/agencies counted per search; far above any real result set
BULK_CHUNK_DOCS = 500
BULK_PIECE_DOCS = 250  # write() sends its changes in pieces of this many documents,
BULK_IN_FLIGHT = 3  # this many at a time
BULK_CHUNK_BYTES = 10 * 1024 * 1024  # well under the default http.max_content_length of 100 MB
BULK_INITIAL_BACKOFF = 1.0  # seconds before the first retry of documents refused with 429
BULK_MAX_BACKOFF = 30.0
RETRY_BACKOFF_BASE = 0.5  # the transport's jittered backoff between retries of a failed request
RETRY_BACKOFF_CAP = 10.0
SCAN_PAGE = 500

_PREFIX = re.compile(r"^[a-z0-9][a-z0-9._-]{0,200}$")  # a valid start of an index name
_CONNECTION_REPR = re.compile(r"^\w*Connection(?:Pool)?\([^)]*\):\s*")  # urllib3's "HTTPConnection(host=..):"
_USERINFO = re.compile(r"(?i)\b(https?://)[^/\s@]*@")
_STORY_FIELDS = [
    "id", "title", "summary", "outlets", "article_count", "first_seen", "last_seen", "language", "agency", "tags",
]


@dataclass(frozen=True, slots=True)
class Template:
    """One index template as read from config/elasticsearch/<family>.json."""

    family: Family
    version: int
    priority: int
    body: dict[str, Any]  # settings and mappings, as the index template's "template"
    checksum: str  # of what is installed, so an edit without a version bump is noticed too

    @property
    def meta(self) -> dict[str, Any]:
        return {"family": self.family, "version": self.version, "checksum": self.checksum}


@dataclass(frozen=True, slots=True)
class ReindexReport:
    """What `reindex` did for one family."""

    family: Family
    alias: str
    old_index: str
    new_index: str
    copied: int


@dataclass(slots=True)
class AliasCheck:
    """The state of one family in the cluster, compared with the template files."""

    family: Family
    alias: str
    indices: list[str]
    index_version: int | None
    template_version: int
    installed_template_version: int | None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def mapping(self) -> str:
        """The index's mapping version in words (an index not made by ``setup`` or ``reindex`` has none)."""
        return "no newsagg mapping version" if self.index_version is None else f"mapping version {self.index_version}"


def load_templates(directory: Path = TEMPLATES_DIR) -> dict[Family, Template]:
    """Read and validate the index template files.

    Raises:
        ConfigError: a file is missing, not JSON, or lacks ``version``/``template.mappings``.
    """
    templates: dict[Family, Template] = {}
    for family in FAMILIES:
        path = directory / f"{family}.json"
        try:
            raw = path.read_bytes()
            data = json.loads(raw)
        except OSError as exc:
            raise ConfigError(f"cannot read the Elasticsearch template {path}: {exc.strerror}") from None
        except ValueError as exc:
            raise ConfigError(f"{path} is not valid JSON: {exc}") from None
        if not (
            isinstance(data, dict)
            and isinstance(data.get("version"), int)
            and isinstance(data.get("template"), dict)
            and isinstance(data["template"].get("mappings"), dict)
        ):
            raise ConfigError(f"{path} needs an integer 'version' and a 'template' with 'mappings'")
        # What reaches the cluster, not the file's comments: editing a comment needs no reindex.
        effective = {key: data.get(key) for key in ("version", "priority", "template")}
        canonical = json.dumps(effective, sort_keys=True, separators=(",", ":")).encode()
        templates[family] = Template(
            family=family,
            version=data["version"],
            priority=int(data.get("priority", 500)),
            body=data["template"],
            checksum=hashlib.sha256(canonical).hexdigest()[:16],
        )
    return templates


def story_document(story: Story) -> dict[str, Any]:
    """A story as the stories index holds it."""
    return {
        "id": story.id,
        "title": story.title,
        "body": story.text,
        "title_stems": " ".join(analyze(story.title, story.language)),
        "body_stems": " ".join(analyze(story.text, story.language)),
        "summary": story.summary,
        "sources": [
            {
                "article_id": s.article_id,
                "outlet": s.outlet,
                "url": s.url,
                "title": s.title,
                "published": _iso(s.published),
            }
            for s in story.sources
        ],
        "outlets": story.outlets,
        "article_count": story.article_count,
        "outlet_count": story.outlet_count,
        "first_seen": _iso(story.first_seen),
        "last_seen": _iso(story.last_seen),
        "language": story.language,
        "agency": story.agency,
        "tags": list(story.tags),
    }


def article_document(doc: IndexedArticle) -> dict[str, Any]:
    """An article, with its cluster and match scores, as the articles index holds it."""
    article, member = doc.article, doc.membership
    return {
        "id": article.id,
        "cluster_id": member.cluster_id,
        "outlet": article.outlet,
        "url": link_of(article.url),  # None for an entry without a link: Kibana shows no bogus link
        "feed_id": article.feed_id,
        "tags": list(article.tags),
        "title": article.title,
        "text": article.text,
        "author": article.author,
        "language": article.language,
        "text_source": article.text_source.value,
        "published": _iso(article.published),
        "fetched_at": _iso(article.fetched_at),
        "matched_article_id": member.matched_article_id,
        "jaccard": member.jaccard,
        "containment": member.containment,
    }


class ElasticsearchIndex:
    """Stories and articles in Elasticsearch, behind versioned indices and aliases.

    Args:
        settings: connection settings, the name prefix and where the templates live.

    Raises:
        ConfigError: an invalid prefix, URL, CA file, auth combination or template file.
    """

    def __init__(self, settings: ElasticsearchSettings) -> None:
        if not _PREFIX.match(settings.index_prefix):
            raise ConfigError(
                f"es.index_prefix {settings.index_prefix!r} is not usable in index names: "
                "use lowercase letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
        self.settings = settings
        self.prefix = settings.index_prefix
        self.templates = load_templates(settings.templates_dir or TEMPLATES_DIR)
        self.where = ", ".join(redact_url(u) for u in settings.urls) or "<no URL>"
        self._secrets = _secrets_of(settings)
        self.client = self._connect()

    # -- connection ----------------------------------------------------------------------

    def _connect(self) -> Elasticsearch:
        es = self.settings
        if not es.urls:
            raise ConfigError("es.urls is empty: give at least one node URL, e.g. https://es1:9200")
        auth: dict[str, Any] = {}
        if es.api_key is not None:
            if es.username:
                log.warning("both es.api_key and es.username are set; using the API key")
            auth["api_key"] = es.api_key.get_secret_value()
        elif es.username:
            auth["basic_auth"] = (es.username, es.password.get_secret_value() if es.password else "")
        elif es.password is not None:
            raise ConfigError("es.password is set without es.username")
        if es.ca_certs is not None:
            if not es.ca_certs.is_file():
                raise ConfigError(f"es.ca_certs: no CA bundle at {es.ca_certs}")
            auth["ca_certs"] = str(es.ca_certs)
        try:
            return Elasticsearch(
                hosts=list(es.urls),
                verify_certs=es.verify_certs,
                request_timeout=es.request_timeout,
                max_retries=es.max_retries,
                retry_on_timeout=True,
                retry_backoff_base=RETRY_BACKOFF_BASE,
                retry_backoff_cap=RETRY_BACKOFF_CAP,
                # Serialising bulk bodies and parsing their answers with the standard library
                # cost this process a third of its CPU time while indexing.
                serializer=OrjsonSerializer(),
                **auth,
            )
        except (ValueError, TypeError) as exc:
            # The client's own message can quote the URL with its password.
            raise ConfigError(f"invalid Elasticsearch settings for {self.where}: {self._scrub(str(exc))}") from None

    def close(self) -> None:
        self.client.close()

    def alias(self, family: Family) -> str:
        return f"{self.prefix}-{family}"

    def ready(self) -> str:
        """The cluster's health status; readiness is cluster health (a node may not serve `GET /`).

        Raises:
            SearchUnavailable: the cluster cannot be reached or its status is red.
        """
        with self._errors("a health check"):
            try:
                status = str(self.client.cluster.health().body.get("status"))
            except ApiError as exc:
                if exc.meta.status != 403:
                    raise
                # Credentials without the `monitor` privilege still prove the cluster answers.
                log.debug("no privilege for cluster health at %s; assuming ready", self.where)
                return "unknown"
        if status == "red":
            raise SearchUnavailable(f"Elasticsearch at {self.where} is not ready: cluster status red")
        return status

    # -- setup ---------------------------------------------------------------------------

    def setup(self) -> None:
        """Make sure both aliases resolve; install templates and first indices only when missing.

        Runs before every pipeline pass, so it only reads when everything is in place:
        updating templates is `newsagg es setup`'s job (and needs more privileges).
        """
        self.ready()
        with self._errors("setup"):
            if all(self._alias_indices(self.alias(f)) for f in FAMILIES):
                return
        self._install()

    def install(self) -> list[str]:
        """Install or update the templates and create the first index behind each missing alias.

        Idempotent; returns one line per thing checked or done, for `newsagg es setup`.
        """
        self.ready()
        return self._install()

    def exists(self) -> bool:
        """Both aliases resolve; nothing is made (a reader's check)."""
        with self._errors("a check of the aliases"):
            return all(self._alias_indices(self.alias(f)) for f in FAMILIES)

    def _install(self) -> list[str]:
        done: list[str] = []
        with self._errors("setup"):
            done += self._install_templates()
            for family in FAMILIES:
                done.append(self._ensure_alias(family))
        return done

    def _install_templates(self) -> list[str]:
        done = []
        for family, template in self.templates.items():
            name = self.alias(family)
            installed = self._installed_template(name)
            if installed is not None and installed.get("_meta", {}).get("checksum") == template.checksum:
                done.append(f"template {name} up to date (version {template.version})")
                continue
            body = dict(template.body)
            body["mappings"] = {**template.body["mappings"], "_meta": template.meta}
            self.client.indices.put_index_template(
                name=name,
                index_patterns=[f"{name}-v*"],
                template=body,
                priority=template.priority,
                version=template.version,
                meta={**template.meta, "managed_by": "newsagg"},
            )
            if installed is None:
                what = f"installed (version {template.version})"
            else:
                what = f"updated (version {installed.get('version')} -> {template.version})"
            done.append(f"template {name} {what}")
            log.info("index template %s %s at %s", name, what, self.where)
        return done

    def _ensure_alias(self, family: Family) -> str:
        alias = self.alias(family)
        current = self._alias_indices(alias)
        if current:
            return f"alias {alias} -> {', '.join(current)}"
        generations = self._generations(alias)
        if generations:
            # An interrupted setup or reindex left indices but no alias: adopt the newest.
            index = f"{alias}-v{max(generations)}"
            self.client.indices.update_aliases(actions=[{"add": {"index": index, "alias": alias}}])
            log.info("alias %s attached to existing index %s", alias, index)
            return f"alias {alias} attached to existing index {index}"
        index = f"{alias}-v1"
        try:
            self.client.indices.create(index=index, aliases={alias: {}})
        except ApiError as exc:
            if _error_type(exc) != "resource_already_exists_exception":
                raise
            # Another worker ran setup at the same moment; the alias may still be ours to add.
            self.client.indices.update_aliases(actions=[{"add": {"index": index, "alias": alias}}])
        log.info("created index %s behind alias %s", index, alias)
        return f"created index {index} behind alias {alias}"

    def _installed_template(self, name: str) -> dict[str, Any] | None:
        try:
            found = self.client.indices.get_index_template(name=name).body
        except NotFoundError:
            return None
        templates = found.get("index_templates") or []
        return dict(templates[0]["index_template"]) if templates else None

    def _alias_indices(self, alias: str) -> list[str]:
        try:
            return sorted(self.client.indices.get_alias(name=alias).body)
        except NotFoundError as exc:
            if exc.meta.headers.get("x-elastic-product") != "Elasticsearch":
                # Another server at that address (a wrong port, a proxy's page): no word on the alias.
                raise SearchBackendError(
                    f"{self.where} is not Elasticsearch (it answered 404 without saying it is): check es.urls"
                ) from None
            return []

    def _generations(self, alias: str) -> list[int]:
        found = self.client.indices.get(index=f"{alias}-v*", expand_wildcards="open,closed").body
        pattern = re.compile(rf"^{re.escape(alias)}-v(\d+)$")
        return sorted(int(m.group(1)) for name in found if (m := pattern.match(name)))

    # -- writing -------------------------------------------------------------------------

    def write(self, changes: Sequence[IndexChange]) -> list[IndexFailure]:
        """Upsert and delete through the aliases with bulk requests; return the refused documents.

        Does not refresh: ids, not searches, decide what is replaced or deleted, so a write
        is correct whether or not the previous one is searchable yet. Every document goes with
        its change's version as an external version: Elasticsearch applies it only over a lower
        one, and a refusal for that reason (409) means a newer change is there already, so the
        document counts as written. A deleted document's version is remembered for the index's
        ``index.gc_deletes`` (60 s by default): a write older than the delete that arrives later
        than that would bring the document back (see docs/elasticsearch.md).

        Raises:
            SearchUnavailable: the cluster cannot be reached, or answered a whole bulk request
                with 429/5xx after the retries; the caller keeps the whole batch.
        """
        failures: list[IndexFailure] = []
        # The newest change of a document wins (and pieces sent side by side cannot overtake
        # each other on the same document when each document is in one piece).
        newest: dict[tuple[str, str], IndexChange] = {}
        for change in changes:
            seen = newest.get((change.kind, change.id))
            if seen is None or change.version >= seen.version:
                newest[(change.kind, change.id)] = change
        latest = list(newest.values())
        # A single node indexes a bulk request on one write thread, and this process waits while
        # it does: with a few pieces in flight, the node's cores index side by side while the
        # next piece is built (and analysed) here.
        with ThreadPoolExecutor(BULK_IN_FLIGHT, thread_name_prefix="es-bulk") as sender, self._errors("indexing"):
            in_flight: deque[Future[list[IndexFailure]]] = deque()
            for start in range(0, len(latest), BULK_PIECE_DOCS):
                actions = self._actions(latest[start : start + BULK_PIECE_DOCS], failures)
                if len(in_flight) == BULK_IN_FLIGHT:
                    failures.extend(in_flight.popleft().result())
                if actions:
                    in_flight.append(sender.submit(self._send, actions))
            for piece in in_flight:
                failures.extend(piece.result())
        if failures:  # the caller says what matters: each document's own refusal, or the index refusing all for now
            log.info("Elasticsearch at %s refused %d of %d documents", self.where, len(failures), len(changes))
        return failures

    def _actions(self, changes: Sequence[IndexChange], failures: list[IndexFailure]) -> list[dict[str, Any]]:
        """Bulk actions for the changes; a document of the wrong kind goes to failures instead."""
        actions: list[dict[str, Any]] = []
        for change in changes:
            target = {"_index": self.alias(FAMILY_OF_KIND[change.kind]), "_id": change.id,
                      "_version": change.version, "_version_type": "external"}
            if change.document is None:
                actions.append({"_op_type": "delete", **target})
            elif change.kind == "story" and isinstance(change.document, Story):
                actions.append({"_op_type": "index", **target, "_source": story_document(change.document)})
            elif change.kind == "article" and isinstance(change.document, IndexedArticle):
                actions.append({"_op_type": "index", **target, "_source": article_document(change.document)})
            else:
                failures.append(IndexFailure(change.kind, change.id,
                                             f"a {type(change.document).__name__} is not a {change.kind}", False))
        return actions

    def _send(self, actions: list[dict[str, Any]]) -> list[IndexFailure]:
        """Send actions with the client's bulk helper; return the refused documents."""
        results = helpers.streaming_bulk(
            self.client,
            actions,
            chunk_size=BULK_CHUNK_DOCS,
            max_chunk_bytes=BULK_CHUNK_BYTES,
            raise_on_error=False,
            # A whole request refused with 4xx is reported per document instead of raised, so
            # one poisonous batch cannot block the outbox; 5xx is handled in _failure.
            raise_on_exception=False,
            max_retries=self.settings.max_retries,
            initial_backoff=BULK_INITIAL_BACKOFF,
            max_backoff=BULK_MAX_BACKOFF,
            yield_ok=False,
            # The aliases must exist: a write must never auto-create an index named like one.
            require_alias=True,
        )
        failures: list[IndexFailure] = []
        for _ok, item in results:
            op, info = next(iter(item.items()))
            failure = self._failure(op, info)
            if failure is not None:
                failures.append(failure)
        return failures

    def _failure(self, op: str, info: dict[str, Any]) -> IndexFailure | None:
        status = int(info.get("status", 500))
        if op == "delete" and status == 404 and "error" not in info:
            return None  # deleting what is not there is what we wanted
        error = info.get("error")
        if status == 409 and isinstance(error, dict) and error.get("type") == "version_conflict_engine_exception":
            return None  # the index holds a newer version of the document already
        exception = info.get("exception")
        if isinstance(exception, ApiError) and (status == 429 or status >= 500):
            # The whole request failed after the client's retries: the cluster is in trouble.
            raise SearchUnavailable(
                f"Elasticsearch at {self.where} refused a bulk request ({status}): {self._reason(exception)}"
            )
        index = str(info.get("_index", ""))
        kind: Literal["story", "article"] = (
            "story" if index.startswith(self.alias("stories")) else "article"
        )
        reason = self._reason(exception) if isinstance(exception, ApiError) else _describe(error)
        error_type = error.get("type") if isinstance(error, dict) else None
        # 429/5xx pass; so do blocks (a reindex in progress, a full disk) and a missing alias
        # (setup not run yet): none of them is the document's fault.
        transient = status == 429 or status >= 500 or error_type in ("cluster_block_exception",
                                                                     "index_not_found_exception")
        return IndexFailure(kind, str(info.get("_id", "")), f"{status} {reason}"[:1000], transient)

    def refresh(self) -> None:
        """Make everything written so far searchable (Elasticsearch does it within a second anyway)."""
        with self._errors("refresh"):
            self.client.indices.refresh(index=[self.alias(f) for f in FAMILIES])

    def document_counts(self) -> dict[str, int]:
        """How many stories and articles the index holds."""
        with self._errors("count"):
            return {f: int(self.client.count(index=self.alias(f)).body["count"]) for f in FAMILIES}

    # -- searching -----------------------------------------------------------------------

    def search(self, query: SearchQuery) -> SearchResults:
        """Every word must match in the title or the body (title weighted 3x); filters, facets, highlights."""
        languages = [query.language] if query.language else self._languages()
        terms = query_terms(query.text, languages)
        if not terms:
            return SearchResults(total=0, hits=[])
        filters: list[dict[str, Any]] = []
        if query.since is not None:
            filters.append({"range": {"last_seen": {"gte": _iso(query.since)}}})
        if query.until is not None:
            filters.append({"range": {"first_seen": {"lte": _iso(query.until)}}})
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
            name: _facet({
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

    # -- maintenance ---------------------------------------------------------------------

    def reindex(self, families: Sequence[Family] = FAMILIES) -> list[ReindexReport]:
        """Move each family to a new index generation built from the current template.

        The old index is write-blocked while it is copied, so a concurrent pipeline run gets
        its writes refused (transient failures: the outbox keeps them) instead of lost, and
        searches keep answering from the old index until the alias moves.

        Raises:
            SearchBackendError: an alias is missing or ambiguous, or the copy is incomplete;
                the old index then stays behind the alias, writable again.
        """
        self.ready()
        with self._errors("reindex"):
            self._install_templates()
        return [self._reindex_one(family) for family in families]

    def _reindex_one(self, family: Family) -> ReindexReport:
        alias = self.alias(family)
        with self._errors(f"reindex of {alias}"):
            current = self._alias_indices(alias)
            if len(current) != 1:
                raise SearchBackendError(
                    f"alias {alias} points at {', '.join(current) or 'nothing'}; "
                    "run `newsagg es setup` (and `newsagg es check`) first"
                )
            old = current[0]
            found = re.match(rf"^{re.escape(alias)}-v(\d+)$", old)
            new = f"{alias}-v{int(found.group(1)) + 1 if found else 1}"
            if self.client.indices.exists(index=new):
                # Not behind the alias, so nobody reads it: the leftover of an interrupted reindex.
                log.warning("deleting %s, left over from an interrupted reindex", new)
                self.client.indices.delete(index=new)
            self.client.indices.put_settings(index=old, settings={"index.blocks.write": True})
        try:
            with self._errors(f"reindex of {alias}"):
                self.client.indices.create(index=new)
                copied = self._copy(old, new)
                self.client.indices.refresh(index=new)
                before = int(self.client.count(index=old).body["count"])
                after = int(self.client.count(index=new).body["count"])
                if before != after:
                    raise SearchBackendError(f"reindex of {alias}: {old} holds {before} documents, {new} {after}")
                self.client.indices.update_aliases(
                    actions=[
                        {"remove": {"index": old, "alias": alias}},
                        {"add": {"index": new, "alias": alias}},
                    ]
                )
        except BaseException:
            with suppress(Exception):
                self.client.options(ignore_status=404).indices.delete(index=new)
            with suppress(Exception):
                self.client.indices.put_settings(index=old, settings={"index.blocks.write": None})
            raise
        with self._errors(f"reindex of {alias}"):
            self.client.indices.delete(index=old)
        log.info("reindexed %s: %s -> %s, %d documents", alias, old, new, copied)
        return ReindexReport(family, alias, old, new, copied)

    def _copy(self, old: str, new: str) -> int:
        # Documents keep their versions, so a late write older than a copied document stays refused.
        # Stories get their terms anew: a reindex is how a change of the analysis is rolled out.
        actions = (
            {"_op_type": "index", "_index": new, "_id": hit["_id"], "_source": _reanalysed(hit["_source"]),
             "_version": hit["_version"], "_version_type": "external"}
            for hit in helpers.scan(
                self.client, index=old, query={"query": {"match_all": {}}}, size=SCAN_PAGE, version=True
            )
        )
        copied, refused = 0, []
        for ok, item in helpers.streaming_bulk(
            self.client, actions, chunk_size=BULK_CHUNK_DOCS, max_chunk_bytes=BULK_CHUNK_BYTES,
            raise_on_error=False, max_retries=max(self.settings.max_retries, 3),
            initial_backoff=BULK_INITIAL_BACKOFF, max_backoff=BULK_MAX_BACKOFF,
        ):
            if ok:
                copied += 1
            else:
                refused.append(next(iter(item.values())))
        if refused:
            first = refused[0]
            raise SearchBackendError(
                f"{new} refused {len(refused)} documents copied from {old} (first: {first.get('_id')}: "
                f"{_describe(first.get('error'))}); does the new template still fit the documents?"
            )
        return copied

    def check(self) -> list[AliasCheck]:
        """Compare what is in the cluster with the template files; `ok` is False where action is needed."""
        self.ready()
        results = []
        with self._errors("check"):
            for family, template in self.templates.items():
                alias = self.alias(family)
                installed = self._installed_template(alias)
                indices = self._alias_indices(alias)
                meta: dict[str, Any] = {}
                if len(indices) == 1:
                    mapping = self.client.indices.get_mapping(index=indices[0]).body
                    meta = mapping[indices[0]]["mappings"].get("_meta") or {}
                result = AliasCheck(
                    family=family,
                    alias=alias,
                    indices=indices,
                    index_version=meta.get("version"),
                    template_version=template.version,
                    installed_template_version=None if installed is None else installed.get("version"),
                )
                if installed is None:
                    result.problems.append(f"template {alias} is not installed: run `newsagg es setup`")
                elif installed.get("_meta", {}).get("checksum") != template.checksum:
                    result.problems.append(
                        f"template {alias} in the cluster (version {installed.get('version')}) differs from "
                        f"config/elasticsearch/{family}.json (version {template.version}): run `newsagg es setup`"
                    )
                if not indices and self.client.indices.exists(index=alias):
                    result.problems.append(
                        f"{alias} is an index, not the alias newsagg uses (made by hand?): "
                        "delete it, then run `newsagg es setup` and `newsagg outbox fill`"
                    )
                elif not indices:
                    result.problems.append(f"alias {alias} does not exist: run `newsagg es setup`")
                elif len(indices) > 1:
                    result.problems.append(
                        f"alias {alias} points at several indices ({', '.join(indices)}); "
                        "remove all but the newest from the alias"
                    )
                else:
                    if meta.get("checksum") != template.checksum:
                        result.problems.append(
                            f"index {indices[0]} has {result.mapping}, the template is "
                            f"version {template.version}: run `newsagg es reindex --kind {family}`"
                        )
                    if self._write_blocked(indices[0]):
                        result.problems.append(
                            f"index {indices[0]} refuses writes (an interrupted reindex?): "
                            f"run `newsagg es reindex --kind {family}` again"
                        )
                results.append(result)
        return results

    def _write_blocked(self, index: str) -> bool:
        found = self.client.indices.get_settings(index=index, name="index.blocks.write").body
        blocks = found.get(index, {}).get("settings", {}).get("index", {}).get("blocks", {})
        return str(blocks.get("write", "false")).lower() == "true"

    def drop(self) -> None:
        """Delete this prefix's indices (with their aliases) and templates: for tests and teardown."""
        with self._errors("drop"):
            for family in FAMILIES:
                alias = self.alias(family)
                names = list(self.client.indices.get(index=f"{alias}-v*", expand_wildcards="all").body)
                if names:  # deletes need exact names (action.destructive_requires_name)
                    self.client.indices.delete(index=",".join(names))
                self.client.options(ignore_status=404).indices.delete_index_template(name=alias)

    # -- errors --------------------------------------------------------------------------

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn the client's exceptions into ours, with the URL shown and secrets masked."""
        try:
            yield
        except NewsaggError:
            raise
        except ApiError as exc:
            raise self._api_error(exc, action) from None
        except SSLError as exc:
            # Not transient: the CA bundle or verify_certs setting needs fixing.
            raise SearchBackendError(
                f"TLS with Elasticsearch at {self.where} failed during {action} (check es.ca_certs and "
                f"es.verify_certs): {self._scrub(str(exc))}"
            ) from None
        except (ConnectionError, ConnectionTimeout, TransportError) as exc:
            raise SearchUnavailable(
                f"Elasticsearch at {self.where} is unreachable during {action}: {self._scrub(_first_line(exc))}"
            ) from None

    def _api_error(self, exc: ApiError, action: str) -> NewsaggError:
        status = exc.meta.status
        reason = self._reason(exc)
        if status == 429 or status >= 500:
            return SearchUnavailable(f"Elasticsearch at {self.where} failed {action} ({status}): {reason}")
        if status == 401:
            return SearchBackendError(
                f"Elasticsearch at {self.where} rejected the credentials during {action} (401): "
                "check es.api_key, or es.username and es.password"
            )
        if status == 403:
            return SearchBackendError(
                f"Elasticsearch at {self.where} refused {action} (403, missing privilege?): {reason}"
            )
        hint = "; run `newsagg es setup`" if _error_type(exc) == "index_not_found_exception" else ""
        return SearchBackendError(f"Elasticsearch at {self.where} refused {action} ({status}): {reason}{hint}")

    def _reason(self, exc: ApiError) -> str:
        body = exc.body
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            return self._scrub(_describe(body["error"]))
        return self._scrub(str(exc.message))

    def _scrub(self, text: str) -> str:
        text = _USERINFO.sub(r"\1", text)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


# -- helpers -----------------------------------------------------------------------------


def _secrets_of(settings: ElasticsearchSettings) -> list[str]:
    """Every form in which a credential could leak into a message."""
    secrets = []
    if settings.api_key is not None:
        secrets.append(settings.api_key.get_secret_value())
    if settings.password is not None:
        password = settings.password.get_secret_value()
        secrets.append(password)
        secrets.append(base64.b64encode(f"{settings.username or ''}:{password}".encode()).decode())
    for url in settings.urls:
        with suppress(ValueError):
            if in_url := urlsplit(url).password:
                secrets.append(in_url)
    return sorted((s for s in secrets if len(s) >= 3), key=len, reverse=True)


def _reanalysed(source: dict[str, Any]) -> dict[str, Any]:
    """A copied document, a story's terms made by today's analysis."""
    if "title_stems" not in source:
        return source
    language = source.get("language")
    return {
        **source,
        "title_stems": " ".join(analyze(source.get("title") or "", language)),
        "body_stems": " ".join(analyze(source.get("body") or "", language)),
    }


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # the pipeline's datetimes are UTC; be explicit for the index
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


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


def _facet(counts: dict[str, int]) -> dict[str, int]:
    """Largest first, ties by value: the SQLite backend's order."""
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _describe(error: Any) -> str:
    """An Elasticsearch error object as one line: type, reason and the cause."""
    if not isinstance(error, dict):
        return str(error)
    text = f"{error.get('type')}: {error.get('reason')}"
    cause = error.get("caused_by")
    if isinstance(cause, dict):
        text += f" (caused by {cause.get('type')}: {cause.get('reason')})"
    return text


def _error_type(exc: ApiError) -> str | None:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("type"))
    return None


def _first_line(exc: Exception) -> str:
    """The root cause of a transport error, e.g. "Failed to establish a new connection: ... refused"."""
    # A transport error's `message` holds the cause; its str() may be a generic "Connection error".
    raw = exc.message if isinstance(exc, TransportError) else exc
    text = _CONNECTION_REPR.sub("", str(raw).strip()) or type(exc).__name__
    return text.splitlines()[0][:300]
