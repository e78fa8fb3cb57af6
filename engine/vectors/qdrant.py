"""The scale-out vector index: a Qdrant server (or Qdrant's embedded local mode).

One collection per embedding model (cosine distance); every point carries its
tenant, file and project in the payload, and every search filters by tenant.
Point ids derive from (chunk, model), so a re-run overwrites instead of adding.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from qdrant_client import AsyncQdrantClient, models
from sqlalchemy.ext.asyncio import AsyncSession

from engine.platform.settings import Settings
from engine.vectors.base import Hit, VectorRow

_NAMESPACE = uuid.UUID("8d3c1f1e-6a0e-4c55-9d0b-2f8f5b9c7a11")


def collection_for(model: str) -> str:
    return "weft_" + re.sub(r"[^A-Za-z0-9_]+", "_", model).lower()


def point_id(chunk_id: str, model: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{chunk_id}/{model}"))


@lru_cache(maxsize=4)
def qdrant_client(location: str) -> AsyncQdrantClient:
    """One client per location and process (embedded mode allows only one per folder)."""
    if location.startswith(("http://", "https://")):
        return AsyncQdrantClient(url=location)
    if location == ":memory:":
        return AsyncQdrantClient(location=":memory:")
    return AsyncQdrantClient(path=location)


class QdrantVectorIndex:
    """VectorIndex over Qdrant; the database session is not needed and not used."""

    def __init__(self, client: AsyncQdrantClient) -> None:
        self.client = client
        self._known: set[str] = set()

    @classmethod
    def from_settings(cls, settings: Settings) -> QdrantVectorIndex:
        location = settings.qdrant_url or str(settings.data_dir / "qdrant")
        return cls(qdrant_client(location))

    async def _collection(self, model: str, size: int) -> str:
        name = collection_for(model)
        if name not in self._known:
            if not await self.client.collection_exists(name):
                await self.client.create_collection(
                    name,
                    vectors_config=models.VectorParams(size=size, distance=models.Distance.COSINE),
                )
                for key in ("tenant_id", "file_id", "project_id"):
                    await self.client.create_payload_index(
                        name, key, field_schema=models.PayloadSchemaType.KEYWORD
                    )
            self._known.add(name)
        return name

    async def upsert(
        self, session: AsyncSession, tenant_id: str, model: str, rows: Sequence[VectorRow]
    ) -> None:
        if not rows:
            return
        name = await self._collection(model, len(rows[0].vector))
        points = [
            models.PointStruct(
                id=point_id(row.chunk_id, model),
                vector=list(row.vector),
                payload={
                    "tenant_id": tenant_id,
                    "file_id": row.file_id,
                    "project_id": row.project_id,
                    "chunk_id": row.chunk_id,
                },
            )  # fmt: skip
            for row in rows
        ]
        await self.client.upsert(name, points=points, wait=True)

    async def forget_file(self, session: AsyncSession, tenant_id: str, file_id: str) -> None:
        selector = models.FilterSelector(filter=_filter(tenant_id, file_ids=[file_id]))
        for collection in (await self.client.get_collections()).collections:
            if collection.name.startswith("weft_"):
                await self.client.delete(collection.name, points_selector=selector, wait=True)

    async def search(
        self,
        session: AsyncSession,
        tenant_id: str,
        model: str,
        query: Sequence[float],
        *,
        top_k: int,
        file_ids: Sequence[str] | None = None,
        project_id: str | None = None,
    ) -> list[Hit]:
        name = collection_for(model)
        if not await self.client.collection_exists(name):
            return []
        answer = await self.client.query_points(
            name,
            query=list(query),
            query_filter=_filter(tenant_id, file_ids=file_ids, project_id=project_id),
            limit=top_k,
            with_payload=True,
        )
        return [_hit(point.payload or {}, point.score) for point in answer.points]


def _filter(
    tenant_id: str, *, file_ids: Sequence[str] | None = None, project_id: str | None = None
) -> models.Filter:
    must: list[Any] = [
        models.FieldCondition(key="tenant_id", match=models.MatchValue(value=tenant_id))
    ]
    if file_ids:
        must.append(models.FieldCondition(key="file_id", match=models.MatchAny(any=list(file_ids))))
    if project_id:
        must.append(
            models.FieldCondition(key="project_id", match=models.MatchValue(value=project_id))
        )
    return models.Filter(must=must)


def _hit(payload: dict[str, Any], score: float) -> Hit:
    return Hit(str(payload["chunk_id"]), str(payload["file_id"]), float(score))
