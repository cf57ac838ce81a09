"""Stories in a right-to-left language are marked with their language and direction on every page and in the Atom feed.

An Arabic wire story run by two outlets, over a loopback site: its title, snippet and text carry
``lang="ar"`` and ``dir="auto"`` (the browser sets the direction from the text), while the
interface around them (counts, outlets, dates) stays in the page's own language and direction.
"""

from __future__ import annotations

import sys
from pathlib import Path

import feedparser
from fastapi.testclient import TestClient
from lxml import html

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "faults"))  # faultkit: the shared loopback web

from faultkit import fault_settings, rss, serving, write_feed_list  # noqa: E402

from pipeline.runner import Pipeline  # noqa: E402
from pipeline.web import create_app  # noqa: E402

TITLE = "افتتاح محطة تحلية جديدة في المدينة الساحلية"
PARAGRAPHS = [
    "أعلنت السلطات المحلية يوم الاثنين افتتاح محطة جديدة لتحلية مياه البحر في المدينة الساحلية، بعد ثلاث سنوات من أعمال البناء.",
    "وقال المسؤولون إن المحطة ستوفر المياه الصالحة للشرب لأكثر من مئتي ألف نسمة، وإن تكلفتها بلغت نحو مليار دولار.",
    "وأضافوا أن المشروع يأتي في إطار خطة وطنية لمواجهة الجفاف الذي يضرب المنطقة منذ سنوات، مع توقع بناء محطات أخرى.",
    "وأشار خبراء إلى أن استهلاك الطاقة في المحطة سيكون أقل بكثير من المحطات القديمة بفضل تقنيات حديثة في الترشيح.",
]


def _page(title: str) -> str:
    body = "".join(f"<p>{p}</p>" for p in PARAGRAPHS)
    return (f'<!doctype html><html lang="ar" dir="rtl"><head><meta charset="utf-8"><title>{title}</title></head>'
            f"<body><article><h1>{title}</h1>{body}</article></body></html>")


def _texts(page: html.HtmlElement, xpath: str) -> list[html.HtmlElement]:
    found = page.xpath(xpath)
    assert found, xpath
    return found


def test_an_arabic_story_is_marked_with_its_language_and_direction(tmp_path: Path) -> None:
    with serving() as web:
        for outlet in ("one", "two"):
            web.serve(f"/{outlet}/story.html", _page(TITLE), "text/html; charset=utf-8")
            web.serve(f"/{outlet}/feed.xml", rss(outlet, [(TITLE, web.url(f"/{outlet}/story.html"), None)]),
                      "application/rss+xml")
        feeds = write_feed_list(tmp_path / "feeds.yaml", {o: web.url(f"/{o}/feed.xml") for o in ("one", "two")})
        settings = fault_settings(web, tmp_path, feeds)
        with Pipeline(settings) as pipeline:
            assert pipeline.run(force=True).articles_added == 2

    with TestClient(create_app(settings)) as client:
        river = html.fromstring(client.get("/").text)
        for title in _texts(river, "//li[@class='story']/h2"):
            assert (title.get("lang"), title.get("dir")) == ("ar", "auto")
        meta = _texts(river, "//li[@class='story']/p[@class='meta']")[0]
        assert meta.get("dir") is None  # the interface's own line keeps the page's direction

        story_url = river.xpath("//li[@class='story']/h2/a/@href")[0]
        story = html.fromstring(client.get(story_url).text)
        assert (story.xpath("//h1")[0].get("lang"), story.xpath("//h1")[0].get("dir")) == ("ar", "auto")
        for text in _texts(story, "//details[@class='representative'] | //p[@class='copy-head']/a[1]"):
            assert (text.get("lang"), text.get("dir")) == ("ar", "auto")

        hits = html.fromstring(client.get("/search", params={"q": "تحلية"}).text)
        for snippet in _texts(hits, "//p[@class='snippet'] | //li[@class='story']/h2"):
            assert (snippet.get("lang"), snippet.get("dir")) == ("ar", "auto")

        entry = feedparser.parse(client.get("/feed.atom").content).entries[0]
        assert entry.title == TITLE and entry.title_detail.language == "ar" and entry.summary_detail.language == "ar"

        article_url = story.xpath("//p[@class='copy-head']/a/@href")[0]
        article = html.fromstring(client.get(article_url).text)
        for text in _texts(article, "//h1 | //section[@class='text']"):
            assert (text.get("lang"), text.get("dir")) == ("ar", "auto")
