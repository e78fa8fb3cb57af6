"""Keyset pagination with partio's ordering and filters.

A continuation token names the last row of a page by its sort key and id, so
pages never skip or repeat rows even while rows are added; it is tied to its
order, and a token from another order is refused.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from engine.platform.errors import InvalidInput


class Order(StrEnum):
    CREATED_ASCENDING = "CreatedAscending"
    CREATED_DESCENDING = "CreatedDescending"
    NAME_ASCENDING = "NameAscending"
    NAME_DESCENDING = "NameDescending"


@dataclass(frozen=True)
class EnumerationQuery:
    max_results: int = 100
    continuation_token: str | None = None
    order: Order = Order.CREATED_DESCENDING
    name_filter: str | None = None
    label_filter: str | None = None
    tag_key_filter: str | None = None
    tag_value_filter: str | None = None
    active_filter: bool | None = None


@dataclass
class Page:
    objects: list[Any]
    total: int
    remaining: int
    continuation_token: str | None
    end_of_results: bool = field(init=False)

    def __post_init__(self) -> None:
        self.end_of_results = self.remaining == 0


def _encode(order: Order, key: Any, row_id: str) -> str:
    value = key.isoformat() if isinstance(key, datetime) else key
    raw = json.dumps([order.value, value, row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(token: str, order: Order) -> tuple[Any, str]:
    try:
        padded = token + "=" * (-len(token) % 4)
        token_order, value, row_id = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, binascii.Error, TypeError):
        raise InvalidInput("ContinuationToken is not valid") from None
    if token_order != order.value:
        raise InvalidInput("ContinuationToken belongs to another Order")
    if order in (Order.CREATED_ASCENDING, Order.CREATED_DESCENDING):
        value = datetime.fromisoformat(value)
    return value, str(row_id)


def _matches_labels_and_tags(row: Any, query: EnumerationQuery) -> bool:
    if query.label_filter and query.label_filter not in (row.labels or []):
        return False
    tags = row.tags or {}
    if query.tag_key_filter and query.tag_key_filter not in tags:
        return False
    if query.tag_value_filter is not None and query.tag_value_filter != "":
        if query.tag_key_filter:
            return str(tags.get(query.tag_key_filter)) == query.tag_value_filter
        return query.tag_value_filter in {str(value) for value in tags.values()}
    return True


async def enumerate_rows(
    session: AsyncSession,
    base: Select[Any],
    *,
    model: Any,
    name_column: InstrumentedAttribute[Any],
    query: EnumerationQuery,
) -> Page:
    """One page of ``base`` (already tenant-scoped) in partio's order and filters."""
    if not 1 <= query.max_results <= 1000:
        raise InvalidInput("MaxResults must be between 1 and 1000")
    by_name = query.order in (Order.NAME_ASCENDING, Order.NAME_DESCENDING)
    descending = query.order in (Order.CREATED_DESCENDING, Order.NAME_DESCENDING)
    key_column = name_column if by_name else model.created_at
    id_column = model.id

    conditions: list[ColumnElement[bool]] = []
    if query.name_filter:
        conditions.append(func.lower(name_column).contains(query.name_filter.lower()))
    if query.active_filter is not None and hasattr(model, "active"):
        conditions.append(model.active.is_(query.active_filter))
    filtered = base.where(*conditions)
    ordering = (
        (key_column.desc(), id_column.desc()) if descending else (key_column.asc(), id_column.asc())
    )

    def after(key: Any, row_id: str) -> ColumnElement[bool]:
        if descending:
            return or_(key_column < key, and_(key_column == key, id_column < row_id))
        return or_(key_column > key, and_(key_column == key, id_column > row_id))

    start = _decode(query.continuation_token, query.order) if query.continuation_token else None
    if query.label_filter or query.tag_key_filter or query.tag_value_filter:
        # JSON containment differs between SQLite and PostgreSQL: filter these in Python.
        rows = [
            row
            for row in (await session.scalars(filtered.order_by(*ordering))).all()
            if _matches_labels_and_tags(row, query)
        ]
        total = len(rows)
        if start is not None:
            rows = [row for row in rows if _is_after(row, key_column, start, descending)]
        objects = rows[: query.max_results]
        remaining = len(rows) - len(objects)
    else:
        total = int(
            await session.scalar(select(func.count()).select_from(filtered.subquery())) or 0
        )
        page_query = filtered if start is None else filtered.where(after(*start))
        objects = list(
            (await session.scalars(page_query.order_by(*ordering).limit(query.max_results))).all()
        )
        remaining = 0
        if objects:
            last = objects[-1]
            rest = filtered.where(after(getattr(last, key_column.key), last.id))
            remaining = int(
                await session.scalar(select(func.count()).select_from(rest.subquery())) or 0
            )
    token = None
    if objects and remaining:
        token = _encode(query.order, getattr(objects[-1], key_column.key), objects[-1].id)
    return Page(objects, total, remaining, token)


def _is_after(row: Any, key_column: Any, start: tuple[Any, str], descending: bool) -> bool:
    key, row_id = getattr(row, key_column.key), row.id
    if descending:
        return (key, row_id) < start
    return (key, row_id) > start
