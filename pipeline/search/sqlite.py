"""The embedded search backend: SQLite FTS5 with bm25 ranking, in its own database file."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.errors import SearchBackendError, SearchUnavailable
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
from pipeline.search.analysis import highlighted_spans, indexed_terms, query_terms
from pipeline.search.base import HIGHLIGHT_TAGS, TITLE_WEIGHT, ordered_facet
from pipeline.sqlite_wal import use_wal, why_unopenable

log = logging.getLogger(__name__)

SNIPPET_CHARS = 200  # about the length of FTS5's 32-token snippets and Elasticsearch's fragments
SNIPPET_LEAD = 40  # characters of context shown before the first highlighted word

# A search filters, sorts and counts every story that matches, by the columns of
# `story_keys`, a narrow copy of those of `stories`: there they stand after the text, on
# overflow pages, and reading them cost a chain of pages per match (most of a search's time).

# FTS5 indexes the terms pipeline.search.analysis makes, as the Elasticsearch backend does,
# kept beside the text (title_terms, body_terms) for FTS5's deletes. They are lowercase
# letters and digits separated by spaces, so the `ascii` tokenizer (split on ASCII
# punctuation and spaces, every other character part of a token) takes them as they are.
_FTS = """CREATE VIRTUAL TABLE IF NOT EXISTS stories_fts USING fts5(
    title_terms, body_terms, content='stories', content_rowid='rowid', tokenize='ascii'
)"""
_SCHEMA = """
CREATE TABLE IF NOT EXISTS stories (
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    summary TEXT NOT NULL,
    outlets TEXT NOT NULL,
    article_count INTEGER NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    language TEXT,
    agency TEXT,
    title_terms TEXT NOT NULL,
    body_terms TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS stories_language ON stories(language);
CREATE TABLE IF NOT EXISTS story_keys (
    story_rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    language TEXT,
    agency TEXT
);
CREATE INDEX IF NOT EXISTS story_keys_language ON story_keys(language);
CREATE TABLE IF NOT EXISTS story_outlets (
    story_rowid INTEGER NOT NULL,
    outlet TEXT NOT NULL,
    PRIMARY KEY (story_rowid, outlet)
);
CREATE TABLE IF NOT EXISTS story_tags (
    story_rowid INTEGER NOT NULL,
    tag TEXT NOT NULL,
    PRIMARY KEY (story_rowid, tag)
);
CREATE TABLE IF NOT EXISTS articles (
    id TEXT PRIMARY KEY,
    cluster_id TEXT NOT NULL,
    outlet TEXT NOT NULL,
    url TEXT NOT NULL,
    title TEXT NOT NULL,
    published TEXT,
    fetched_at TEXT NOT NULL,
    jaccard REAL,
    containment REAL
);
CREATE INDEX IF NOT EXISTS articles_cluster ON articles(cluster_id);
CREATE TABLE IF NOT EXISTS versions (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (kind, id)
) WITHOUT ROWID;
""" + _FTS + ";"


class SqliteSearchIndex:
    """Stories and articles in an SQLite file, searched with FTS5.

    Args:
        path: the database file; created with its directory.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, timeout=30, check_same_thread=False)
            use_wal(self._db, wait=30)
        except (OSError, sqlite3.Error) as exc:
            raise SearchBackendError(f"cannot open the search index {path}: {why_unopenable(path, str(exc))}") from None
        # As in the store: NORMAL is durable across process kills (the failure we design for),
        # and spares each document's commit a sync of the disk (10x faster indexing).
        self._db.execute("PRAGMA synchronous=NORMAL")

    def setup(self) -> None:
        try:
            with self._db:
                self._upgrade()
                self._db.executescript(_SCHEMA)
                self._fill_story_keys()
        except sqlite3.Error as exc:
            if not _file_failed(exc):
                raise
            raise SearchUnavailable(f"search index {self.path} cannot be written: {exc}") from None

    def _upgrade(self) -> None:
        """Re-index the stories of an index made before the shared analysis, in place.

        Such an index searched FTS5's own Porter-stemmed words of ``title`` and ``body``;
        now it searches the terms `analyze` makes, stored beside the text.
        """
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(stories)")}
        if not columns or "title_terms" in columns:
            return
        log.info("search index %s: re-indexing its stories with the per-language analysis", self.path)
        # One transaction (the module opens none for DDL by itself): a kill half-way leaves the old index.
        self._db.execute("BEGIN")
        self._db.execute("DROP TABLE stories_fts")
        self._db.execute("ALTER TABLE stories ADD COLUMN title_terms TEXT NOT NULL DEFAULT ''")
        self._db.execute("ALTER TABLE stories ADD COLUMN body_terms TEXT NOT NULL DEFAULT ''")
        rows = self._db.execute("SELECT rowid, title, body, language FROM stories").fetchall()
        self._db.executemany(
            "UPDATE stories SET title_terms = ?, body_terms = ? WHERE rowid = ?",
            [
                (indexed_terms(title, language), indexed_terms(body, language), rowid)
                for rowid, title, body, language in rows
            ],
        )
        self._db.execute(_FTS)
        self._db.execute("INSERT INTO stories_fts(stories_fts) VALUES ('rebuild')")

    def _fill_story_keys(self) -> None:
        """Copy the keys of the stories of an index made before `story_keys` (always written together)."""
        if self._db.execute("SELECT 1 FROM story_keys LIMIT 1").fetchone() is not None:
            return
        if self._db.execute("SELECT 1 FROM stories LIMIT 1").fetchone() is None:
            return  # nothing to copy: an empty INSERT would still need a read-only index to be writable
        self._db.execute(
            "INSERT INTO story_keys(story_rowid, id, first_seen, last_seen, language, agency)"
            " SELECT rowid, id, first_seen, last_seen, language, agency FROM stories"
        )

    def close(self) -> None:
        self._db.close()

    def write(self, changes: Sequence[IndexChange]) -> list[IndexFailure]:
        """Apply each change, unless the index holds that version or a newer one; one commit for the batch.

        The version is claimed by a change's first statement, a write, so the check and the
        change it guards are one step no other writer can come between. Versions of deleted
        documents stay, so a late write can never bring one back. Each change is a savepoint
        of its own: a document the index refuses costs that document, not the batch (a
        commit per document cost more than writing it).
        """
        failures: list[IndexFailure] = []
        try:
            self._db.execute("BEGIN IMMEDIATE")
            for change in changes:
                self._db.execute("SAVEPOINT change")
                try:
                    if self._claim(change):  # else a newer version is here already
                        self._apply(change)
                except sqlite3.Error as exc:
                    if _file_failed(exc):
                        raise
                    self._db.execute("ROLLBACK TO change")
                    failures.append(IndexFailure(change.kind, change.id, str(exc), transient=False))
                self._db.execute("RELEASE change")
            self._db.commit()
        except BaseException as exc:
            if self._db.in_transaction:
                self._db.rollback()  # nothing of the batch is kept; the caller keeps it in its outbox
            if isinstance(exc, sqlite3.Error) and _file_failed(exc):
                raise SearchUnavailable(f"search index {self.path} cannot be written: {exc}") from None
            raise
        return failures

    def _apply(self, change: IndexChange) -> None:
        if change.kind == "story":
            self._delete_story(change.id)
            if isinstance(change.document, Story):
                self._insert_story(change.document)
        else:
            self._db.execute("DELETE FROM articles WHERE id = ?", (change.id,))
            if isinstance(change.document, IndexedArticle):
                self._insert_article(change.document)

    def _claim(self, change: IndexChange) -> bool:
        """Record the change's version if it is newer than the document's; whether it was."""
        cursor = self._db.execute(
            "INSERT INTO versions(kind, id, version) VALUES (?, ?, ?) ON CONFLICT(kind, id) DO UPDATE"
            " SET version = excluded.version WHERE excluded.version > versions.version",
            (change.kind, change.id, change.version),
        )
        return cursor.rowcount == 1

    def _delete_story(self, story_id: str) -> None:
        row = self._db.execute(
            "SELECT rowid, title_terms, body_terms FROM stories WHERE id = ?", (story_id,)
        ).fetchone()
        if row is None:
            return
        # External-content FTS5 tables are told what to forget with the old values.
        self._db.execute(
            "INSERT INTO stories_fts(stories_fts, rowid, title_terms, body_terms) VALUES ('delete', ?, ?, ?)", row
        )
        self._db.execute("DELETE FROM story_keys WHERE story_rowid = ?", (row[0],))
        self._db.execute("DELETE FROM story_outlets WHERE story_rowid = ?", (row[0],))
        self._db.execute("DELETE FROM story_tags WHERE story_rowid = ?", (row[0],))
        self._db.execute("DELETE FROM stories WHERE rowid = ?", (row[0],))

    def _insert_story(self, story: Story) -> None:
        cursor = self._db.execute(
            "INSERT INTO stories(id, title, body, summary, outlets, article_count, first_seen, last_seen,"
            " language, agency, title_terms, body_terms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                story.id,
                story.title,
                story.text,
                story.summary,
                json.dumps(story.outlets),
                story.article_count,
                story.first_seen.isoformat(),
                story.last_seen.isoformat(),
                story.language,
                story.agency,
                title_terms := indexed_terms(story.title, story.language),
                body_terms := indexed_terms(story.text, story.language),
            ),
        )
        rowid = cursor.lastrowid
        self._db.execute(
            "INSERT INTO story_keys(story_rowid, id, first_seen, last_seen, language, agency)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (rowid, story.id, story.first_seen.isoformat(), story.last_seen.isoformat(), story.language, story.agency),
        )
        self._db.execute(
            "INSERT INTO stories_fts(rowid, title_terms, body_terms) VALUES (?, ?, ?)", (rowid, title_terms, body_terms)
        )
        self._db.executemany(
            "INSERT INTO story_outlets(story_rowid, outlet) VALUES (?, ?)",
            [(rowid, outlet) for outlet in story.outlets],
        )
        self._db.executemany(
            "INSERT INTO story_tags(story_rowid, tag) VALUES (?, ?)", [(rowid, tag) for tag in story.tags]
        )

    def _insert_article(self, doc: IndexedArticle) -> None:
        article, member = doc.article, doc.membership
        self._db.execute(
            "INSERT INTO articles(id, cluster_id, outlet, url, title, published, fetched_at, jaccard, containment)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                article.id,
                member.cluster_id,
                article.outlet,
                article.url,
                article.title,
                article.published.isoformat() if article.published else None,
                article.fetched_at.isoformat(),
                member.jaccard,
                member.containment,
            ),
        )

    def search(self, query: SearchQuery) -> SearchResults:
        languages = [query.language] if query.language else self._languages()
        terms = query_terms(query.text, languages)
        if not terms:
            return SearchResults(total=0, hits=[])
        match = fts_query(terms)
        where = ["stories_fts MATCH ?"]
        params: list[Any] = [match]
        if query.since is not None:
            where.append("k.last_seen >= ?")
            params.append(query.since.astimezone(UTC).isoformat())
        if query.until is not None:
            where.append("k.first_seen <= ?")
            params.append(query.until.astimezone(UTC).isoformat())
        if query.language:
            where.append("+k.language = ?")  # `+`: not by its index, which would test every story of the language
            params.append(query.language)
        if query.agency:
            where.append("k.agency = ?")
            params.append(query.agency)
        if query.outlet:
            where.append("EXISTS (SELECT 1 FROM story_outlets o WHERE o.story_rowid = k.story_rowid AND o.outlet = ?)")
            params.append(query.outlet)
        if query.tag:
            where.append("EXISTS (SELECT 1 FROM story_tags t WHERE t.story_rowid = k.story_rowid AND t.tag = ?)")
            params.append(query.tag)
        matches = (f"FROM stories_fts JOIN story_keys k ON k.story_rowid = stories_fts.rowid"
                   f" WHERE {' AND '.join(where)}")
        first, then = ("rank", "top.rank") if query.sort == "relevance" else ("k.last_seen DESC", "top.last_seen DESC")
        try:
            # The page's stories are ranked and cut from the narrow keys; only theirs are read whole.
            rows = self._db.execute(
                "SELECT s.id, s.title, s.body, top.rank, s.outlets, s.article_count,"
                " s.first_seen, s.last_seen, s.language, s.agency,"
                " (SELECT json_group_array(t.tag) FROM story_tags t WHERE t.story_rowid = s.rowid), s.summary"
                f" FROM (SELECT k.story_rowid, k.id, k.last_seen, bm25(stories_fts, {TITLE_WEIGHT}, 1.0) AS rank"
                f" {matches} ORDER BY {first}, k.id LIMIT ? OFFSET ?) AS top"
                f" JOIN stories s ON s.rowid = top.story_rowid ORDER BY {then}, top.id",
                [*params, query.limit, query.offset],
            ).fetchall()
            # The count and every facet's counts in one pass over the matches, exact (SQLite
            # materializes a common table expression that is used more than once).
            counted = self._db.execute(
                f"WITH m AS (SELECT k.* {matches})"
                " SELECT 'total', NULL, count(*) FROM m"
                " UNION ALL SELECT 'outlet', o.outlet, count(*) FROM m"
                " JOIN story_outlets o ON o.story_rowid = m.story_rowid GROUP BY o.outlet"
                " UNION ALL SELECT 'agency', agency, count(*) FROM m WHERE agency IS NOT NULL GROUP BY agency"
                " UNION ALL SELECT 'day', substr(first_seen, 1, 10), count(*) FROM m GROUP BY 2"
                " UNION ALL SELECT 'language', language, count(*) FROM m WHERE language IS NOT NULL GROUP BY language",
                params,
            ).fetchall()
        except sqlite3.Error as exc:
            raise SearchBackendError(f"search failed ({self.path}): {exc}") from None
        total = 0
        counts: dict[str, dict[str, int]] = {facet: {} for facet in FACETS}
        for facet, value, count in counted:
            if facet == "total":
                total = count
            else:
                counts[facet][str(value)] = count
        facets = {facet: ordered_facet(c) for facet, c in counts.items()}
        hits = [
            SearchHit(
                story_id=row[0],
                title=row[1],
                snippet=_snippet(row[2], row[8], {form for forms in terms for form in forms}) or row[11],
                score=-float(row[3]),  # bm25() is lower-is-better; hits read higher-is-better
                outlets=tuple(json.loads(row[4])),
                article_count=row[5],
                first_seen=datetime.fromisoformat(row[6]),
                last_seen=datetime.fromisoformat(row[7]),
                language=row[8],
                agency=row[9],
                tags=tuple(sorted(json.loads(row[10]))),
            )
            for row in rows
        ]
        return SearchResults(total=total, hits=hits, facets=facets)

    def _languages(self) -> list[str | None]:
        try:
            return [row[0] for row in self._db.execute("SELECT DISTINCT language FROM story_keys")]
        except sqlite3.Error as exc:
            raise SearchBackendError(f"search failed ({self.path}): {exc}") from None

    def document_counts(self) -> dict[str, int]:
        """How many stories and articles the index holds."""
        return {
            kind: self._db.execute(f"SELECT count(*) FROM {kind}").fetchone()[0]
            for kind in ("stories", "articles")
        }


