"""Near-duplicate clustering: containment-aware MinHash LSH, incremental and stable.

Public names: ``ClusterEngine`` (incremental), ``cluster_documents`` (one batch,
``newsagg dedup``) and ``detect_agency`` (used by the stories stage).
"""

from __future__ import annotations

from pipeline.clustering.agency import detect_agency
from pipeline.clustering.engine import ClusterEngine, cluster_documents

__all__ = ["ClusterEngine", "cluster_documents", "detect_agency"]
