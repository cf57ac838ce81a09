"""The text analysis both search backends index and query by."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
from test_backends import STORIES, T0  # type: ignore[import-not-found]

from pipeline.models import IndexChange, SearchQuery
from pipeline.search.analysis import analyze, highlighted_spans, query_terms
from pipeline.search.sqlite import SqliteSearchIndex


def test_words_by_script_folded_and_stemmed_in_their_language() -> None:
    assert analyze("Die Hafenarbeiter streiken; Häfen, Straße!", "de") == ["die", "hafenarbeit", "streik", "haf", "strass"]
    assert analyze("Les grèves à Zürich", "fr") == ["le", "grev", "a", "zurich"]
    assert analyze("Strikes halted traffic", "en") == ["strike", "halt", "traffic"]
    assert analyze("Strikes halted traffic", None) == ["strikes", "halted", "traffic"]  # no language, no stemming
    assert analyze("Strikes halted traffic", "zz") == ["strikes", "halted", "traffic"]
    # Unspaced scripts give overlapping pairs; a lone character stays itself; Latin words among them stay words.
    assert analyze("码头工人罢工 Reuters 2026年", "zh") == ["码头", "头工", "工人", "人罢", "罢工", "reuters", "2026", "年"]
    assert analyze("부산항 파업", "ko") == ["부산", "산항", "파업"]
    # Vowel signs and points belong to their word; Cyrillic keeps its letters.
    assert analyze("हिन्दी समाचार", None) == ["हिन्दी", "समाचार"]
    assert analyze("Портовые рабочие", "ru") == ["портов", "рабоч"]


def test_a_query_word_may_match_in_any_language_of_the_index() -> None:
    assert query_terms("Streiks 罢工", ["de", "en"]) == [["streik", "streiks"], ["罢工"]]
    assert query_terms("Streiks", ["de"]) == [["streik", "streiks"]]  # unstemmed too, for stories without a language
    assert query_terms("  ", ["de"]) == []


def test_highlights_fall_on_the_words_that_matched() -> None:
    text = "Die Häfen streiken. 码头工人罢工"
    spans = highlighted_spans(text, "de", {"streik", "haf", "罢工", "工人"})
    assert [text[a:b] for a, b in spans] == ["Häfen", "streiken", "工人罢工"]



def test_highlights_for_a_snippet_stop_a_window_after_the_first() -> None:
    text = "Quiet start. " + "Strikes spread; the strike went on. " * 20
    every = highlighted_spans(text, "en", {"strike"})
    window = highlighted_spans(text, "en", {"strike"}, window=100)
    assert len(window) < len(every)
    assert window == [span for span in every if span[0] <= every[0][0] + 100]
    assert highlighted_spans("No match here.", "en", {"strike"}, window=100) == []


OLD_SCHEMA = """
CREATE TABLE stories (rowid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, title TEXT NOT NULL, body TEXT NOT NULL,
    summary TEXT NOT NULL, outlets TEXT NOT NULL, article_count INTEGER NOT NULL, first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL, language TEXT, agency TEXT);
CREATE VIRTUAL TABLE stories_fts USING fts5(
    title, body, content='stories', content_rowid='rowid', tokenize='porter unicode61 remove_diacritics 2');
"""


def old_index(path: Path, body: object = "Die Häfen ruhen.") -> None:
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    db.execute(
        "INSERT INTO stories VALUES (1, 's3', 'Hafenarbeiter streiken', ?, '', '[\"zeitung\"]', 1, ?, ?, 'de', NULL)",
        (body, T0.isoformat(), T0.isoformat()),
    )
    db.execute("INSERT INTO stories_fts(stories_fts) VALUES ('rebuild')")
    db.commit()
    db.close()


def test_an_index_made_before_the_per_language_analysis_is_reindexed_on_setup(tmp_path: Path) -> None:
    path = tmp_path / "search.sqlite3"
    old_index(path)
    index = SqliteSearchIndex(path)
    try:
        index.setup()
        index.setup()
        hits = index.search(SearchQuery(text="Streiks Hafens")).hits
        assert [(h.story_id, h.snippet) for h in hits] == [("s3", "Die [[Häfen]] ruhen.")]
    finally:
        index.close()


def test_ascii_text_takes_the_short_way_to_the_same_terms() -> None:
    for text in ["", "Port strike: 14 ships WAIT", "it's (Reuters) - 3.5% up\n\nNext_door", "x" * 100]:
        for language in ("en", "de", None):
            assert analyze(text, language) == analyze(text + " é", language)[:-1]  # "é" takes the general path


def test_an_upgrade_that_fails_half_way_leaves_the_old_index(tmp_path: Path) -> None:
    path = tmp_path / "search.sqlite3"
    old_index(path, body=b"\xff")  # a blob, not text: analysing it fails after the old FTS table is dropped
    index = SqliteSearchIndex(path)
    try:
        with pytest.raises(TypeError):
            index.setup()
    finally:
        index.close()
    with sqlite3.connect(path) as db:
        assert "title_terms" not in {row[1] for row in db.execute("PRAGMA table_info(stories)")}
        assert db.execute("SELECT rowid FROM stories_fts WHERE stories_fts MATCH 'hafenarbeiter'").fetchall() == [(1,)]


def test_an_index_made_before_story_keys_filters_and_counts_as_before(tmp_path: Path) -> None:
    path = tmp_path / "search.sqlite3"
    index = SqliteSearchIndex(path)
    index.setup()
    assert index.write([IndexChange("story", s.id, s, 1) for s in STORIES]) == []
    index.close()
    with sqlite3.connect(path) as db:  # as the release before it left the index
        db.execute("DROP TABLE story_keys")
    index = SqliteSearchIndex(path)
    try:
        index.setup()
        results = index.search(SearchQuery(text="port", agency="Reuters"))
        assert [h.story_id for h in results.hits] == ["s1"]
        assert results.facets["outlet"] == {"courier": 1, "gazette": 1, "ledger": 1}
        assert [h.story_id for h in index.search(SearchQuery(text="streik", language="de")).hits] == ["s3"]
    finally:
        index.close()


def test_a_refused_document_costs_itself_not_the_batch(tmp_path: Path) -> None:
    index = SqliteSearchIndex(tmp_path / "search.sqlite3")
    try:
        index.setup()
        twice = replace(STORIES[1], id="twice", tags=("local", "local"))  # one tag twice breaks a key
        failures = index.write([IndexChange("story", s.id, s, 1) for s in [STORIES[0], twice, STORIES[2]]])
        assert [(f.kind, f.id) for f in failures] == [("story", "twice")]
        assert index.document_counts()["stories"] == 2
        assert [h.story_id for h in index.search(SearchQuery(text="desalination")).hits] == []
        assert [h.story_id for h in index.search(SearchQuery(text="streik", language="de")).hits] == ["s3"]
        fixed = replace(twice, tags=("local",))
        assert index.write([IndexChange("story", "twice", fixed, 2)]) == []  # its next version is written
        assert [h.story_id for h in index.search(SearchQuery(text="desalination")).hits] == ["twice"]
    finally:
        index.close()
