"""Outlet template learning over a generated site: a newsletter box and a photo-credit line that
every page of the site carries inside its article (so trafilatura keeps them) are stripped from
later pages once seen on ``template_min_articles`` of its articles; the body never is."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from faultkit import Web, article_html, fault_settings, rss, write_feed_list
from pipeline.cli import main
from pipeline.runner import Pipeline
from pipeline.storage.schema import articles

NEWSLETTER = "Get the Ledger Morning newsletter: the day's biggest stories, in your inbox before breakfast."
CREDIT = "Photograph: Ledger picture desk"
TOPICS = ["harbour", "rail", "school", "water", "market", "bridge", "library", "airport", "hospital"]


def _page(title: str, topic: str) -> str:
    html = article_html(title, topic)
    box = f"<p><strong>{NEWSLETTER}</strong></p><p><em>{CREDIT}</em></p>"
    return html.replace("</h1>", "</h1>" + box, 1)


def test_a_box_every_page_of_a_site_carries_is_stripped_after_n_articles(
    web: Web, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items = []
    for n, topic in enumerate(TOPICS):
        path = f"/news/{topic}-story"
        web.serve(path, _page(f"The {topic} story", topic))
        items.append((f"The {topic} story", web.url(path), "A summary."))
    web.serve("/feed.xml", rss("Ledger", items), "application/rss+xml")
    feeds = write_feed_list(tmp_path / "feeds.yaml", {"Ledger": web.url("/feed.xml")})
    settings = fault_settings(web, tmp_path, feeds, extraction={"batch_size": 3})  # template_min_articles 5

    with Pipeline(settings) as pipeline:
        report = pipeline.run()
        assert report.articles_added == len(TOPICS)
        with pipeline.store.engine.connect() as conn:
            texts = dict(conn.execute(sa.select(articles.c.url, articles.c.text)).all())
    kept = [url for url, text in texts.items() if NEWSLETTER in text]
    stripped = [url for url, text in texts.items() if NEWSLETTER not in text]
    # The first five articles taught the site's template; the four after them lost it.
    assert len(kept) == 5 and len(stripped) == 4
    for url in stripped:
        text = texts[url]
        assert CREDIT not in text
        topic = url.rsplit("/", 1)[1].removesuffix("-story")
        assert text.count(f"{topic} report, part") == 6, "the whole body stays"

    args = ["--data-dir", str(settings.data_dir), "articles", "show", stripped[0]]
    assert main(args) == 0
    shown = capsys.readouterr().out
    assert f"stripped as the template of Ledger on 127.0.0.1 (on 5 of its articles): {NEWSLETTER}" in shown
    assert f"(on 5 of its articles): {CREDIT}" in shown
