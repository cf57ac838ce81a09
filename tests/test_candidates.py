"""Second opinions on trafilatura's text: readability where trafilatura took the wrong block or a part of the article."""

from __future__ import annotations

import json
import logging

import lxml.html
import pytest

from pipeline.candidates import (
    FAR_SHORT_OF_PARAGRAPHS,
    MAX_LIST_ITEMS,
    dropped_list_chars,
    list_items,
    missing_chars,
    paragraph_chars,
    readability_text,
    second_opinion,
    stated_body,
    without_furniture,
)
from pipeline.extraction import extract_page


_STORY = [
    "The council of the small town voted on Tuesday evening to close the old bridge over the river for two years, "
    "because engineers had found that three of its supports were cracked and could no longer carry heavy lorries.",
    "Residents who cross it every day to reach the station will have to use the northern crossing instead, which the "
    "council says will add about ten minutes to most journeys and perhaps more during the morning rush hour.",
    "The mayor said that she was sorry for the trouble it would cause to so many people, but that the safety of "
    "everyone who uses the bridge had to come first, and that the repairs could not be put off any longer.",
]
_SIDEBAR = "Weather tomorrow: sunny spells, light winds, highs of 18 degrees"


def _tree(paragraphs: list[str]) -> lxml.html.HtmlElement:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return lxml.html.document_fromstring(
        f"<html><body><aside><p>{_SIDEBAR}</p></aside><div class='story'>{body}</div></body></html>"
    )


def test_readability_replaces_a_text_from_the_wrong_block() -> None:
    tree = _tree(_STORY)
    assert second_opinion(tree, _SIDEBAR, paragraph_chars(tree)) == "\n\n".join(_STORY)


def test_the_paragraphs_trafilatura_left_out_of_the_article_are_put_in_where_they_are() -> None:
    tree = _tree(_STORY)
    # trafilatura kept only the middle paragraph, far short of the page's paragraph text:
    # the same words as readability's (no other block), whose two other paragraphs, longer
    # together than it, go before and after it
    assert second_opinion(tree, _STORY[1], paragraph_chars(tree)) == "\n\n".join(_STORY)


def test_a_page_readability_cannot_read_raises_without_a_traceback_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    # extract_page reports a failed second opinion in one warning line and keeps trafilatura's text.
    with pytest.raises(Exception, match="Document is empty"):
        readability_text("")
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_a_text_missing_less_than_its_length_is_kept() -> None:
    # two of three paragraphs: the one readability adds is shorter than the text (a few
    # paragraphs more are more often boilerplate than article)
    text = "\n\n".join(_STORY[:2])
    tree = _tree(_STORY + [_SIDEBAR] * 16)  # more paragraph text, so that the text is far short of it
    assert len(text) < FAR_SHORT_OF_PARAGRAPHS * paragraph_chars(tree)
    assert second_opinion(tree, text, paragraph_chars(tree)) == text


def test_the_stated_article_body_is_found_in_a_graph_and_unescaped() -> None:
    story = " ".join(_STORY).replace("the river", "the river &amp; the canal")
    scripts = [
        "{not json",  # a broken script costs nothing but itself
        json.dumps({"@graph": [{"@type": "WebPage"}, {"@type": "NewsArticle", "articleBody": story}]}),
        json.dumps({"@type": "NewsArticle", "articleBody": _SIDEBAR}),  # a teaser's body, too short
    ]
    assert stated_body(scripts) == story.replace("&amp;", "&")
    assert stated_body(scripts[:1] + scripts[2:]) is None


_TITLE = "Old bridge to close for two years"


def _article_page(
    before: str = "", between: str = "", after: str = "", author: str = "Jane Miller", title: str = _TITLE
) -> bytes:
    """A news page whose article container holds the story with ``before``, ``between`` (after
    its first paragraph) and ``after`` it."""
    first, *rest = (f"<p>{p}</p>" for p in _STORY)
    return (
        f"<html><head><title>{title}</title><meta name='author' content='{author}'></head><body>"
        f"<nav><a href='/'>Home</a></nav><article>{before}{first}{between}{''.join(rest)}{after}</article>"
        "<footer>Contact</footer></body></html>"
    ).encode()


def _text(page: bytes) -> str:
    found = extract_page(page, "https://gazette.example/news/bridge")
    assert found is not None
    return found.text


def test_a_first_line_repeating_the_headline_is_left_out() -> None:
    assert _text(_article_page(before=f"<h2>{_TITLE}</h2>")) == "\n\n".join(_STORY)
    # a heading that is not the headline stays
    assert _text(_article_page(before="<h2>Engineers found cracks</h2>")).startswith("Engineers found cracks\n\n")


