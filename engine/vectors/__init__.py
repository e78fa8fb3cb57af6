"""The vector index behind one interface (``base``): vectors in the SQL database
searched in memory by default (``database``: an exact scan, and an HNSW graph
for large indexes, ``table`` and ``ann``), or a Qdrant server for scale-out
(``qdrant``)."""

from __future__ import annotations

from engine.platform.settings import Settings
from engine.vectors.base import VectorIndex
from engine.vectors.database import DatabaseVectorIndex

__all__ = ["DatabaseVectorIndex", "VectorIndex", "vector_index"]


def vector_index(settings: Settings) -> VectorIndex:
    """The index the settings choose (Qdrant is imported only when chosen)."""
    if settings.vector_index == "qdrant":
        from engine.vectors.qdrant import QdrantVectorIndex

        return QdrantVectorIndex.from_settings(settings)
    return DatabaseVectorIndex(ann_threshold=settings.vector_ann_threshold)
