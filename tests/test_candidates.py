"""Second opinions on trafilatura's text: jusText where trafilatura took the wrong block."""

from __future__ import annotations

import json

import lxml.html

from pipeline.candidates import paragraph_chars, second_opinion, stated_body


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


def test_jusText_replaces_a_text_from_the_wrong_block() -> None:
    tree = _tree(_STORY)
    assert second_opinion(tree, _SIDEBAR, paragraph_chars(tree)) == "\n\n".join(_STORY)


def test_a_short_text_from_the_article_itself_is_kept() -> None:
    tree = _tree(_STORY)
    # trafilatura kept only the first paragraph: the same words as jusText's, so no other block
    assert second_opinion(tree, _STORY[0], paragraph_chars(tree)) == _STORY[0]


def test_the_stated_article_body_is_found_in_a_graph_and_unescaped() -> None:
    story = " ".join(_STORY).replace("the river", "the river &amp; the canal")
    scripts = [
        "{not json",  # a broken script costs nothing but itself
        json.dumps({"@graph": [{"@type": "WebPage"}, {"@type": "NewsArticle", "articleBody": story}]}),
        json.dumps({"@type": "NewsArticle", "articleBody": _SIDEBAR}),  # a teaser's body, too short
    ]
    assert stated_body(scripts) == story.replace("&amp;", "&")
    assert stated_body(scripts[:1] + scripts[2:]) is None