def test_a_first_line_with_the_titles_first_words_is_the_headline() -> None:
    # the title goes on after the headline ("..., council says"); a two-word start is no headline
    long_title = f"{_TITLE}, council says"
    assert _text(_article_page(before=f"<h2>{_TITLE}</h2>", title=long_title)) == "\n\n".join(_STORY)
    assert _text(_article_page(before="<h2>Old bridge</h2>", title=long_title)).startswith("Old bridge\n\n")


def _news_page(h1: str, news: bool = True) -> bytes:
    """A page whose ``<h1>`` follows a kicker and differs from its ``<title>``; a news article's when ``news``."""
    schema = "<script type='application/ld+json'>{\"@type\": \"NewsArticle\"}</script>" if news else ""
    story = "".join(f"<p>{p}</p>" for p in _STORY)
    return (
        f"<html><head><title>Bridge closure: what drivers need to know</title>{schema}</head><body>"
        f"<nav><a href='/'>Home</a></nav><article><p>Transport</p><h1>{h1}</h1>{story}</article></body></html>"
    ).encode()


def test_a_news_pages_h1_among_the_first_lines_is_the_headline() -> None:
    # the <h1> is not the title, and a kicker comes first: the title rule cannot see it
    assert _text(_news_page(_TITLE)) == "\n\n".join(["Transport", *_STORY])
    # a two-word <h1> names a section; the <h1> of a page that is no news article is its text (WCXB)
    assert _text(_news_page("Bridge closes")).startswith("Transport\n\nBridge closes\n\n")
    assert _text(_news_page(_TITLE, news=False)).startswith(f"Transport\n\n{_TITLE}\n\n")


def test_page_furniture_inside_the_article_is_left_out() -> None:
    furniture = (
        "<p>Advertisement</p><p>Read more: Council raises parking fees in the town centre</p><p>Share this article</p>"
    )
    related = "<h3>Related stories</h3><ul><li>New ferry timetable from May</li><li>Station car park to grow</li></ul>"
    notice = "<p>Sign up for our daily newsletter to get the news of the town first.</p>"
    assert _text(_article_page(between=furniture, after=related + notice)) == "\n\n".join(_STORY)


@pytest.mark.parametrize(
    "heading",
    ["Ähnliche Artikel", "Weiterführende Links", "Noticias relacionadas", "Czytaj więcej", "Читайте также", "関連記事",
     "おすすめ情報", "相关阅读", "관련 기사"],
)
def test_a_related_stories_heading_in_more_languages_is_furniture(heading: str) -> None:
    story = "\n\n".join(_STORY)
    assert without_furniture(f"{story}\n\n{heading}\n\n- Station car park to grow\n\n{_STORY[0]}") == f"{story}\n\n{_STORY[0]}"


@pytest.mark.parametrize("opening", ["<div class='modal' role='dialog'>", "<div aria-modal='true'>", "<dialog open>"])
def test_a_dialog_over_the_page_is_not_article(opening: str) -> None:
    popup = (
        f"{opening}<p>Want to republish this story? We are happy for our stories to be shared, provided that you "
        f"credit the author and link back to the page.</p></{opening[1:].split()[0]}>"
    )
    assert _text(_article_page(between=popup)) == "\n\n".join(_STORY)


@pytest.mark.parametrize("opening", ["<html role='dialog'><body>", "<html><body aria-modal='true'>"])
def test_a_page_that_calls_itself_a_dialog_is_still_read(opening: str) -> None:
    story = "".join(f"<p>{p}</p>" for p in _STORY)
    assert _text(f"{opening}<article>{story}</article></body></html>".encode()) == "\n\n".join(_STORY)


def test_a_list_or_a_sentence_that_is_article_stays() -> None:
    # a list after a heading that is not a related-stories label, a sentence that names a label's word
    listing = "<h3>Closed roads</h3><ul><li>Bridge Street</li><li>Mill Lane</li></ul>"
    mention = "<p>The council will share the engineers' report with residents.</p>"
    assert _text(_article_page(after=mention + listing)) == "\n\n".join(
        [*_STORY, "The council will share the engineers' report with residents.", "Closed roads", "- Bridge Street", "- Mill Lane"]
    )
    # an agency's sign-off is a notice that credits the agency
    sign_off = "Copyright 2024 The Associated Press. All rights reserved."
    assert _text(_article_page(after=f"<p>{sign_off}</p>")).endswith(sign_off)


