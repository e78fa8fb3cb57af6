"""The embedded default vector index: vectors live in the SQL database next to
their chunks (SQLite or PostgreSQL, no extension needed) and are searched in
memory, one ``VectorTable`` per (tenant, model): an exact float16 scan, and
HNSW graphs once the table holds ``ann_threshold`` vectors (``table``, ``ann``).

Every write bumps an ``index_generations`` row in the same transaction; a
reader compares one small row before searching and reloads only when the
index changed, so API replicas and workers always agree. A reload reads the
stored rows again but changes only what differs: new and re-embedded chunks
are appended (and added to the graphs), deleted ones retired, so no graph is
rebuilt for a new document.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from engine.db.tables import ChunkVector, IndexGeneration
from engine.vectors.base import Hit, VectorRow
from engine.vectors.table import StoredRow, VectorTable

DEFAULT_ANN_THRESHOLD = 50_000
_LOAD_BATCH = 10_000  # rows per fetch while (re)loading
_INLINE_SCAN_ROWS = 50_000  # a longer exact scan runs in a thread, off the event loop


@dataclass(frozen=True)
class IndexStats:
    rows: int  # live vectors
    dead: int  # retired rows not yet compacted away
    dimensions: int
    graph: bool  # ANN graphs are answering searches
    memory_bytes: int


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
    """Vectors stored in the database, searched in memory (the embedded default).

    Args:
        ann_threshold: live vectors of one (tenant, model) from which an HNSW
            graph answers searches (``Settings.vector_ann_threshold``).
    """

    def __init__(self, *, ann_threshold: int = DEFAULT_ANN_THRESHOLD) -> None:
        self.ann_threshold = ann_threshold
        self._tables: dict[tuple[str, str], VectorTable] = {}
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

    async def _table(self, session: AsyncSession, tenant_id: str, model: str) -> VectorTable | None:
        generation = await session.scalar(
            select(IndexGeneration.generation).where(
                IndexGeneration.tenant_id == tenant_id, IndexGeneration.model == model
            )
        )
        if generation is None:
            return None
        key = (tenant_id, model)
        lock = self._locks.setdefault(key, asyncio.Lock())
        table = self._tables.get(key)
        if table is not None and table.generation == generation:
            if table.build is not None and table.build.done and not lock.locked():
                table.sync_graph(self.ann_threshold)  # publish the graph built meanwhile
            return table
        async with lock:
            table = self._tables.get(key)
            if table is None or table.generation != generation:
                table = await self._reload(session, tenant_id, model, table, generation)
                self._tables[key] = table
            table.sync_graph(self.ann_threshold)
            return table

    async def _reload(
        self,
        session: AsyncSession,
        tenant_id: str,
        model: str,
        table: VectorTable | None,
        generation: int,
    ) -> VectorTable:
        """Reconcile ``table`` (or a new one) with the stored rows, batch by batch."""
        # Core rows on the session's connection (and transaction): no ORM layer
        # between a million rows and the table.
        connection = await session.connection()
        result = await connection.stream(
            select(ChunkVector.chunk_id, ChunkVector.file_id, ChunkVector.project_id,
                   ChunkVector.vector)
            .where(ChunkVector.tenant_id == tenant_id, ChunkVector.model == model)
            .execution_options(yield_per=_LOAD_BATCH)
        )  # fmt: skip
        reconcile = None
        async for batch in result.partitions():
            rows = cast(Sequence[StoredRow], batch)
            if reconcile is None:
                dim = len(rows[0][3]) // 4
                if table is None or table.dim != dim:
                    table = VectorTable(dim)  # first load, or the model changed shape
                reconcile = table.reconcile()
            reconcile.feed(rows)
        if table is None:  # nothing stored: an empty table remembers the generation
            table = VectorTable(0)
        (reconcile or table.reconcile()).finish(generation)  # retires what is gone
        return table

    async def stats(
        self, session: AsyncSession, tenant_id: str, model: str, *, wait_for_graph: bool = False
    ) -> IndexStats | None:
        """Load (tenant, model) if needed and describe it; ``wait_for_graph`` waits
        for a graph being built (a warm-up before serving, and benchmarks)."""
        table = await self._table(session, tenant_id, model)
        if table is None:
            return None
        if wait_for_graph and table.build is not None:
            await asyncio.to_thread(table.build.join)
            async with self._locks.setdefault((tenant_id, model), asyncio.Lock()):
                table.sync_graph(self.ann_threshold)
        return IndexStats(
            table.count, table.dead, table.dim, bool(table.graphs), table.memory_bytes()
        )

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
        table = await self._table(session, tenant_id, model)
        if table is None or table.count == 0:
            return []
        vector = np.asarray(query, dtype=np.float32)
        if vector.shape != (table.dim,):
            return []  # another model's dimensions: nothing comparable
        vector = vector / (np.linalg.norm(vector) or 1.0)
        if not table.graphs and table.size > _INLINE_SCAN_ROWS:
            return await asyncio.to_thread(
                table.search,
                vector,
                top_k=top_k,
                file_ids=file_ids,
                project_id=project_id,
                exact=True,
            )
        return table.search(vector, top_k=top_k, file_ids=file_ids, project_id=project_id)
