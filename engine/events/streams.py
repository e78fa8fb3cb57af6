"""What stream clients see and say: event messages in each contract's shape,
the client messages the WebSockets understand, and who may see which events.

- z2 ``/ws`` and zentoria ``/api/v1/mcp/stream``: ``{"type", "id", "timestamp",
  "data"}`` per event (``type`` the event type, ``id`` the event id), plus its
  stream position ``seq`` and ``subject``.
- auterity ``/ws/executions``: ``execution_update`` messages for pipeline
  executions only.
- SSE: ``id: <seq>``, ``event: <type>``, ``data: <public event>``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.events.catalog import ALL, EventType, Published, iso
from engine.identity.principals import Principal, authenticate
from engine.platform.errors import Forbidden, Unauthorized
from engine.platform.settings import Settings

# A stream of one execution ends with its first terminal event.
TERMINAL = frozenset(
    {EventType.WORKFLOW_COMPLETED, EventType.WORKFLOW_FAILED, EventType.WORKFLOW_CANCELLED}
)
# auterity's execution statuses; other event types are not execution updates.
EXECUTION_STATUS = {
    EventType.WORKFLOW_STARTED: "execution_started",
    EventType.WORKFLOW_STEP_COMPLETED: "step_completed",
    EventType.WORKFLOW_COMPLETED: "execution_completed",
    EventType.WORKFLOW_FAILED: "execution_failed",
    EventType.WORKFLOW_CANCELLED: "execution_cancelled",
}
# The scope a credential needs to see each family of events (None: any).
SCOPE_BY_FAMILY: dict[str, str | None] = {
    "file": "files:read",
    "workflow": "workflows:read",
    "agent": "agents:read",
    "ai": "ai:chat",
    "webhook": "webhooks:read",
    "system": None,
}
COMMAND_NOT_SUPPORTED = "COMMAND_NOT_SUPPORTED"


def now_iso() -> str:
    return iso(datetime.now(UTC))


def visible_types(principal: Principal) -> frozenset[str]:
    """The event types ``principal``'s scopes let it see."""
    seen = set()
    for kind in EventType:
        scope = SCOPE_BY_FAMILY.get(kind.value.split(".", 1)[0])
        if scope is None or principal.allows(scope):
            seen.add(kind.value)
    return frozenset(seen)


async def stream_principal(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, credential: str | None
) -> Principal:
    """The tenant-bound caller behind a stream's credential (Unauthorized /
    Forbidden otherwise)."""
    if not credential or not credential.strip():
        raise Unauthorized("Authentication required: send a token or an API key")
    async with sessions() as session:
        principal = await authenticate(session, settings, credential.strip())
        await session.commit()  # key use is recorded; the connection goes back to the pool
    if principal.tenant_id is None:
        raise Forbidden("This credential is not bound to a tenant")
    if not visible_types(principal):
        raise Forbidden("This credential may not read any events")
    return principal


def event_message(event: Published) -> dict[str, Any]:
    """z2's (and zentoria's) WebSocket message for one event."""
    return {
        "type": event.type,
        "id": event.id,
        "timestamp": iso(event.timestamp),
        "data": event.data,
        "seq": event.seq,
        "subject": event.subject,
    }


def notice(kind: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """A message of the stream itself (``connected``, ``subscribed``, ``pong``)."""
    return {"type": kind, "id": None, "timestamp": now_iso(), "data": data or {}}


def error_message(code: str, message: str) -> dict[str, Any]:
    return {
        "type": "error",
        "id": None,
        "timestamp": now_iso(),
        "error": {"code": code, "message": message},
        "data": {},
    }


def is_execution_event(event: Published) -> bool:
    """A pipeline execution's lifecycle event (document runs carry no ``workflow_id``)."""
    return (
        event.type in EXECUTION_STATUS
        and event.subject is not None
        and "workflow_id" in event.data
        and event.data.get("execution_id", event.subject) == event.subject
    )


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def execution_update(event: Published) -> dict[str, Any] | None:
    """auterity's ``execution_update`` for a pipeline event; None for any other event."""
    if not is_execution_event(event):
        return None
    data = event.data
    status = EXECUTION_STATUS[EventType(event.type)]
    given = data.get("progress")
    progress: dict[str, Any] = given if isinstance(given, dict) else {}
    total = _count(progress.get("total_steps")) or _count(data.get("total_steps"))
    done = _count(progress.get("completed_steps"))
    if done is None and event.type == EventType.WORKFLOW_STARTED:
        done = 0
    elif done is None and event.type == EventType.WORKFLOW_COMPLETED:
        done = total
    message: dict[str, Any] = {
        "type": "execution_update",
        "execution_id": event.subject,
        "workflow_id": data.get("workflow_id"),
        "status": status,
        "step_id": data.get("step_id"),
        "step_name": data.get("step_name"),
        "progress": {"completed_steps": done, "total_steps": total},
        "timestamp": iso(event.timestamp),
        "event_id": event.id,
        "seq": event.seq,
    }
    if event.type == EventType.WORKFLOW_FAILED:
        error = data.get("error")
        message["error"] = error if isinstance(error, dict) else {"message": str(error or "")}
    if event.type == EventType.WORKFLOW_COMPLETED:
        message["duration_ms"] = data.get("duration_ms")
        message["output_data"] = data.get("output_data")
    return message


def sse_frame(event: Published) -> bytes:
    data = json.dumps(event.public(), separators=(",", ":"))
    return f"id: {event.seq}\nevent: {event.type}\ndata: {data}\n\n".encode()


SSE_HEARTBEAT = b": keep-alive\n\n"


@dataclass(frozen=True)
class ClientMessage:
    """One message a WebSocket client sent, as the stream understands it."""

    kind: str  # ping, subscribe, unsubscribe, auth, command, invalid, unknown
    token: str | None = None
    subject: str | None = None
    types: frozenset[str] | None = None
    command: str | None = None
    raw_type: str | None = None


def client_message(text: str) -> ClientMessage:
    try:
        body = json.loads(text)
    except ValueError:
        return ClientMessage("invalid")
    if not isinstance(body, dict):
        return ClientMessage("invalid")
    kind = body.get("type")
    token = body.get("token") if isinstance(body.get("token"), str) else None
    if kind in ("ping", "unsubscribe", "auth"):
        return ClientMessage(kind, token=token)
    if kind == "subscribe":
        subject = body.get("execution_id") or body.get("subject")
        raw = body.get("events", body.get("types"))
        types = _types(raw) if raw is not None else None
        if (subject is not None and not isinstance(subject, str)) or (
            raw is not None and types is None
        ):
            return ClientMessage("invalid")
        return ClientMessage("subscribe", token=token, subject=subject, types=types)
    if kind == "command":
        command = body.get("command")
        return ClientMessage(
            "command", token=token, command=command if isinstance(command, str) else None
        )
    return ClientMessage("unknown", token=token, raw_type=str(kind) if kind is not None else None)


def _types(raw: Any) -> frozenset[str] | None:
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        return None
    return frozenset(raw)


def requested_types(allowed: frozenset[str], wanted: Iterable[str] | None) -> frozenset[str]:
    """``wanted`` (None or ``*``: everything) limited to what the caller may see."""
    if wanted is None:
        return allowed
    wanted = frozenset(wanted)
    return allowed if ALL in wanted else allowed & wanted