def test_a_last_sentence_of_reporting_is_no_notice() -> None:
    # The words of a notice (comment, subscribers, the latest, privacy policy, copyright, cookies) in
    # the article's own last lines: they stay. A prompt or a rights line after the article goes.
    endings = [
        "The company did not respond to a request for comment.",
        "Officials declined to comment.",
        "The service now has two million subscribers.",
        "The company reported a loss for the latest quarter.",
        "The firm changed its privacy policy last year after the regulator's inquiry.",
        "The lawsuit accuses the studio of copyright infringement.",
        "Cookies and coffee were handed out at the rally.",
        "Readers can sign up for the council's flood alerts on its website.",
    ]
    for ending in endings:
        assert _text(_article_page(after=f"<p>{ending}</p>")).endswith(ending), ending
    for notice in ["Sign up for our morning newsletter", "Comments (12)", "Follow us on Twitter",
                   "We use cookies to improve your experience.", "© 2024 The Gazette. All rights reserved."]:
        assert _text(_article_page(after=f"<p>{notice}</p>")) == "\n\n".join(_STORY), notice


@pytest.mark.parametrize(
    "notice",
    [
        "Already a subscriber? Log in to read the rest of this story.",
        "This article is only available to subscribers.",
        "Il vous reste 62% de cet article à lire. La suite est réservée aux abonnés.",
        "Bereits Abonnent? Hier anmelden",
        "¿Ya eres suscriptor? Inicia sesión",
        "この記事は会員限定です。",
    ],
)
def test_a_paywalls_notice_is_not_article(notice: str) -> None:
    # in the middle of the text, or after it; in English, French, German, Spanish, Japanese
    assert _text(_article_page(between=f"<p>{notice}</p>")) == "\n\n".join(_STORY)
    assert _text(_article_page(after=f"<p>{notice}</p>")) == "\n\n".join(_STORY)


def test_reporting_about_subscriptions_is_article() -> None:
    # a subscription named in the article's own sentences, and a page that is only its notice
    reporting = [
        "The newspaper said its archive would be available only to subscribers from March.",
        "Members of the club who are already subscribers to the magazine will get the new issue free.",
    ]
    for sentence in reporting:
        assert _text(_article_page(between=f"<p>{sentence}</p>")).split("\n\n")[1] == sentence
    notice = "This content is reserved for members only."
    assert without_furniture(f"{notice}\n\n{_STORY[0]}") == f"{notice}\n\n{_STORY[0]}"


def test_the_authors_biography_after_the_article_is_left_out() -> None:
    bio = "<h4>About the author</h4><p>Jane Miller is the town reporter of the Gazette and has covered its council since 2015.</p>"
    assert _text(_article_page(after=bio)) == "\n\n".join(_STORY)
    # a paragraph by another name stays
    assert _text(_article_page(after=bio, author="Tom Baker")).endswith("covered its council since 2015.")


def test_a_byline_is_no_biography() -> None:
    # an agency as author, its byline before the story's last paragraphs: nothing is cut
    byline = "<p>Deutsche Presse-Agentur · 01.09.2024, 15:40 Uhr</p>"
    text = _text(_article_page(between=byline, author="Deutsche Presse-Agentur"))
    assert text == "\n\n".join([_STORY[0], "Deutsche Presse-Agentur · 01.09.2024, 15:40 Uhr", *_STORY[1:]])
    short = "<p>Jane Miller · 01.09.2024</p>"
    assert _text(_article_page(between=short)).endswith(_STORY[-1])


def test_a_stated_body_holding_half_a_character_reads_it_as_a_replacement_character() -> None:
    # JSON.stringify of a string cut inside an emoji's surrogate pair: "\ud83d" alone.
    story = " ".join(_STORY)
    script = json.dumps({"@type": "NewsArticle", "articleBody": story + " \ud83d \U0001f600"})
    assert stated_body([script]) == story + " \ufffd \U0001f600"


# -- a list dropped from the article -----------------------------------------------------------

_STEPS = [
    "Unplug the kettle and let it cool down completely before you start to clean it",
    "Fill it halfway with equal parts of white vinegar and water from the cold tap",
    "Bring the mixture to the boil and leave it to stand for about twenty minutes",
    "Pour it away and rinse the kettle twice and boil a full load of clean water once",
]


def _guide(list_class: str, elsewhere: str = "") -> bytes:
    steps = "".join(f"<li>{step}.</li>" for step in _STEPS)
    return (
        f"<html><head><title>How to descale a kettle</title></head><body>{elsewhere}<article>"
        f"<p>{_STORY[0]}</p><p>Here is how to descale it in four steps:</p>"
        f"<ul class='{list_class}'>{steps}</ul><p>{_STORY[1]}</p><p>{_STORY[2]}</p></article></body></html>"
    ).encode()


