"""Sources beyond feeds, end to end over loopback: the demo corpus read from its news sitemaps alone, and an
outlet found from its home page (`newsagg feeds add`, then `newsagg run`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from demo_truth import clusters_in, ids_of

from pipeline.cli import main
from pipeline.demo.server import NEWS_SITEMAP, NO_FEED_LINK, CorpusServer, bundled_corpus_dir
from pipeline.feeds import load_feed_list
from pipeline.models import TextSource
from pipeline.runner import Pipeline
from pipeline.settings import Settings


def sitemap_list(base_url: str, target: Path) -> Path:
    """The demo feed list with every feed replaced by its outlet's news sitemap."""
    document = yaml.safe_load((bundled_corpus_dir() / "feeds.yaml").read_text(encoding="utf-8"))
    for feed in document["feeds"]:
        feed["url"] = feed["url"].replace("{{BASE}}", base_url).replace("feed.xml", NEWS_SITEMAP)
        feed["type"] = "sitemap"
    target.write_text(yaml.safe_dump(document), encoding="utf-8")
    return target


def test_the_demo_corpus_read_from_sitemaps_alone_gives_the_feeds_stories(
    corpus_server: CorpusServer, demo_settings: Settings, tmp_path: Path
) -> None:
    with Pipeline(demo_settings) as pipeline:
        assert pipeline.run(force=True).failed_feeds == []
        from_feeds = clusters_in(pipeline.store)
        # A sitemap carries no text: an article only its feed's text made cannot come from one.
        feed_text_only = {a.id for a in pipeline.store.articles_by_id(ids for c in from_feeds for ids in c).values()
                          if a.text_source != TextSource.PAGE}

    sitemaps = sitemap_list(corpus_server.base_url, tmp_path / "sitemaps.yaml")
    settings = demo_settings.model_copy(update={
        "data_dir": tmp_path / "sitemap-data",
        "feeds_file": sitemaps,
        "feeds": demo_settings.feeds.model_copy(update={"sitemap_max_age_days": 0}),  # the corpus is from 2026-11
    })
    with Pipeline(settings) as pipeline:
        report = pipeline.run(force=True)
        assert report.failed_feeds == [] and {f.status for f in report.feeds} == {"ok"}
        from_sitemaps = clusters_in(pipeline.store)
        assert {c - feed_text_only for c in from_sitemaps} - {frozenset()} == (
            {c - feed_text_only for c in from_feeds} - {frozenset()})
        # Of those, the two short items are not articles at all (their pages are too short), and the
        # paywalled page is its teaser, alone: only its feed's full text joined it to its story.
        found = pipeline.store.articles_by_id(feed_text_only)
        assert len(feed_text_only) == 3 and len(found) == 1
        assert all(a.paywalled and frozenset({a.id}) in from_sitemaps for a in found.values())


def _settings_file(tmp_path: Path, base: str, **extra: Any) -> Path:
    """A settings file for commands on the corpus server at ``base``, data in ``tmp_path``/data."""
    config = tmp_path / "newsagg.yaml"
    config.write_text(yaml.safe_dump({
        "data_dir": str(tmp_path / "data"),
        "fetch": {"allowed_hosts": [base.removeprefix("http://")], "politeness_delay": 0.0},
        **extra,
    }), encoding="utf-8")
    return config


def test_feeds_add_finds_an_outlet_from_its_home_page_and_run_brings_its_stories(
    corpus_server: CorpusServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = corpus_server.base_url
    config = _settings_file(tmp_path, base, feeds={"sitemap_max_age_days": 0})
    home = f"{base}/{NO_FEED_LINK}/"

    assert main(["--config", str(config), "feeds", "add", home]) == 0
    out = capsys.readouterr().out
    sitemap = f"{base}/{NO_FEED_LINK}/{NEWS_SITEMAP}"
    assert f"sitemap  {sitemap} (Coastline Daily)  via robots.txt" in out
    assert "/feed.xml" not in out  # its home page names no feed, and none is at the site's common paths
    assert [(f.url, f.kind, f.name, f.language) for f in load_feed_list(tmp_path / "data" / "feeds.yaml")] == [
        (sitemap, "sitemap", "Coastline Daily", "en")]

    assert main(["--config", str(config), "run", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["failed_feeds"] == [] and report["articles_added"] == 6
    assert main(["--config", str(config), "export", "articles"]) == 0
    stored = {json.loads(line)["id"] for line in capsys.readouterr().out.splitlines()}
    pages = [f"/{NO_FEED_LINK}/articles/{p.name}" for p in (bundled_corpus_dir() / NO_FEED_LINK / "articles").glob("*.html")]
    assert stored == ids_of(base, pages) and len(stored) == 6
    assert main(["--config", str(config), "search", "mortgage", "--json"]) == 0  # its stories are searchable
    assert json.loads(capsys.readouterr().out)["total"] >= 1


def test_feeds_add_on_an_article_page_finds_the_sitemap_of_its_own_outlet(
    corpus_server: CorpusServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The help says "or a page of the outlet": an article's page sits deeper than the outlet's
    # sitemap, and the host's robots.txt lists every outlet's.
    base = corpus_server.base_url
    config = _settings_file(tmp_path, base)
    article = next((bundled_corpus_dir() / NO_FEED_LINK / "articles").glob("*.html")).name

    assert main(["--config", str(config), "feeds", "add", f"{base}/{NO_FEED_LINK}/articles/{article}"]) == 0
    assert [(f.url, f.name) for f in load_feed_list(tmp_path / "data" / "feeds.yaml")] == [
        (f"{base}/{NO_FEED_LINK}/{NEWS_SITEMAP}", "Coastline Daily")]
