"""Every search backend passes the same suite (SQLite FTS5 here; Elasticsearch joins via the fixture)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pipeline.models import (
    Article,
    IndexChange,
    IndexedArticle,
    Membership,
    SearchQuery,
    Source,
    Story,
    TextSource,
)
from pipeline.search.base import SearchIndex

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def story(story_id: str, title: str, text: str, outlets: list[str], *, days: int = 0,
          language: str = "en", agency: str | None = None, tags: tuple[str, ...] = ()) -> Story:
    at = T0 + timedelta(days=days)
    return Story(
        id=story_id,
        title=title,
        text=text,
        summary=text[:100],
        sources=tuple(Source(f"{story_id}-{o}", o, f"https://{o}.example/{story_id}", title, at) for o in outlets),
        first_seen=at,
        last_seen=at,
        language=language,
        agency=agency,
        tags=tags,
    )


STORIES = [
    story("s1", "Dockworkers strike at Harbor City port",
          "Dockworkers walked out on Monday over pay. The strike halted container traffic.",
          ["ledger", "gazette", "courier"], agency="Reuters", tags=("labour", "local")),
    story("s2", "Council approves desalination plant",
          "The city council approved a desalination plant after a long drought debate. Port officials welcomed it.",
          ["signal"], days=2, tags=("local",)),
    story("s3", "Hafenarbeiter streiken weiter", "Die Hafenarbeiter setzen ihren Streik fort.",
          ["zeitung"], days=1, language="de", agency="dpa"),
]


def load(index: SearchIndex) -> None:
    index.setup()
    index.setup()  # idempotent
    assert index.write([IndexChange("story", s.id, s, 1) for s in STORIES]) == []
    refresh = getattr(index, "refresh", None)
    if refresh:
        refresh()


def test_title_match_ranks_first_and_snippet_highlights(search_index: SearchIndex) -> None:
    load(search_index)
    results = search_index.search(SearchQuery(text="port strike"))
    assert [h.story_id for h in results.hits][:1] == ["s1"]
    assert results.total >= 1
    hit = results.hits[0]
    assert "[[" in hit.snippet and "]]" in hit.snippet
    assert hit.outlets == ("courier", "gazette", "ledger")
    assert hit.article_count == 3 and hit.agency == "Reuters"


def test_every_word_must_match_and_syntax_is_not_an_error(search_index: SearchIndex) -> None:
    load(search_index)
    assert search_index.search(SearchQuery(text="desalination strike")).total == 0
    assert search_index.search(SearchQuery(text='"desalination" (plant -*')).total == 1
    assert search_index.search(SearchQuery(text="  ")).total == 0


def test_a_query_without_a_word_answers_in_the_shape_of_any_other_miss(search_index: SearchIndex) -> None:
    load(search_index)
    miss = search_index.search(SearchQuery(text="desalination strike"))
    for no_word in ("  ", "\ufffd\ufffd", "?!"):  # the API reads %ff%fe as two replacement characters
        assert search_index.search(SearchQuery(text=no_word)) == miss
    assert set(miss.facets) == {"outlet", "agency", "day", "language"}


def test_filters_and_facets(search_index: SearchIndex) -> None:
    load(search_index)
    assert [h.story_id for h in search_index.search(SearchQuery(text="port", outlet="signal")).hits] == ["s2"]
    assert search_index.search(SearchQuery(text="port", since=T0 + timedelta(days=1))).total == 1
    assert search_index.search(SearchQuery(text="port", until=T0 + timedelta(hours=1))).total == 1
    assert [h.story_id for h in search_index.search(SearchQuery(text="streik", language="de")).hits] == ["s3"]
    assert search_index.search(SearchQuery(text="streik", language="en")).total == 0
    assert search_index.search(SearchQuery(text="hafenarbeiter", agency="dpa")).total == 1
    results = search_index.search(SearchQuery(text="port"))
    assert results.facets["outlet"]["ledger"] == 1
    assert results.facets["agency"] == {"Reuters": 1}
    assert sum(results.facets["day"].values()) == 2
    assert results.facets["language"] == {"en": 2}


def test_tag_filter(search_index: SearchIndex) -> None:
    load(search_index)
    assert [h.story_id for h in search_index.search(SearchQuery(text="port", tag="local", sort="recency")).hits] == [
        "s2", "s1"
    ]
    hits = search_index.search(SearchQuery(text="port", tag="labour")).hits
    assert [(h.story_id, h.tags) for h in hits] == [("s1", ("labour", "local"))]
    assert search_index.search(SearchQuery(text="port", tag="lab")).total == 0  # whole tags only
    assert search_index.search(SearchQuery(text="streik", tag="local")).total == 0
    assert search_index.search(SearchQuery(text="streik")).hits[0].tags == ()


def test_sort_by_recency(search_index: SearchIndex) -> None:
    load(search_index)
    hits = search_index.search(SearchQuery(text="port", sort="recency")).hits
    assert [h.story_id for h in hits] == ["s2", "s1"]


def test_rewrite_and_delete_are_idempotent(search_index: SearchIndex) -> None:
    load(search_index)
    load(search_index)
    assert search_index.search(SearchQuery(text="dockworkers")).total == 1
    renamed = story("s1", "Dockworkers end strike", "Agreement reached.", ["ledger"])
    assert search_index.write([IndexChange("story", "s1", renamed, 2)]) == []
    assert search_index.write([IndexChange("story", "s2", None, 2), IndexChange("story", "s2", None, 2)]) == []
    refresh = getattr(search_index, "refresh", None)
    if refresh:
        refresh()
    assert search_index.search(SearchQuery(text="walked")).total == 0
    assert search_index.search(SearchQuery(text="agreement")).hits[0].title == "Dockworkers end strike"
    assert search_index.search(SearchQuery(text="desalination")).total == 0


def test_an_older_version_arriving_later_changes_nothing(search_index: SearchIndex) -> None:
    search_index.setup()
    newer = story("s1", "Dockworkers end strike", "Agreement reached.", ["ledger"])
    older = story("s1", "Dockworkers strike", "Walkout.", ["ledger"])
    assert search_index.write([IndexChange("story", "s1", newer, 5)]) == []
    assert search_index.write([IndexChange("story", "s1", older, 4)]) == []  # not a failure: a newer one is there
    refresh = getattr(search_index, "refresh", lambda: None)
    refresh()
    assert [h.title for h in search_index.search(SearchQuery(text="dockworkers")).hits] == ["Dockworkers end strike"]
    assert search_index.write([IndexChange("story", "s1", None, 6)]) == []
    assert search_index.write([IndexChange("story", "s1", newer, 5)]) == []  # not brought back
    refresh()
    assert search_index.search(SearchQuery(text="dockworkers")).total == 0


def test_articles_are_written_with_their_cluster(search_index: SearchIndex) -> None:
    search_index.setup()
    article = Article(
        id="a1", url="https://ledger.example/1", outlet="ledger", title="Strike", text="Dockworkers walked out.",
        published=T0, fetched_at=T0, text_source=TextSource.PAGE,
    )
    doc = IndexedArticle(article, Membership("a1", "s1", "a0", 0.4, 0.95))
    assert search_index.write([IndexChange("article", "a1", doc, 1), IndexChange("article", "a1", doc, 1)]) == []
    assert search_index.write([IndexChange("article", "a1", None, 2)]) == []


def test_an_article_from_a_feed_entry_without_a_link_is_indexed_without_one(search_index: SearchIndex) -> None:
    search_index.setup()
    article = Article(
        id="a2", url="urn:newsagg:wire:0123456789abcdef0123456789abcdef", outlet="wire", title="Flash",
        text="Port reopens.", published=T0, fetched_at=T0, text_source=TextSource.FEED_CONTENT,
        text_source_reason="the feed entry has no link", tags=("local",),
    )
    linkless = story("s9", "Port reopens", "Port reopens.", [])
    linkless = Story(**{**{f: getattr(linkless, f) for f in linkless.__dataclass_fields__},
                        "sources": (Source("a2", "wire", None, "Flash", T0),), "tags": ("local",)})
    changes = [IndexChange("article", "a2", IndexedArticle(article, Membership("a2", "s9")), 1),
               IndexChange("story", "s9", linkless, 1)]
    assert search_index.write(changes) == []
    refresh = getattr(search_index, "refresh", None)
    if refresh:
        refresh()
    assert [h.story_id for h in search_index.search(SearchQuery(text="reopens", tag="local")).hits] == ["s9"]
    client = getattr(search_index, "client", None)
    if client is not None:  # Elasticsearch: no bogus link for Kibana to show
        alias = search_index.alias  # type: ignore[attr-defined]
        assert client.get(index=alias("articles"), id="a2")["_source"]["url"] is None
        assert client.get(index=alias("stories"), id="s9")["_source"]["sources"][0]["url"] is None


WORLD = [
    story("w-de", "Hafenarbeiter streiken weiter", "In den Häfen von Hamburg und Bremen ruht die Arbeit.",
          ["zeitung"], language="de"),
    story("w-zh", "上海港码头工人罢工", "上海港的码头工人周一停工，集装箱运输陷入停顿。", ["xinwen"], language="zh"),
    story("w-ja", "横浜港で港湾労働者がストライキ", "港湾局によると、コンテナの輸送が止まった。", ["shimbun"], language="ja"),
    story("w-fr", "Grève des dockers au Havre", "La grève paralyse le trafic et prive la ville d'électricité.",
          ["journal"], language="fr"),
    story("w-en", "Dockworkers strike again", "Strikes at the port of Felixstowe halted traffic.", ["ledger"]),
]


def test_each_language_is_searched_by_its_own_words(search_index: SearchIndex) -> None:
    search_index.setup()
    assert search_index.write([IndexChange("story", s.id, s, 1) for s in WORLD]) == []
    getattr(search_index, "refresh", lambda: None)()

    def found(text: str, language: str | None = None) -> list[str]:
        return sorted(h.story_id for h in search_index.search(SearchQuery(text=text, language=language)).hits)

    # German inflections meet at their stem: streiken, Streiks; Häfen, Hafens.
    assert found("Streiks") == ["w-de"]
    assert found("Hafens", language="de") == ["w-de"]
    # Chinese and Japanese by a word of two or three characters, not by a single shared one.
    assert found("罢工") == ["w-zh"]
    assert found("码头 停工") == ["w-zh"]
    assert found("労働者") == ["w-ja"]
    assert found("輸送") == ["w-ja"]
    assert found("港湾 罢工") == []
    # French with or without its accents, singular or plural.
    assert found("grèves") == ["w-fr"] == found("electricite")
    assert found("strike") == ["w-en"]  # English "strikes", not German "streiken"
    hit = search_index.search(SearchQuery(text="罢工")).hits[0]
    assert hit.title == "上海港码头工人罢工" and hit.language == "zh"
