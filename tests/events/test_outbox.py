"""The outbox is part of the caller's transaction: a rollback leaves no event,
and nothing is visible to anyone else before the commit (both databases)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest
from sqlalchemy import func, select
from temporalio.api.enums.v1 import EventType
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from engine.db.connection import create_engine, create_sessionmaker, transaction
from engine.db.tables import Event
from engine.events import outbox
from engine.events.catalog import EventType as WeftEvent
from engine.events.doorbell import Doorbell
from engine.platform.settings import Settings
from tests.conftest import make_tenant
from workflows.event_dispatch import dispatcher_id

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
                            session, tenant.tenant_id, WeftEvent.SYSTEM_NOTIFICATION,
                            {"n": n}, dedupe_key=dedupe,
                        )  # fmt: skip
                    await session.flush()
                    assert await count() == 0  # not visible before the commit
                    raise Abort
            assert await count() == 0  # and gone with the rollback

        async with transaction(sessions) as session:
            first = await outbox.emit(
                session, tenant.tenant_id, WeftEvent.SYSTEM_NOTIFICATION, {}, dedupe_key="k"
            )
            again = await outbox.emit(
                session, tenant.tenant_id, WeftEvent.SYSTEM_NOTIFICATION, {}, dedupe_key="k"
            )
        assert first is not None and again is None
        assert await count() == 1
    finally:
        await engine.dispose()


async def test_a_busy_process_wakes_the_dispatcher_once_per_interval(
    settings: Settings, temporal_env: WorkflowEnvironment
) -> None:
    """Rings within ``event_wake_interval_seconds`` of a wake share the next one
    (each wake is a signal and a dispatch round); closing sends it at once."""
    isolated = settings.model_copy(
        update={"task_queue_prefix": f"t{uuid.uuid4().hex[:8]}-", "event_wake_interval_seconds": 60}
    )
    bell = Doorbell(temporal_env.client, isolated)
    handle = temporal_env.client.get_workflow_handle(dispatcher_id(isolated.task_queue_prefix))

    async def wakes() -> int:
        try:
            history = await handle.fetch_history()
        except RPCError:
            return 0  # not started yet
        signaled = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        return sum(event.event_type == signaled for event in history.events)

    async def wait_for_wakes(count: int) -> None:
        for _ in range(300):
            if await wakes() >= count:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"no wake {count} within 30 s")

    try:
        bell.ring()
        await wait_for_wakes(1)
        for _ in range(20):
            bell.ring()
            await asyncio.sleep(0.05)
        await asyncio.sleep(1)
        assert await wakes() == 1  # held: the interval is a minute
        await bell.close()
        assert await wakes() == 2  # sent by close, all 20 rings in one
    finally:
        await bell.close()
        with contextlib.suppress(RPCError):
            await handle.terminate()
