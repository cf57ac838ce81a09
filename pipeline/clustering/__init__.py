"""Near-duplicate clustering: containment-aware MinHash LSH, incremental and stable.

Public names: ``ClusterEngine`` (incremental) and ``cluster_documents`` (one batch,
``newsagg dedup``).
"""

from __future__ import annotations

from pipeline.clustering.engine import ClusterEngine, cluster_documents

__all__ = ["ClusterEngine", "cluster_documents"]
