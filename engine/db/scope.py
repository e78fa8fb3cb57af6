"""Tenant isolation in the data layer.

Routers never filter by tenant themselves: they receive a ``TenantScope`` bound
to the caller, and every read and write of a tenant-owned model goes through
it. A row of another tenant is simply not there (``NotFound``), never
``Forbidden`` and never returned.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from engine.platform.errors import InvalidInput, NotFound

T = TypeVar("T")


class TenantScope:
    """A session seen through one tenant (or, for a global admin, all tenants)."""

    def __init__(self, session: AsyncSession, tenant_id: str | None, *, all_tenants: bool) -> None:
        if tenant_id is None and not all_tenants:
            raise ValueError("a scope needs a tenant unless it spans all tenants")
        self.session = session
        self.tenant_id = tenant_id
        self.all_tenants = all_tenants

    def select(self, model: type[T]) -> Select[Any]:
        """``SELECT model`` already limited to the caller's tenant."""
        query = select(model)
        if not self.all_tenants:
            query = query.where(model.tenant_id == self.tenant_id)  # type: ignore[attr-defined]
        return query

    async def get(self, model: type[T], object_id: str, *, what: str | None = None) -> T:
        row = await self.session.get(model, object_id)
        if row is None or not self.owns(row):
            raise NotFound(f"{what or model.__name__} {object_id} not found")
        return row

    async def find(self, model: type[T], object_id: str) -> T | None:
        row = await self.session.get(model, object_id)
        return row if row is not None and self.owns(row) else None

    def owns(self, row: Any) -> bool:
        return self.all_tenants or getattr(row, "tenant_id", None) == self.tenant_id

    def tenant_for_new_row(self, requested: str | None) -> str:
        """The tenant a new row belongs to: the caller's, or (global admin) the named one."""
        if self.all_tenants:
            if not requested:
                raise InvalidInput("TenantId is required", details={"field": "TenantId"})
            return requested
        return str(self.tenant_id)

    def add(self, row: Any) -> None:
        if not self.all_tenants:
            row.tenant_id = self.tenant_id
        self.session.add(row)

    async def delete(self, row: Any) -> None:
        if not self.owns(row):
            raise NotFound("not found")
        await self.session.delete(row)
