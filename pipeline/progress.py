"""Progress bars for long stages."""

from __future__ import annotations

from tqdm import tqdm


class ProgressBar(tqdm):  # type: ignore[misc]  # tqdm has no type hints
    """A tqdm bar without tqdm's monitor thread.

    The monitor thread starts with the first bar, shown or not, and stays. A process with
    a second thread cannot fork its worker pools safely, so it spawns them instead, each
    worker importing trafilatura or feedparser anew: seconds per run lost to a thread
    that only watches for stalled bars.
    """

    monitor_interval = 0
