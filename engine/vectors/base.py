"""The vector index interface every backend implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(frozen=True)
class VectorRow:
    chunk_id: str
    file_id: str
    project_id: str | None
    vector: Sequence[float]


@dataclass(frozen=True)
class Hit:
    chunk_id: str
    file_id: str
    score: float


class VectorIndex(Protocol):
    async def upsert(
        self, session: AsyncSession, tenant_id: str, model: str, rows: Sequence[VectorRow]
    ) -> None: ...

    async def forget_file(self, session: AsyncSession, tenant_id: str, file_id: str) -> None: ...

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
    ) -> list[Hit]: ...
