"""Agency credits, not mentions: the rule families, and precision/recall over labelled fixtures in ten languages."""

from __future__ import annotations

import unicodedata
from collections import Counter

import pytest
from agency_fixtures import FIXTURES

from pipeline.agency import detect_credit

BODY = "Officials said the measure would take effect next month.\n\nCritics called the plan rushed."


def _flat(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).split())


def test_fixtures_cover_ten_languages_with_credits_and_mentions() -> None:
    credits = Counter(f.language for f in FIXTURES if f.agency)
    mentions = Counter(f.language for f in FIXTURES if not f.agency)
    languages = {"en", "de", "fr", "es", "it", "pt", "ru", "ar", "zh", "ja"}
    assert set(credits) == set(mentions) == languages
    assert min(credits.values()) >= 10 and min(mentions.values()) >= 10


def test_credits_on_the_fixtures_have_precision_and_recall_and_evidence() -> None:
    true_positives = false_positives = false_negatives = 0
    wrong: list[str] = []
    for fixture in FIXTURES:
        credit = detect_credit(fixture.text, fixture.author)
        found = credit.agency if credit else None
        if found is not None and found == fixture.agency:
            true_positives += 1
        else:
            false_positives += found is not None
            false_negatives += fixture.agency is not None
            wrong.append(f"{fixture.language}: {fixture.agency} != {found}: {fixture.text[:60]!r}")
        if credit is not None:
            # The evidence is the line (or author metadata) the credit was read from.
            source = _flat(fixture.author or "") if credit.rule == "author" else _flat(fixture.text)
            assert credit.rule and credit.evidence.removeprefix("author: ").strip("…") in source
        if credit is not None and found == fixture.agency:
            assert credit.kind == fixture.kind, fixture.text
    precision = true_positives / (true_positives + false_positives)
    recall = true_positives / (true_positives + false_negatives)
    assert precision >= 0.98 and recall >= 0.95, (precision, recall, wrong)


@pytest.mark.parametrize(
    ("text", "agency"),
    [
        ("WASHINGTON (AP) — The Senate voted.", "AP"),
        ("KYIV, Sept 30 (Reuters) - Ukraine said on Monday.", "Reuters"),
        ("Frankfurt/Main (dpa/lhe) - Der Flughafen meldet Rekordzahlen.", "dpa"),
        ("MADRID, 5 dic (EFE).- El Gobierno aprobó los presupuestos.", "EFE"),
        ("(ANSA) - ROMA, 05 DIC - Il governo ha approvato la manovra.", "ANSA"),
        ("МОСКВА, 5 дек - РИА Новости. Президент провел совещание.", "RIA Novosti"),
        ("МОСКВА, 5 декабря. /ТАСС/. Госдума приняла бюджет.", "TASS"),
        ("Москва. 5 декабря. INTERFAX.RU - Центробанк сохранил ставку.", "Interfax"),
        ("القاهرة (رويترز) - قال البنك المركزي", "Reuters"),
        ("新华社北京12月5日电（记者 王磊）国务院常务会议5日召开。", "Xinhua"),
        ("【ワシントン共同】米上院は4日、法案を可決した。", "Kyodo"),
        ("［東京 5日 ロイター］ - 日経平均は反発した。", "Reuters"),
        ("(서울=연합뉴스) 김철수 기자 = 정부는 5일 발표했다.", "Yonhap"),
        ("LONDON (Agencies) - Markets fell.", "agencies"),
    ],
)
def test_a_dateline_in_the_first_lines_is_a_full_credit(text: str, agency: str) -> None:
    credit = detect_credit(f"{text}\n\n{BODY}")
    assert credit is not None and (credit.agency, credit.kind, credit.rule) == (agency, "full", "dateline")
    assert credit.evidence == " ".join(unicodedata.normalize("NFKC", text).split())


