"""Recording events: the one interface every capability emits through.

An event goes into the ``events`` outbox in the caller's transaction, so it
exists exactly when the change it describes does. After the commit the
process's doorbell (``engine.events.doorbell``) wakes the dispatcher workflow,
which sequences the outbox and hands each event to webhooks and streams.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from engine.db.dedupe import record_once
from engine.db.tables import Event
from engine.events.catalog import EventType
from engine.platform.ids import new_id

# Set on a session that added an event: its commit rings the doorbell.
PENDING = "weft_events_pending"


async def emit_many(session: AsyncSession, events: list[dict[str, Any]]) -> None:
    """Add events without dedupe keys in one statement: each a dict of
    ``tenant_id``, ``type`` (an EventType), ``data`` and ``subject``."""
    if not events:
        return
    rows = [{**event, "type": EventType(event["type"]).value} for event in events]
    await session.execute(insert(Event), rows)
    session.info[PENDING] = True


async def emit(
    session: AsyncSession,
    tenant_id: str,
    event_type: EventType,
    data: dict[str, Any],
    *,
    subject: str | None = None,
    dedupe_key: str | None = None,
) -> str | None:
    """Add an event to the outbox (once per ``dedupe_key``); its id, None when a
    repeat of ``dedupe_key``."""
    event = Event(
        id=new_id("evt"),
        tenant_id=tenant_id,
        type=event_type.value,
        subject=subject,
        data=data,
        dedupe_key=dedupe_key,
    )
    added = await record_once(session, event, Event.dedupe_key, dedupe_key)
    if not added:
        return None
    session.info[PENDING] = True
    return event.id