def test_a_list_of_the_article_dropped_by_trafilatura_is_recovered_by_its_recall_mode() -> None:
    # trafilatura's default mode drops the list (its class reads as a teaser box); the list's
    # prose items are a third of the text, inside the article's container: recall mode keeps them.
    found = extract_page(_guide("teaser-steps"), "https://example.org/guide")
    assert found is not None
    assert [block for block in found.text.split("\n\n") if block.startswith("- ")] == [f"- {s}." for s in _STEPS]


def test_only_prose_list_items_of_the_articles_container_count_as_dropped() -> None:
    menu = "".join(f"<li><a href='/{n}'>Section number {n} of this fine website here</a></li>" for n in range(9))
    others = "".join(f"<li>{step} in another story on the same page.</li>" for step in _STEPS)
    page = _guide("steps", elsewhere=f"<div class='menu'><ul>{menu}</ul></div><div class='more'><ul>{others}</ul></div>")
    tree = lxml.html.document_fromstring(page)
    text = "\n\n".join(_STORY)
    # the article's four steps only: not the menu (link text), not the list of another container
    assert dropped_list_chars(tree, text) == sum(len(" ".join(step.lower().split())) for step in _STEPS)
    assert dropped_list_chars(tree, text + "\n\n" + "\n\n".join(f"- {s}." for s in _STEPS)) == 0


def test_a_listings_page_has_its_first_list_items_read_and_found_in_the_text() -> None:
    # Thousands of items, each looked for in the text: the first ones tell a listing's page.
    items = [f"Item number {n} of a very long listing on this page" for n in range(2 * MAX_LIST_ITEMS)]
    page = "<html><body><article><ul>" + "".join(f"<li>{item}</li>" for item in items) + "</ul></article></body></html>"
    keys = list_items(lxml.html.document_fromstring(page))
    assert keys == [item.lower() for item in items[:MAX_LIST_ITEMS]]
    text = "\n\n".join(f"- {item}." for item in items)
    assert missing_chars(keys, text) == 0
    assert missing_chars(keys, text.replace("- Item number 7 of", "- An entry of")) == len(keys[7])


_HEADLINE = "Council closes the old bridge for two years"
_URL = "https://town-paper.example/news/2026/01/29/bridge-closes"


def _script_rendered(data: str, title: str = _HEADLINE) -> bytes:
    """A page its scripts render: an empty root element, the article's data in an inline script."""
    return f"""<!DOCTYPE html><html><head><title>{title} | The Town Paper</title>
    <script src="/_next/static/chunks/main.js" async=""></script></head>
    <body><div id="__next"><header><a href="/">The Town Paper</a></header><main></main></div>
    <script>{data}</script></body></html>""".encode()


def _story_html() -> str:
    return f"<h2>{_HEADLINE}</h2>" + "".join(f'<p class="text">{p}</p>' for p in _STORY)


def test_an_article_only_in_a_scripts_json_string_is_the_text() -> None:
    # React Query's dehydrated state as Next.js pages write it: '<' escaped as \u003c in a JSON string
    state = json.dumps({"queries": [{"data": {"title": _HEADLINE, "contentHtml": _story_html()}}]}).replace("<", "\\u003c")
    found = extract_page(_script_rendered(f"window.__RQ__ = [];window.__RQ__.push({state})"), _URL)
    assert found is not None
    assert found.text == "\n\n".join(_STORY)
    assert found.title is not None and found.title.startswith(_HEADLINE)  # the page's title


def test_an_article_in_a_next_js_payload_is_read_through_both_escapes() -> None:
    # Next.js's flight data: JSON inside a JavaScript string, so the article's HTML is escaped twice
    payload = "5:" + json.dumps(["$", "$L23", None, {"article": {"html": _story_html()}}])
    found = extract_page(_script_rendered(f"self.__next_f.push({json.dumps([1, payload])})"), _URL)
    assert found is not None
    assert found.text == "\n\n".join(_STORY)


def test_html_in_a_script_that_is_not_the_pages_story_is_not_its_text() -> None:
    # the page's title shares no word with the script's HTML: another story, or a site's whole text
    state = json.dumps({"contentHtml": _story_html()})
    found = extract_page(_script_rendered(f"window.__STATE__ = {state}", title="Storm warning issued for the coast"), _URL)
    assert found is None or "bridge" not in found.text


def test_a_text_trafilatura_finds_is_kept_whatever_the_scripts_hold() -> None:
    other = [p.replace("bridge", "tunnel") for p in _STORY]
    state = json.dumps({"contentHtml": "".join(f"<p>{p}</p>" for p in other)})
    page = _script_rendered(f"window.__STATE__ = {state}").replace(
        b"<main></main>", ("<main><article>" + "".join(f"<p>{p}</p>" for p in _STORY) + "</article></main>").encode()
    )
    found = extract_page(page, _URL)
    assert found is not None and found.text == "\n\n".join(_STORY)