@pytest.mark.parametrize(
    ("author", "agency"),
    [
        ("By The Associated Press", "AP"),
        ("AP", "AP"),
        ("Jovan Kesler, Reuters", "Reuters"),
        ("Reuters Staff", "Reuters"),
        ("dpa", "dpa"),
        ("Redacción EFE", "EFE"),
        ("JOHN DOE Associated Press", "AP"),
        ("Staff and agencies", "agencies"),
        ("ТАСС", "TASS"),
        ("By JOHN DOE, AP Business Writer", "AP"),
    ],
)
def test_the_author_metadata_is_a_byline_credit(author: str, agency: str) -> None:
    credit = detect_credit(f"The council met on Monday.\n\n{BODY}", author)
    assert credit is not None and (credit.agency, credit.kind, credit.rule) == (agency, "full", "author")
    assert credit.evidence == f"author: {author}"


@pytest.mark.parametrize("author", ["Ravi Kumar", "Metro Wire staff", "Coastline Daily News Desk", "AP Dhillon fan club"])
def test_an_author_that_is_not_an_agency_credits_none(author: str) -> None:
    assert detect_credit(f"The council met on Monday.\n\n{BODY}", author) is None


def test_an_outlets_byline_with_an_agency_is_a_contributor_credit() -> None:
    credit = detect_credit(f"Le Sénat a voté le texte.\n\n{BODY}", "Le Figaro avec AFP")
    assert credit is not None and (credit.agency, credit.kind, credit.rule) == ("AFP", "contributor", "author")
    # ... unless the text gives the agency's full credit.
    credit = detect_credit(f"Le Sénat a voté le texte.\n\n{BODY}\n\n(Reuters)", "Le Figaro avec AFP")
    assert credit is not None and (credit.agency, credit.kind) == ("Reuters", "full")


def test_a_byline_line_in_the_text_is_a_credit() -> None:
    credit = detect_credit(f"By The Associated Press\n\nThe storm made landfall.\n\n{BODY}")
    assert credit is not None and (credit.agency, credit.rule, credit.evidence) == ("AP", "byline", "By The Associated Press")


@pytest.mark.parametrize(
    ("last", "agency", "rule"),
    [
        ("— Reuters", "Reuters", "sign-off"),
        ("(AFP)", "AFP", "sign-off"),
        ("The vote is on Thursday. (AFP)", "AFP", "sign-off"),
        ("The vote is on Thursday. — Reuters", "Reuters", "sign-off"),
        ("Quelle: dpa", "dpa", "sign-off"),
        ("来源：新华社", "Xinhua", "sign-off"),
        ("(Reporting by Anna Lee; Editing by Mark Potter)", "Reuters", "reuters-editing"),
        ("© dpa-infocom, dpa:261205-99-123456/3", "dpa", "dpa-code"),
        ("Copyright 2026 The Associated Press. All rights reserved.", "AP", "copyright"),
        ("The AP receives support from the Foundation. AP is solely responsible for all content.", "AP", "sign-off"),
        ("(This story has not been edited and is auto-generated from a syndicated feed.)", "agencies", "wire-feed-note"),
    ],
)
def test_a_sign_off_in_the_last_lines_is_a_full_credit(last: str, agency: str, rule: str) -> None:
    credit = detect_credit(f"The council met on Monday.\n\n{BODY}\n\n{last}")
    assert credit is not None and (credit.agency, credit.kind, credit.rule) == (agency, "full", rule)


