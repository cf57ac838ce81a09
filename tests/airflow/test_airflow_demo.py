"""`make demo` (scripts/airflow-demo): one real news_pipeline DAG run over the demo corpus, in a fresh interpreter."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

from pipeline.demo.server import bundled_corpus_dir

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "airflow-demo"


def test_airflow_demo_runs_the_dag_and_prints_the_merged_stories(tmp_path: Path) -> None:
    kept = tmp_path / "demo"
    kept.mkdir()
    (kept / ".newsagg-demo").touch()  # a previous run's directory: replaced
    (kept / "stale.txt").touch()
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--dir", str(kept)],
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
    assert (kept / "data" / "store.sqlite3").exists() and (kept / "airflow.log").exists()
    assert not (kept / "stale.txt").exists()

    # It ends with the exact commands that show what it kept; they work.
    commands = [line.strip() for line in out.splitlines()[-4:]]
    assert [shlex.split(c, comments=True)[3:5] for c in commands] == [
        ["clusters", "list"], ["search", truth["searches"][0]["query"]], ["export", "stories"], ["serve"]]
    listed = subprocess.run(shlex.split(commands[0]), capture_output=True, text=True, timeout=60, check=True)
    assert len(listed.stdout.splitlines()) > len(truth["clusters"])
    found = subprocess.run(shlex.split(commands[1]), capture_output=True, text=True, timeout=60, check=True)
    assert found.stdout.split()[1] in ("story", "stories") and int(found.stdout.split()[0]) >= 1
    # The DAG run is in the store's record of runs, as a `newsagg run` would be.
    runs = subprocess.run([*shlex.split(commands[0])[:3], "runs", "list", "--json"],
                          capture_output=True, text=True, timeout=60, check=True)
    [run] = json.loads(runs.stdout)
    assert (run["trigger"], run["status"]) == ("airflow", "ok") and run["airflow_run"]
    assert run["stats"]["articles_added"] > 0 and "index_stories" in run["stats"]["stage_seconds"]


def test_airflow_demo_does_not_replace_a_directory_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2 and "not a demo directory" in proc.stderr
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "mine"
