"""The extraction quality harness on tiny sets laid out as each public set is (no dataset needed)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from bench.extraction_quality.__main__ import main
from bench.extraction_quality.metrics import rouge_lsum_f1, snippet_counts, word_f1

BODY = [
    "The city council voted on Tuesday to close the old river bridge for two years of repairs.",
    "Engineers found cracks in three of the bridge's supports during an inspection last spring.",
    "Traffic will be diverted over the northern crossing, adding about ten minutes to most trips.",
    "The mayor said the closure was regrettable but that safety had to come first for everyone.",
]
PAGE = (
    "<html><head><title>Bridge closes</title></head><body><nav><a href='/'>Home</a> <a href='/n'>News</a></nav>"
    "<article><h1>Bridge closes</h1>" + "".join(f"<p>{p}</p>" for p in BODY) + "</article>"
    "<footer>Copyright 2024 Example Media. All rights reserved.</footer></body></html>"
).encode()


def test_metrics() -> None:
    assert word_f1("a b c", "a b c") == 1.0
    assert word_f1("", "a") == 0.0 and word_f1("", "") == 1.0
    assert word_f1("a b", "a b c d") == pytest.approx(2 * 1 * 0.5 / 1.5)
    assert snippet_counts("x  alpha beta y", ["alpha beta", "gamma"], ["y", "z"]) == (1, 1, 1, 1)
    assert snippet_counts(None, ["a"], ["b"]) == (0, 0, 1, 1)
    # LCS "a c": P = 2/5, R = 2/4
    assert rouge_lsum_f1("a c e f g", "a b c d") == pytest.approx(2 * (2 / 5) * (2 / 4) / (2 / 5 + 2 / 4))
    assert rouge_lsum_f1("\n".join(BODY), "\n".join(reversed(BODY))) == 1.0  # units in any order
    assert rouge_lsum_f1("城市 议会", "城市 议会") == 1.0  # not only ASCII words


def _sets(tmp: Path) -> dict[str, Path]:
    traf = tmp / "trafilatura" / "tests"
    (traf / "cache").mkdir(parents=True)
    (traf / "cache" / "bridge.html").write_bytes(PAGE)
    evaldata = {"https://example.com/bridge": {"file": "bridge.html", "with": [BODY[1][:40]], "without": ["All rights reserved"]}}
    (traf / "evaldata.json").write_text(json.dumps(evaldata))
    fundus = tmp / "fundus" / "tests" / "resources" / "parser" / "test_data" / "us"
    fundus.mkdir(parents=True)
    expected = {"V1": {"body": {"summary": [], "sections": [{"headline": [], "paragraphs": BODY}]}, "title": "Bridge closes"}}
    (fundus / "Example.json").write_text(json.dumps(expected))
    (fundus / "Example_2024_01_01.html.gz").write_bytes(gzip.compress(PAGE))
    (fundus / "meta.info").write_text(json.dumps({"Example_2024_01_01.html.gz": {"url": "https://example.com/bridge"}}))
    wcxb = tmp / "wcxb" / "dev"
    (wcxb / "ground-truth").mkdir(parents=True)
    (wcxb / "html").mkdir()
    for number, kind in (("0001", "article"), ("0002", "forum")):
        truth = {"url": f"https://example.com/{number}", "_internal": {"page_type": {"primary": kind}},
                 "ground_truth": {"title": "Bridge closes", "main_content": "\n".join(BODY)}}
        (wcxb / "ground-truth" / f"{number}.json").write_text(json.dumps(truth))
        (wcxb / "html" / f"{number}.html.gz").write_bytes(gzip.compress(PAGE))
    return {"trafilatura": tmp / "trafilatura", "fundus": tmp / "fundus", "wcxb": tmp / "wcxb"}


def test_every_set_scored_for_every_extractor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name, path in _sets(tmp_path).items():
        monkeypatch.setenv(f"NEWSAGG_EVAL_{name.upper()}", str(path))
    assert main(["--workers", "1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| trafilatura (all pages) | 1 |" in out and "| wcxb (articles) | 1 |" in out
    for name in ("trafilatura", "fundus", "wcxb"):
        data = json.loads((tmp_path / f"extraction-quality-{name}.json").read_text())
        for line in data["lines"]:
            assert set(line["scores"]) == {"ours", "trafilatura", "justext", "readability"}
            # a clean article page: every extractor finds its body
            assert line["scores"]["ours"] > 0.9, (name, line)
    assert json.loads((tmp_path / "extraction-quality-wcxb.json").read_text())["by_kind"]["forum"]["pages"] == 1


def test_unconfigured_set_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("NEWSAGG_EVAL_WCXB", raising=False)
    with pytest.raises(SystemExit):
        main(["--set", "wcxb"])
    assert "NEWSAGG_EVAL_WCXB" in capsys.readouterr().err