@pytest.mark.parametrize(
    ("last", "agency", "rule"),
    [
        ("The Associated Press contributed to this report.", "AP", "contributed"),
        ("Associated Press writer Ilse Varga in Lesk contributed.", "AP", "contributed"),
        ("Reuters contributed reporting.", "Reuters", "contributed"),
        ("Information from Reuters was used in this report.", "Reuters", "contributed"),
        ("(With inputs from agencies)", "agencies", "with-material"),
        ("(With inputs from PTI)", "PTI", "with-material"),
        ("With wires", "agencies", "with-material"),
        ("avec AFP", "AFP", "with-material"),
        ("mit Material von dpa", "dpa", "with-material"),
        ("Con información de EFE", "EFE", "with-material"),
        ("Com informações da Reuters", "Reuters", "with-material"),
        ("По материалам ТАСС", "TASS", "with-material"),
        ("Contributing: Jane Doe, USA TODAY; The Associated Press", "AP", "contributed"),
    ],
)
def test_a_contribution_in_the_last_lines_is_a_contributor_credit(last: str, agency: str, rule: str) -> None:
    credit = detect_credit(f"The council met on Monday.\n\n{BODY}\n\n{last}")
    assert credit is not None and (credit.agency, credit.kind, credit.rule) == (agency, "contributor", rule)


@pytest.mark.parametrize(
    "text",
    [
        "The minister said the figures were accurate, according to Reuters.",
        "He told AFP that the bill would pass.",
        "Inflation will slow, a Reuters poll of economists showed.",
        "The company said in an email to The Associated Press that it would appeal.",
        "Laut dpa will die Regierung den Haushalt beschließen.",
        "Selon l'AFP, le ministre a démissionné.",
        "Según EFE, el ministro presentó su dimisión.",
        "По данным ТАСС, министр подал в отставку.",
        "据新华社报道，国务院5日召开会议。",
        "AP EAMCET results were announced by the board.",
    ],
)
def test_a_mention_is_not_a_credit(text: str) -> None:
    assert detect_credit(f"{text}\n\n{BODY}") is None
    assert detect_credit(f"The council met.\n\n{BODY}\n\n{text}") is None


@pytest.mark.parametrize(
    "caption",
    ["Smoke rises over the port. (AP Photo/Lena Brook)", "Photo: AP", "Foto: Lena Brandl/dpa", "© AFP",
     "Protesters march. REUTERS/Ana Ferrol", "Bild: AFP", "Фото: РИА Новости", "新华社发（王磊摄）",
     "Photo: Jane Doe/AFP/", "Smoke over the port (Photo: Reuters)"],
)
def test_a_photo_credit_is_not_a_credit(caption: str) -> None:
    assert detect_credit(f"{caption}\n\n{BODY}") is None
    assert detect_credit(f"The council met.\n\n{BODY}\n\n{caption}") is None


def test_a_dateline_followed_by_a_mention_of_photos_is_a_credit() -> None:
    credit = detect_credit(f"PARIS (AFP) - Photos of the fire spread online.\n\n{BODY}")
    assert credit is not None and (credit.agency, credit.rule) == ("AFP", "dateline")


def test_a_long_last_paragraph_keeps_its_sign_off() -> None:
    credit = detect_credit(f"The council met.\n\n{BODY}\n\n{'The vote is on Thursday. ' * 30}(AFP)")
    assert credit is not None and (credit.agency, credit.rule) == ("AFP", "sign-off")
    assert credit.evidence.startswith("…") and credit.evidence.endswith("Thursday. (AFP)")
    assert len(credit.evidence) <= 200


def test_a_credit_in_the_middle_of_a_long_text_is_not_looked_for() -> None:
    middle = "\n\n".join(["The council met on Monday."] * 5 + ["PARIS (AFP) - A quoted wire story.", "— Reuters"]
                         + ["The council met on Monday."] * 5)
    assert detect_credit(middle) is None


def test_a_full_credit_wins_over_a_contribution() -> None:
    text = f"The council met on Monday.\n\n{BODY}\n\nAFP contributed to this report.\n— Reuters"
    credit = detect_credit(text)
    assert credit is not None and (credit.agency, credit.kind) == ("Reuters", "full")
    credit = detect_credit(f"LONDON (Reuters) - The bank said.\n\n{BODY}\n\nAFP contributed to this report.")
    assert credit is not None and (credit.agency, credit.rule) == ("Reuters", "dateline")
