"""Matching in every language the wires publish in: scripts, datelines, credits, spelling variants.

The stories are the multilingual benchmark's (bench/dedup/multilingual), so the
tests and the benchmark judge the same texts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.dedup import multilingual
from bench.dedup.corpus import Doc
from bench.dedup.metrics import merged_apart, scores
from pipeline.cli import main
from pipeline.clustering.engine import cluster_documents
from pipeline.clustering.normalize import fold, is_boilerplate_line, normalize, tokens
from pipeline.models import Article, TextSource
from pipeline.settings import ClusteringSettings


def body(text: str) -> tuple[str, ...]:
    return normalize("", text).body


def articles(docs: list[Doc]) -> list[Article]:
    return [
        Article(
            id=d.id,
            url=f"https://example.invalid/{d.id}",
            outlet=d.outlet,
            title=d.title,
            text=d.text,
            published=d.published,
            fetched_at=d.published,
            text_source=TextSource.INPUT,
        )
        for d in docs
    ]


def test_every_language_clusters_as_labelled() -> None:
    corpus = multilingual.generate()
    memberships = cluster_documents(articles(corpus.docs), ClusteringSettings())
    predicted = [m.cluster_id for m in memberships]
    truth = [d.label for d in corpus.docs]
    assert merged_apart(truth, predicted, corpus.must_apart)["same topic"]["merged"] == 0
    by_language = {}
    for language in multilingual.LANGUAGES:
        members = [i for i, d in enumerate(corpus.docs) if multilingual.language_of(d) == language]
        by_language[language] = scores([truth[i] for i in members], [predicted[i] for i in members])["f1"]
    assert by_language == dict.fromkeys(multilingual.LANGUAGES, 1.0)


@pytest.mark.parametrize(
    "dateline",
    [
        "PARIS (AFP) - ",
        "PARIS, 5 d\u00e9c 2025 (AFP) - ",
        "BERLIN (dpa) - ",
        "Hamburg (dpa/lno) - ",
        "MADRID, 5 dic (EFE) - ",
        "Castell\u00f3n, 5 dic (EFE).- ",
        "(ANSA) - ROMA, 5 DIC - ",
        "Lisboa, 05 dez 2025 (Lusa) - ",
        "\u041c\u041e\u0421\u041a\u0412\u0410, 5 \u0434\u0435\u043a - \u0420\u0418\u0410 \u041d\u043e\u0432\u043e\u0441\u0442\u0438. ",
        "\u041c\u041e\u0421\u041a\u0412\u0410, 5 \u0434\u0435\u043a\u0430\u0431\u0440\u044f. /\u0422\u0410\u0421\u0421/. ",
        "\u0627\u0644\u0642\u0627\u0647\u0631\u0629 (\u0631\u0648\u064a\u062a\u0631\u0632) - ",
        "\u062f\u0628\u064a\u060c 5 \u062f\u064a\u0633\u0645\u0628\u0631 (\u0623 \u0641 \u0628) - ",
        "\u65b0\u534e\u793e\u5317\u4eac12\u67085\u65e5\u7535",
        "\u65b0\u534e\u793e\u5317\u4eac12\u67085\u65e5\u7535\uff08\u8bb0\u8005 \u5f20\u660e\uff09",
        "\u3010\u30ef\u30b7\u30f3\u30c8\u30f3\u5171\u540c\u3011",
    ],
)
def test_datelines_of_every_language_are_stripped(dateline: str) -> None:
    for language in ("fr", "ru", "ar", "zh", "ja"):
        paragraph = multilingual.load(language)["stories"][0]["paragraphs"][0]
        assert body(dateline + paragraph) == body(paragraph)


@pytest.mark.parametrize("language", multilingual.LANGUAGES)
def test_credit_teaser_and_caption_lines_of_every_language_are_dropped(language: str) -> None:
    data = multilingual.load(language)
    lines = [*data["credits"], data["teaser"].format(title="x"), data["caption"].format(name=data["names"][0])]
    for line in lines:
        assert is_boilerplate_line(fold(line)), line
    for story in data["stories"]:
        for paragraph in story["paragraphs"] + story.get("local", []):
            assert not is_boilerplate_line(fold(paragraph)), paragraph


@pytest.mark.parametrize(
    "line",
    [
        "Avec 200 morts, le bilan s'alourdit.",
        "Voir aussi les enfants jouer est une joie.",
        "Con informaci\u00f3n de la polic\u00eda, el juez decidi\u00f3.",
        "Mit Material von der Baustelle wurde gebaut.",
        "Foto e video sono stati diffusi sui social.",
    ],
)
def test_short_story_lines_that_open_like_credits_are_kept(line: str) -> None:
    assert not is_boilerplate_line(fold(line))


@pytest.mark.parametrize(
    ("variant", "standard"),
    [
        # Arabic: alef with hamza or madda, alef maqsura, taa marbuta, tatweel, harakat.
        ("\u0623\u0639\u0644\u0646\u062a \u0625\u0644\u0649 \u0622\u062e\u0631 \u0645\u062f\u0631\u0633\u0629",
         "\u0627\u0639\u0644\u0646\u062a \u0627\u0644\u064a \u0627\u062e\u0631 \u0645\u062f\u0631\u0633\u0647"),
        ("\u0642\u0640\u0640\u0627\u0644 \u0645\u0650\u0635\u0652\u0631", "\u0642\u0627\u0644 \u0645\u0635\u0631"),
        ("\uff21\uff22\uff23 \uff11\uff12\u6708\uff15\u65e5 \uff76\uff80\uff76\uff85", "ABC 12\u67085\u65e5 \u30ab\u30bf\u30ab\u30ca"),
        ("Stra\u00dfe gro\u00df", "Strasse gross"),
        ("\u0441\u0435\u0440\u044c\u0451\u0437\u043d\u044b\u0439 \u0451\u0436", "\u0441\u0435\u0440\u044c\u0435\u0437\u043d\u044b\u0439 \u0435\u0436"),
        ("\u00abc\u2019est\u00bb \u2014 \u201eja\u201c", "\"c'est\" - \"ja\""),
    ],
)
def test_spelling_variants_are_one_word(variant: str, standard: str) -> None:
    assert tokens(fold(variant)) == tokens(fold(standard))


def test_scripts_without_spaces_give_character_ngrams_and_others_words() -> None:
    assert tokens("\u65b0\u578b\u30ef\u30af\u30c1\u30f3") == ["\u65b0\u578b", "\u578b\u30ef", "\u30ef\u30af", "\u30af\u30c1", "\u30c1\u30f3"]
    # Mixed text: the Latin part stays a word, the Han run becomes bigrams.
    assert tokens("G20\u5cf0\u4f1a") == ["g20", "\u5cf0\u4f1a"]
    assert tokens("\u0e01\u0e23\u0e38\u0e07\u0e40\u0e17\u0e1e") == ["\u0e01\u0e23\u0e38", "\u0e23\u0e38\u0e07", "\u0e38\u0e07\u0e40", "\u0e07\u0e40\u0e17", "\u0e40\u0e17\u0e1e"]
    # Indic vowel signs stay inside their word.
    assert tokens("\u0939\u093f\u0928\u094d\u0926\u0940 \u092d\u093e\u0937\u093e") == ["\u0939\u093f\u0928\u094d\u0926\u0940", "\u092d\u093e\u0937\u093e"]
    assert tokens("Der Zug f\u00e4hrt um 5 Uhr, \u043f\u043e\u0435\u0437\u0434 \u0438\u0434\u0451\u0442") == [
        "der", "zug", "f\u00e4hrt", "um", "5", "uhr", "\u043f\u043e\u0435\u0437\u0434", "\u0438\u0434\u0451\u0442",
    ]


def test_newsagg_dedup_clusters_chinese_and_japanese_copies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The wire story and one outlet's copy of a Chinese and a Japanese story,
    # and a different story on the same topic in each language.
    picked: list[Doc] = []
    for language, pair, alone in (("zh", "zh-snow", "zh-snow-farm"), ("ja", "ja-typhoon", "ja-typhoon-after")):
        docs = multilingual.generate_language(language).docs
        picked += [d for d in docs if d.label == pair][:2] + [d for d in docs if d.label == alone][:1]
    source = tmp_path / "in.jsonl"
    source.write_text(
        "".join(json.dumps({"id": d.id, "title": d.title, "text": d.text}, ensure_ascii=False) + "\n" for d in picked),
        encoding="utf-8",
    )
    target = tmp_path / "out.jsonl"
    assert main(["dedup", str(source), "-o", str(target)]) == 0
    capsys.readouterr()
    cluster = {row["id"]: row["cluster_id"] for row in map(json.loads, target.read_text().splitlines())}
    groups = {frozenset(d.id for d in picked if cluster[d.id] == c) for c in cluster.values()}
    expected = {frozenset(d.id for d in picked if d.label == label) for label in {d.label for d in picked}}
    assert groups == expected
