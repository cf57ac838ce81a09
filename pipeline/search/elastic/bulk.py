"""Writing: changes sent as bulk requests, a few pieces in flight, each refusal reported by document."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Literal

from elasticsearch import ApiError, helpers

from pipeline.errors import SearchUnavailable
from pipeline.models import IndexChange, IndexedArticle, IndexFailure, Story
from pipeline.search.elastic.connection import ElasticsearchBase, describe
from pipeline.search.elastic.documents import article_document, story_document
from pipeline.search.elastic.templates import FAMILIES, FAMILY_OF_KIND

log = logging.getLogger(__name__)

BULK_CHUNK_DOCS = 500
BULK_PIECE_DOCS = 250  # write() sends its changes in pieces of this many documents,
BULK_IN_FLIGHT = 3  # this many at a time
BULK_CHUNK_BYTES = 10 * 1024 * 1024  # well under the default http.max_content_length of 100 MB
BULK_INITIAL_BACKOFF = 1.0  # seconds before the first retry of documents refused with 429
BULK_MAX_BACKOFF = 30.0


class BulkWriter(ElasticsearchBase):
    """Upserts and deletes through the aliases, with external versions."""

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
        reason = self._reason(exception) if isinstance(exception, ApiError) else describe(error)
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
