"""The benchmarks run at a tiny size and report every field the results table needs (no timing asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import end_to_end, extraction, feeds, import_warc, indexing, memory, web
from bench.__main__ import main as run_all
from bench.common import RESULT_KEYS, RESULTS, Result
from bench.corpus import _StaticCorpusServer, build, generate_articles, outlet_templates
from pipeline.demo.server import CorpusServer
from pipeline.extraction import extract_page


def _check(result: Result, *, positive: bool = True) -> dict[str, object]:
    data = result.as_dict()
    assert tuple(data) == RESULT_KEYS
    if positive:
        assert data["ours"]["value"] > 0 and data["baseline"]["value"] > 0
    assert data["versions"]["python"]
    assert result.line() and json.dumps(data, default=str)
    return data


def test_generated_pages_extract_to_the_generated_article() -> None:
    templates = outlet_templates()
    articles = generate_articles(120)
    for number, template in enumerate(templates):
        article = next(a for a in articles if a.outlet == number and len(a.paragraphs) >= 3)
        page = template.render_page(article).replace("{{BASE}}", "http://127.0.0.1:8000")
        found = extract_page(page.encode(), f"http://127.0.0.1:8000/{template.page_path(article)}")
        assert found is not None, template.slug
        assert found.title == article.title, template.slug
        assert found.date is not None and found.date.date() == article.published.date(), template.slug
        assert article.paragraphs[1] in found.text, template.slug


def test_corpus_feeds_follow_each_outlet_format(tmp_path: Path) -> None:
    corpus = build(tmp_path, generate_articles(60), entries_per_feed=4, pages=False)
    assert len(corpus.feeds) == 20  # 6 articles per outlet, 4 per feed
    for outlet, path in corpus.feeds:
        text = (tmp_path / path).read_text(encoding="utf-8")
        assert ("<entry>" in text) == corpus.templates[outlet].atom
        assert text.count("{{BASE}}/" + corpus.templates[outlet].slug + "/articles/") in (2, 4)


def test_static_corpus_server_answers_as_the_demo_server(tmp_path: Path) -> None:
    """The benchmarks' server resolves each file once: every request target still finds what CorpusServer finds."""
    corpus = build(tmp_path / "corpus", generate_articles(30), entries_per_feed=4)
    files = ["/" + p.relative_to(corpus.root).as_posix() for p in sorted(corpus.root.rglob("*")) if p.is_file()]
    outlet = corpus.templates[0].slug
    targets = [
        *files, *(f + "?x=1" for f in files[:3]), "/robots.txt", f"/{outlet}/", f"/{outlet}/news-sitemap.xml",
        f"/{outlet}", "/", "", "/missing.html", f"/{outlet}/../{files[0]}", f"/{outlet}//x", "/%2e%2e/etc/passwd",
        files[0].replace("/", "%2F", 2), files[0].replace(".", "%2E"),
    ]
    plain, static = CorpusServer(corpus.root), _StaticCorpusServer(corpus.root)
    assert sum(static.resolve(f) is not None for f in files) == len(files)
    for target in targets:
        assert static.resolve(target) == plain.resolve(target), target


def test_feeds_second_pass_is_all_304_without_parsing() -> None:
    data = _check(feeds.run("tiny"))
    second = data["details"]["pass2"]
    assert second["parse_calls"] == 0 and second["extract_calls"] == 0 and second["new_entries"] == 0
    assert second["not_modified"] == data["details"]["feeds"]


def test_extraction_pool_and_plain_loop_agree() -> None:
    data = _check(extraction.run("tiny", repeats=1))
    assert data["details"]["identical_outputs"] == data["details"]["pages"]


def test_import_warc_reports_pages_per_second_and_the_archive_size() -> None:
    data = _check(import_warc.run("tiny"))
    details = data["details"]
    assert details["articles_added"] > 0 and details["extracted"] == details["pages"]
    assert 0 < details["archive_bytes_per_1000_pages"] < details["html_bytes_per_1000_pages"]  # compressed


def test_indexing_both_sides_index_the_same_documents(es_url: str) -> None:
    data = _check(indexing.run("tiny", repeats=1, url=es_url))
    counts = data["details"]["indexed_counts"]
    assert counts["ours"] == counts["raw"]
    assert sum(counts["ours"].values()) == data["details"]["documents"]


def test_end_to_end_embedded() -> None:
    (result,) = end_to_end.run("tiny", profile=False, elasticsearch=False)
    data = _check(result)
    details = data["details"]
    assert details["articles"] == end_to_end.SIZES["tiny"]
    assert details["second_pass"]["parse_calls"] == 0 and details["second_pass"]["extract_calls"] == 0
    # The CPU of every process a page costs: the run's, its workers' (extraction at least), the server's.
    cpu = details["cpu_ms_a_page"]
    assert cpu["workers"] > 0.5 * cpu["extraction_alone"] > 0 and cpu["run_process"] > 0 and cpu["server"] > 0
    assert cpu["share"] == pytest.approx(
        cpu["extraction_alone"] / (cpu["run_process"] + cpu["workers"] + cpu["server"]))


def test_memory_reports_peaks_and_runs() -> None:
    # In-process, the peak may already have been reached by earlier tests: sizes, not values.
    data = _check(memory.run("tiny", runs=2, isolated=False), positive=False)
    assert [p["articles"] for p in data["details"]["points"]] == list(memory.SIZES["tiny"])
    assert len(data["details"]["leaks"]["rss_after_run"]) == 2


def test_web_reports_a_p95_per_page() -> None:
    results = web.run("tiny", requests=5, progress=lambda _: None)
    assert [r.stage for r in results] == ["web /", "web /search", "web /stories/{id}"]
    for result in results:
        data = _check(result)
        assert data["details"]["requests"] == 5 and data["details"]["articles"] == web.SIZES["tiny"]


def test_run_all_writes_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_all(["--tiny", "--only", "clustering"]) == 0
    table = (RESULTS / "table-tiny.md").read_text(encoding="utf-8")
    assert "| clustering |" in table and "python -m bench --tiny --only clustering" in table
    assert "| stage | measured |" in capsys.readouterr().out
    # The baseline is the textbook with batched updates; the per-shingle one is a second line, same clusters.
    report = json.loads((RESULTS / "dedup-200.json").read_text(encoding="utf-8"))
    rows = {row["system"]: row for row in report["systems"]}
    # Ours is `newsagg dedup`, every system timed as a whole process.
    assert list(rows) == ["ours", "textbook@0.5", "textbook per-shingle@0.5", "engine in-process"]
    assert all(row["process_seconds"] > 0 and row["process_peak_rss"] > 0 for row in rows.values())
    batch, per_shingle = rows["textbook@0.5"], rows["textbook per-shingle@0.5"]
    assert (batch["f1"], batch["ari"]) == (per_shingle["f1"], per_shingle["ari"])
    ours = rows["ours"]["articles_per_second"]
    assert report["throughput_ratio_vs_textbook@0.5"] == ours / batch["articles_per_second"]
    assert report["throughput_ratio_vs_textbook_per_shingle@0.5"] == ours / per_shingle["articles_per_second"]
    assert "textbook MinHash LSH @0.5 (MinHash.generator)" in table
