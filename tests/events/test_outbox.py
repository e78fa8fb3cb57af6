"""The outbox is part of the caller's transaction: a rollback leaves no event,
and nothing is visible to anyone else before the commit (both databases)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.api.enums.v1 import EventType
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from engine.db.connection import create_engine, create_sessionmaker, transaction
from engine.db.tables import Event
from engine.events import outbox
from engine.events.catalog import EventType as WeftEvent
from engine.events.doorbell import Doorbell
from engine.platform.settings import Settings
from tests.conftest import make_tenant, worker_stack
from tests.events.support import emit_events
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


async def test_the_dispatcher_watches_the_outbox_without_a_signal_or_an_activity_per_event(
    settings: Settings, temporal_env: WorkflowEnvironment
) -> None:
    """After the first ring, events are handed on by the one watching activity:
    commits without any doorbell are found within the watch, and the dispatcher's
    history grows by nothing per event."""
    async with worker_stack(settings, temporal_env, "watch") as stack:
        tenant_id = stack.tenant.tenant_id
        handle = temporal_env.client.get_workflow_handle(
            dispatcher_id(stack.settings.task_queue_prefix)
        )
        first = await emit_events(stack.settings, temporal_env.client, tenant_id, 5)
        engine = create_engine(stack.settings)
        quiet = create_sessionmaker(engine)  # no doorbell: nobody rings for these
        later: list[str] = []
        try:
            await wait_dispatched(quiet, first)
            for batch in range(5):
                async with transaction(quiet) as session:
                    for n in range(10):
                        data = {"batch": batch, "n": n}
                        event_id = await outbox.emit(
                            session, tenant_id, WeftEvent.SYSTEM_NOTIFICATION, data
                        )
                        assert event_id is not None
                        later.append(event_id)
                await asyncio.sleep(0.3)
            await wait_dispatched(quiet, later)
        finally:
            await engine.dispose()
        history = await handle.fetch_history()
        kinds = Counter(event.event_type for event in history.events)
        assert kinds[EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED] == 1
        assert kinds[EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED] == 1, kinds
    with contextlib.suppress(RPCError):
        await handle.terminate()


async def wait_dispatched(sessions: async_sessionmaker[AsyncSession], ids: list[str]) -> None:
    async with asyncio.timeout(60):
        while True:
            async with sessions() as session:
                left = await session.scalar(
                    select(func.count())
                    .select_from(Event)
                    .where(Event.id.in_(ids), Event.dispatched_at.is_(None))
                )
            if not left:
                return
            await asyncio.sleep(0.1)
