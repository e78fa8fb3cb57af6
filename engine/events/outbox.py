"""Engine events: one interface for everything that happened.

Events go into the ``events`` outbox in the caller's transaction; delivery
(webhooks) reads the outbox, so an event is never lost and never reported for
a change that rolled back.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from engine.ai.usage import record_once
from engine.db.tables import Event

FILE_UPLOADED = "file.uploaded"
FILE_PROCESSED = "file.processed"
WORKFLOW_STARTED = "workflow.started"
WORKFLOW_COMPLETED = "workflow.completed"
WORKFLOW_FAILED = "workflow.failed"


async def emit(
    session: AsyncSession,
    tenant_id: str,
    event_type: str,
    data: dict[str, Any],
    *,
    dedupe_key: str | None = None,
) -> bool:
    """Add an event to the outbox (once per ``dedupe_key``)."""
    event = Event(tenant_id=tenant_id, type=event_type, data=data, dedupe_key=dedupe_key)
    return await record_once(session, event, Event.dedupe_key, dedupe_key)
