"""A run killed with SIGKILL leaves no worker behind.

Its pool's workers waited for work on a pipe that the other worker also held open, so
they never saw their parent go: each killed run left two idle processes of ~85 MB for good.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from faultkit import Web, article_html, held_page, rss, write_feed_list


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def test_the_workers_of_a_run_killed_with_sigkill_end_too(web: Web, tmp_path: Path) -> None:
    asked, release = held_page(web, "/news/slow", article_html("Slow", "tunnel"))
    links = []
    for n in range(12):
        web.serve(f"/news/{n}", article_html(f"Story {n}", f"topic{n}"))
        links.append(web.url(f"/news/{n}"))
    links.append(web.url("/news/slow"))
    web.serve("/feed.xml", rss("Ledger", [(f"s{n}", link, None) for n, link in enumerate(links)]), "application/rss+xml")
    feeds = write_feed_list(tmp_path / "feeds.yaml", {"Ledger": web.url("/feed.xml")})
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSAGG_")}
    env.update(NEWSAGG_DATA_DIR=str(tmp_path / "data"), NEWSAGG_FEEDS_FILE=str(feeds), NEWSAGG_WORKERS="2",
               NEWSAGG_FETCH__ALLOWED_HOSTS=f'["127.0.0.1:{web.port}"]', NEWSAGG_FETCH__POLITENESS_DELAY="0",
               NEWSAGG_EXTRACTION__BATCH_SIZE="4")
    child = subprocess.Popen([sys.executable, "-m", "pipeline", "run", "--force"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        assert asked.wait(60), "the run never asked for the slow page"
        workers = _children(child.pid)
        assert len(workers) == 2, workers  # the pool started, forked
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        deadline = time.monotonic() + 10
        while any(map(_alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(map(_alive, workers)), "a worker outlived its run"
    finally:
        release.set()
        for pid in workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
