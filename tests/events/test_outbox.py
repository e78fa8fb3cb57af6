"""The outbox is part of the caller's transaction: a rollback leaves no event,
and nothing is visible to anyone else before the commit (both databases)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from engine.db.connection import create_engine, create_sessionmaker, transaction
from engine.db.tables import Event
from engine.events import outbox
from engine.events.catalog import EventType
from engine.platform.settings import Settings
from tests.conftest import make_tenant

pytestmark = pytest.mark.asyncio


class Abort(Exception):
    pass


async def test_events_commit_and_roll_back_with_the_change_they_describe(
    settings: Settings,
) -> None:
    tenant = await make_tenant(settings, "outbox")
    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)

    async def count() -> int:
        async with sessions() as other:
            return int(await other.scalar(select(func.count()).select_from(Event)) or 0)

    try:
        for key in (None, "once"):  # with and without a dedupe key
            with pytest.raises(Abort):
                async with transaction(sessions) as session:
                    for n in range(3):
                        dedupe = f"{key}-{n}" if key else None
                        await outbox.emit(
                            session, tenant.tenant_id, EventType.SYSTEM_NOTIFICATION,
                            {"n": n}, dedupe_key=dedupe,
                        )  # fmt: skip
                    await session.flush()
                    assert await count() == 0  # not visible before the commit
                    raise Abort
            assert await count() == 0  # and gone with the rollback

        async with transaction(sessions) as session:
            first = await outbox.emit(
                session, tenant.tenant_id, EventType.SYSTEM_NOTIFICATION, {}, dedupe_key="k"
            )
            again = await outbox.emit(
                session, tenant.tenant_id, EventType.SYSTEM_NOTIFICATION, {}, dedupe_key="k"
            )
        assert first is not None and again is None
        assert await count() == 1
    finally:
        await engine.dispose()
