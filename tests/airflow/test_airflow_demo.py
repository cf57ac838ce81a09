"""`make demo` (scripts/airflow-demo): one real news_pipeline DAG run over the demo corpus, in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pipeline.demo.server import bundled_corpus_dir

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "airflow-demo"


def test_airflow_demo_runs_the_dag_and_prints_the_merged_stories(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    for task_id in ("load_feeds", "fetch_articles", "cluster_articles", "merge_stories", "index_stories", "report"):
        assert f"  {task_id:<17} success" in out
    assert "1 success (one mapped instance per batch of feeds, whole domains)" in out  # all on 127.0.0.1
    truth = json.loads((bundled_corpus_dir() / "expected.json").read_text(encoding="utf-8"))
    assert f"{len(truth['clusters'])} stories ran in more than one outlet" in out
    assert f'Example search: newsagg search "{truth["searches"][0]["query"]}"' in out
    assert (tmp_path / "data" / "store.sqlite3").exists()
