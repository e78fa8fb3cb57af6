"""Writing a row once per dedupe key (for work that may run twice: retried
activities, repeated requests)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession


async def record_once(
    session: AsyncSession, row: Any, key_column: Any, dedupe_key: str | None
) -> bool:
    """Add ``row`` unless a row with the same dedupe key exists; True when added."""
    if dedupe_key:
        seen = await session.scalar(
            select(func.count()).select_from(type(row)).where(key_column == dedupe_key)
        )
        if seen:
            return False
    if not dedupe_key or session.get_bind().dialect.name == "sqlite":
        # Nothing can clash without a key; and SQLite runs one writer at a time, so
        # the check above holds there. (A SAVEPOINT would be wrong on SQLite: as a
        # transaction's first write it opens a transaction of its own, which its
        # RELEASE commits, outside the caller's.)
        session.add(row)
        return True
    try:
        async with session.begin_nested():
            session.add(row)
    except IntegrityError:  # a concurrent retry won the race on the unique key
        return False
    return True
