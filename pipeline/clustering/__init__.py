"""Near-duplicate clustering: containment-aware MinHash LSH, incremental and stable.

Public names: ``ClusterEngine`` (incremental), ``cluster_documents`` (one batch) and
``batch_engine`` (an engine for one batch, streamed by ``newsagg dedup``).
"""

from __future__ import annotations

from pipeline.clustering.engine import ClusterEngine, batch_engine, cluster_documents

__all__ = ["ClusterEngine", "batch_engine", "cluster_documents"]
