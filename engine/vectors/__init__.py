"""The vector index behind one interface (``base``): exact search in the SQL
database by default (``database``), or a Qdrant server for scale-out (``qdrant``)."""

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
    return DatabaseVectorIndex()
