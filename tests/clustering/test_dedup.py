"""``newsagg dedup``'s reading: its workers parse and sign their own chunks of the input."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from clusterkit import random_corpus

import pipeline.dedup
import pipeline.pool
from pipeline.clustering import cluster_documents
from pipeline.dedup import dedup_jsonl
from pipeline.errors import ConfigError
from pipeline.pool import WorkerPool
from pipeline.settings import ClusteringSettings


def _write(path: Path, records: list[dict[str, Any]]) -> None:
    # A blank line in the middle: chunks count articles, not lines.
    lines = [json.dumps(r) for r in records]
    path.write_text("\n".join(lines[:7] + [""] + lines[7:]) + "\n", encoding="utf-8")


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    articles = random_corpus(11, stories=60)
    records = [
        {"id": a.id, "title": a.title, "text": a.text, "source": a.outlet, "published": a.published.isoformat()}
        for a in articles
        if a.published is not None
    ]
    path = tmp_path / "in.jsonl"
    _write(path, records)
    settings = ClusteringSettings()
    expected = {m.article_id: m.cluster_id for m in cluster_documents(articles, settings)}
    return path, expected


def _clusters(out: str) -> dict[str, str]:
    return {row["id"]: row["cluster_id"] for row in map(json.loads, out.splitlines())}


def test_workers_parse_and_sign_their_own_chunks_into_the_clusters_of_one_process(
    corpus: tuple[Path, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, expected = corpus
    monkeypatch.setattr(pipeline.pool, "start_method", lambda: "fork")  # the workers inherit the patches
    monkeypatch.setattr(pipeline.dedup, "_PIECE", 25)
    log = tmp_path / "parsed.log"
    real = pipeline.dedup._record

    def recorded(line: bytes, where: str) -> dict[str, Any]:
        with log.open("a", encoding="utf-8") as f:
            f.write(f"{os.getpid()}\n")
        return real(line, where)

    monkeypatch.setattr(pipeline.dedup, "_record", recorded)
    settings = ClusteringSettings(pool_min_batch=10)
    alone, pooled = io.StringIO(), io.StringIO()
    assert dedup_jsonl(path, alone, settings) == (len(expected), len(set(expected.values())))
    log.unlink()
    with WorkerPool(2) as pool:
        dedup_jsonl(path, pooled, settings, pool=pool)
    assert pooled.getvalue() == alone.getvalue() and _clusters(alone.getvalue()) == expected
    parsers = {int(pid) for pid in log.read_text().split()}
    assert len(parsers) == 2 and os.getpid() not in parsers  # this process read bytes, the workers parsed


@pytest.mark.parametrize("workers", [1, 2])
def test_a_bad_line_read_by_a_worker_is_named_with_its_line_number(
    corpus: tuple[Path, dict[str, str]], workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = corpus
    monkeypatch.setattr(pipeline.pool, "start_method", lambda: "fork")
    monkeypatch.setattr(pipeline.dedup, "_PIECE", 25)
    lines = path.read_bytes().split(b"\n")
    lines[60] = b'{"id": "x", "title": "t"}'  # line 61, in the third piece
    lines[40] = lines[30]  # line 41 repeats line 31's id, in the next piece
    path.write_bytes(b"\n".join(lines))
    with WorkerPool(workers) as pool, pytest.raises(ConfigError, match=r"in\.jsonl:41: duplicate id"):
        dedup_jsonl(path, io.StringIO(), ClusteringSettings(pool_min_batch=10), pool=pool)
    lines[40] = b'{"id": "y", "title": "t", "text": "fine"}'
    path.write_bytes(b"\n".join(lines))
    with WorkerPool(workers) as pool, pytest.raises(ConfigError, match=r"in\.jsonl:61: missing .* text$"):
        dedup_jsonl(path, io.StringIO(), ClusteringSettings(pool_min_batch=10), pool=pool)


def test_input_that_is_not_utf8_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"id": "a", "title": "t", "text": "x"}\n{"id": "b", "title": "t", "text": "caf\xe9"}\n')
    with pytest.raises(ConfigError, match=r"in\.jsonl:2: not UTF-8"):
        dedup_jsonl(path, io.StringIO(), ClusteringSettings())


def test_half_a_character_in_a_line_is_read_as_a_replacement_character(tmp_path: Path) -> None:
    # "\ud83d" alone: an emoji's surrogate pair cut in two before JSON.stringify wrote it.
    path = tmp_path / "in.jsonl"
    lines = [{"id": f"x{i}", "title": f"Storm {i} \ud83d", "text": f"The storm {i} hit the coast \ud83d", "source": "Wire \udc00"}
             for i in range(2)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="ascii")
    out = io.StringIO()
    assert dedup_jsonl(path, out, ClusteringSettings()) == (2, 2)
    assert [json.loads(line)["id"] for line in out.getvalue().splitlines()] == ["x0", "x1"]


def test_a_line_nested_too_deep_to_read_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"id": "a", "title": "t", "text": "x"}\n{"id": ' + "[" * 50_000 + "]" * 50_000 + "}\n")
    with pytest.raises(ConfigError, match=r"in\.jsonl:2: not JSON \(nested too deep\)"):
        dedup_jsonl(path, io.StringIO(), ClusteringSettings())


def test_lines_end_only_at_a_line_feed_as_json_lines_say(tmp_path: Path) -> None:
    # A carriage return is JSON whitespace inside a line, and half of a CRLF line end.
    path = tmp_path / "in.jsonl"
    path.write_bytes(
        b'{"id": "a", "title": "t", "text": "x"}\r\n'
        b'{"id": "b",\r "title": "t", "text": "y"}\r\n'
        b'{"id": "c", "title": "t", "text": null}\n'
    )
    with pytest.raises(ConfigError, match=r"in\.jsonl:3: missing or non-string field\(s\): text$"):
        dedup_jsonl(path, io.StringIO(), ClusteringSettings())
    path.write_bytes(path.read_bytes().replace(b'"text": null', b'"text": "z"'))
    out = io.StringIO()
    assert dedup_jsonl(path, out, ClusteringSettings()) == (3, 3)