def fts_query(terms: list[list[str]]) -> str:
    """An FTS5 query that cannot be a syntax error: every term must match, in any of its forms."""
    return " AND ".join(
        "(" + " OR ".join('"' + form.replace('"', '""') + '"' for form in forms) + ")" for forms in terms
    )


def _snippet(text: str, language: str | None, terms: set[str]) -> str:
    """About SNIPPET_CHARS of the text from just before its first matching word, matches in [[ ]]."""
    # A snippet starts at or before its first match and ends at most SNIPPET_CHARS and a word's 40 after that.
    spans = highlighted_spans(text, language, terms, window=SNIPPET_CHARS + 40)
    start = 0
    if spans and spans[0][0] > SNIPPET_LEAD:
        start = spans[0][0] - SNIPPET_LEAD
        start = next((i + 1 for i in range(start, spans[0][0]) if text[i].isspace()), start)
    end = min(len(text), start + SNIPPET_CHARS)
    if end < len(text):
        end = next((i for i in range(end, min(len(text), end + 40)) if text[i].isspace()), end)
    pieces = ["…" if start > 0 else ""]
    at = start
    for left, right in spans:
        if left < start or right > end:
            continue
        pieces += [text[at:left], HIGHLIGHT_TAGS[0], text[left:right], HIGHLIGHT_TAGS[1]]
        at = right
    pieces += [text[at:end], "…" if end < len(text) else ""]
    return "".join(pieces).strip()


def _file_failed(exc: sqlite3.Error) -> bool:
    """Whether the index file failed (read-only, full, locked, an I/O error, damaged), not one document."""
    return isinstance(exc, sqlite3.OperationalError) or exc.sqlite_errorname in ("SQLITE_CORRUPT", "SQLITE_NOTADB")
