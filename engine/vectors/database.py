"""The embedded default vector index: vectors live in the SQL database next to
their chunks (SQLite or PostgreSQL, no extension needed) and search is exact
cosine similarity over an in-memory matrix per (tenant, model).
Every write bumps an ``index_generations`` row in the same transaction; a
reader compares one small row before searching and reloads only when the
index changed, so API replicas and workers always agree.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from engine.db.tables import ChunkVector, IndexGeneration
from engine.vectors.base import Hit, VectorRow


@dataclass
class _Matrix:
    generation: int
    chunk_ids: np.ndarray
    file_ids: np.ndarray
    project_ids: np.ndarray
    vectors: np.ndarray  # rows L2-normalised, float32


def _normalise(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    normalised: np.ndarray = matrix / norms
    return normalised


async def bump_generation(session: AsyncSession, tenant_id: str, model: str | None) -> None:
    """Mark (tenant, model) — or every model of the tenant — as changed."""
    query = update(IndexGeneration).where(IndexGeneration.tenant_id == tenant_id)
    if model is None:
        await session.execute(query.values(generation=IndexGeneration.generation + 1))
        return
    changed = await session.execute(
        query.where(IndexGeneration.model == model).values(
            generation=IndexGeneration.generation + 1
        )
    )
    if changed.rowcount == 0:  # type: ignore[attr-defined]
        session.add(IndexGeneration(tenant_id=tenant_id, model=model, generation=1))
        await session.flush()


class DatabaseVectorIndex:
    """Exact search over vectors stored in the database (the embedded default)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], _Matrix] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def upsert(
        self, session: AsyncSession, tenant_id: str, model: str, rows: Sequence[VectorRow]
    ) -> None:
        """Idempotent: a chunk has at most one vector per model, whatever re-runs."""
        if not rows:
            return
        ids = [row.chunk_id for row in rows]
        await session.execute(
            delete(ChunkVector).where(ChunkVector.chunk_id.in_(ids), ChunkVector.model == model)
        )
        session.add_all(
            ChunkVector(
                chunk_id=row.chunk_id,
                model=model,
                tenant_id=tenant_id,
                file_id=row.file_id,
                project_id=row.project_id,
                dim=len(row.vector),
                vector=np.asarray(row.vector, dtype=np.float32).tobytes(),
            )
            for row in rows
        )
        await bump_generation(session, tenant_id, model)

    async def forget_file(self, session: AsyncSession, tenant_id: str, file_id: str) -> None:
        await session.execute(
            delete(ChunkVector).where(
                ChunkVector.tenant_id == tenant_id, ChunkVector.file_id == file_id
            )
        )
        await bump_generation(session, tenant_id, None)

    async def _matrix(self, session: AsyncSession, tenant_id: str, model: str) -> _Matrix | None:
        generation = await session.scalar(
            select(IndexGeneration.generation).where(
                IndexGeneration.tenant_id == tenant_id, IndexGeneration.model == model
            )
        )
        if generation is None:
            return None
        key = (tenant_id, model)
        cached = self._cache.get(key)
        if cached is not None and cached.generation == generation:
            return cached
        async with self._locks.setdefault(key, asyncio.Lock()):
            cached = self._cache.get(key)
            if cached is not None and cached.generation == generation:
                return cached
            result = await session.execute(
                select(
                    ChunkVector.chunk_id,
                    ChunkVector.file_id,
                    ChunkVector.project_id,
                    ChunkVector.vector,
                ).where(ChunkVector.tenant_id == tenant_id, ChunkVector.model == model)
            )
            rows = result.all()
            if rows:
                vectors = np.frombuffer(b"".join(row[3] for row in rows), dtype=np.float32)
                vectors = _normalise(vectors.reshape(len(rows), -1).copy())
            else:
                vectors = np.zeros((0, 1), dtype=np.float32)
            matrix = _Matrix(
                generation,
                np.array([row[0] for row in rows], dtype=object),
                np.array([row[1] for row in rows], dtype=object),
                np.array([row[2] for row in rows], dtype=object),
                vectors,
            )
            self._cache[key] = matrix
            return matrix

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
        matrix = await self._matrix(session, tenant_id, model)
        if matrix is None or not len(matrix.chunk_ids):
            return []
        vector = np.asarray(query, dtype=np.float32)
        if vector.shape[0] != matrix.vectors.shape[1]:
            return []  # another model's dimensions: nothing comparable
        scores = matrix.vectors @ (vector / (np.linalg.norm(vector) or 1.0))
        if file_ids or project_id:
            mask = np.ones(len(scores), dtype=bool)
            if file_ids:
                mask &= np.isin(matrix.file_ids, list(file_ids))
            if project_id:
                mask &= matrix.project_ids == project_id
            scores = np.where(mask, scores, -np.inf)  # filtered rows can never rank
        k = min(top_k, len(scores))
        best = np.argpartition(-scores, k - 1)[:k]
        best = best[np.argsort(-scores[best])]
        best = best[np.isfinite(scores[best])]
        return [
            Hit(str(matrix.chunk_ids[i]), str(matrix.file_ids[i]), float(scores[i])) for i in best
        ]
