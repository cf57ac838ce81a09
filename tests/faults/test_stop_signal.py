"""`newsagg run` stopped with SIGTERM (docker stop, systemd, kill) ends as an interrupt does.

Before, SIGTERM ended the process where it stood: exit -15, no word, the run shown
running until a later run found its process gone. Now it is one line, exit 143 once the
downloads in flight end, the run recorded as failed, and the next run finishes the work
with nothing stored twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from faultkit import Web, article_html, held_page, rss, write_feed_list

from pipeline.runner import Pipeline
from pipeline.settings import load_settings
from pipeline.storage import Store

PAGES = ("harbour", "orchard", "tunnel")


def test_a_run_stopped_with_sigterm_says_so_is_recorded_and_resumes(web: Web, tmp_path: Path) -> None:
    asked, release = held_page(web, "/news/tunnel", article_html("Tunnel opens", "tunnel"))
    for name in PAGES[:2]:
        web.serve(f"/news/{name}", article_html(f"{name.title()} news", name))
    web.serve("/feed.xml", rss("Ledger", [(f"{n} story", web.url(f"/news/{n}"), None) for n in PAGES]),
              "application/rss+xml")
    feeds = write_feed_list(tmp_path / "feeds.yaml", {"Ledger": web.url("/feed.xml")})
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSAGG_")}
    env.update(NEWSAGG_DATA_DIR=str(tmp_path / "data"), NEWSAGG_FEEDS_FILE=str(feeds), NEWSAGG_WORKERS="1",
               NEWSAGG_FETCH__ALLOWED_HOSTS=f'["127.0.0.1:{web.port}"]', NEWSAGG_FETCH__POLITENESS_DELAY="0",
               # The stop waits for the downloads in flight, up to their timeouts.
               NEWSAGG_FETCH__READ_TIMEOUT="2", NEWSAGG_FETCH__TOTAL_TIMEOUT="3")
    child = subprocess.Popen([sys.executable, "-m", "pipeline", "run", "--force"], env=env, text=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        assert asked.wait(60), "the run never asked for the slow page"
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=60)
    finally:
        release.set()
        if child.poll() is None:
            child.kill()
    assert child.returncode == 128 + signal.SIGTERM, err
    assert err.strip().splitlines()[-1] == "newsagg: stopped (SIGTERM); run again to resume where it stopped"

    settings = load_settings(data_dir=tmp_path / "data", feeds_file=feeds, workers=1,
                             fetch={"allowed_hosts": [f"127.0.0.1:{web.port}"], "politeness_delay": 0})
    store = Store(settings.resolved_store_url)
    try:
        assert [r.status for r in store.recent_runs(5)] == ["failed"]  # not left running
    finally:
        store.close()
    with Pipeline(settings) as pipeline:
        report = pipeline.run(force=True)
        assert report.failed_feeds == [] and pipeline.store.article_count() == 3
        assert pipeline.store.entry_counts() == {"done": 3}
