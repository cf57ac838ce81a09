"""A clustering run holds only the matching window.

`Pipeline.cluster()` rebuilds its engine (the LSH index and the per-article arrays) from
the store's signatures each run. It must restore only the articles within `window_days`
of the oldest article it clusters. Matching alone would not show it if it restored more
(pairs further apart than the window are filtered out), so the test looks at what the
restored engine holds. Retention dropping the signatures that left the window is
tests/test_maintenance.py's `test_retention_drops_only_signatures_outside_the_window`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from clusterkit import HARBOUR, ORCHARD, article
from pipeline.clustering import ClusterEngine
from pipeline.models import Membership, Signature
from pipeline.runner import Pipeline
from pipeline.settings import load_settings

DAY = 1440  # minutes


@pytest.mark.parametrize("window_days", [1, 7])
def test_a_run_restores_only_the_window_and_older_articles_are_no_candidates(
    window_days: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(data_dir=tmp_path, search_backend="sqlite", store_url=None)
    settings = settings.model_copy(
        update={"workers": 1, "clustering": settings.clustering.model_copy(update={"window_days": window_days})}
    )
    restored: list[dict[str, Any]] = []
    restore = ClusterEngine.restore

    def watched(
        self: ClusterEngine, signatures: Iterable[Signature], memberships: Iterable[Membership],
        aliases: Mapping[str, str],
    ) -> None:
        restore(self, signatures, memberships, aliases)
        restored.append({"size": len(self), "old": self.cluster_of("old"), "recent": self.cluster_of("recent")})

    monkeypatch.setattr(ClusterEngine, "restore", watched)
    with Pipeline(settings) as pipeline:
        store = pipeline.store
        # Run 1: a story three days ago, another two hours before the next run's articles.
        store.save_article(article("old", "Harbour bridge closes", HARBOUR))
        store.save_article(article("recent", "Orchard frost", ORCHARD, minutes=3 * DAY - 120))
        assert pipeline.cluster()[0] == 2
        # Run 2: a copy of each.
        store.save_article(article("old-copy", "Marlowe shuts bridge", HARBOUR[:5], minutes=3 * DAY, outlet="courier"))
        store.save_article(article("recent-copy", "Frost hits orchards", ORCHARD[:5], minutes=3 * DAY, outlet="courier"))
        assert pipeline.cluster()[0] == 2
        old_copy = store.membership("old-copy")
        recent_copy = store.membership("recent-copy")

    assert restored[0]["size"] == 0
    second = restored[1]
    assert old_copy is not None and recent_copy is not None
    assert second["recent"] is not None and recent_copy.matched_article_id == "recent"
    if window_days == 1:
        # Three days old: not restored, so no candidate; the copy founds its own cluster.
        assert second == {"size": 1, "old": None, "recent": second["recent"]}
        assert old_copy.matched_article_id is None
    else:
        # Within the window the same copy is restored and matched: the texts do match.
        assert second["size"] == 2 and second["old"] is not None
        assert old_copy.matched_article_id == "old"
