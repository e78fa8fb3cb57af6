"""The event catalog: every event type the engine emits, and the public shape
of an event (what webhooks receive and streams show).

An event is ``{"id", "event", "type", "timestamp", "data"}``: zentoria names the
type ``event``, z2 names it ``type``; both are sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class EventType(StrEnum):
    FILE_UPLOADED = "file.uploaded"
    FILE_PROCESSED = "file.processed"
    WORKFLOW_STARTED = "workflow.started"
    WORKFLOW_STEP_COMPLETED = "workflow.step_completed"
    WORKFLOW_PROGRESS = "workflow.progress"
    WORKFLOW_COMPLETED = "workflow.completed"
    WORKFLOW_FAILED = "workflow.failed"
    WORKFLOW_CANCELLED = "workflow.cancelled"
    AGENT_ERROR = "agent.error"
    AI_RESPONSE = "ai.response"
    SYSTEM_NOTIFICATION = "system.notification"
    # An A2A task changed state (submitted, working, input-required, completed, …).
    A2A_TASK_STATUS = "a2a.task.status"
    # Sent by POST /webhooks/{id}/test to that one webhook only.
    WEBHOOK_TEST = "webhook.test"


# Types a webhook may subscribe to ("*" subscribes to all of them).
SUBSCRIBABLE = frozenset(t.value for t in EventType if t is not EventType.WEBHOOK_TEST)
ALL = "*"
# Texts in event data (a question, an answer) are cut to this many characters.
EXCERPT_CHARS = 2000


def excerpt(text: str) -> str:
    return text[:EXCERPT_CHARS]


@dataclass(frozen=True)
class Published:
    """An event once the dispatcher has given it its stream position ``seq``."""

    seq: int
    id: str
    tenant_id: str
    type: str
    subject: str | None
    timestamp: datetime
    data: dict[str, Any]

    def public(self) -> dict[str, Any]:
        return public_event(self.id, self.type, self.timestamp, self.data)

    def to_wire(self) -> dict[str, Any]:
        """The form carried between processes (Redis pub/sub)."""
        return {
            "seq": self.seq,
            "id": self.id,
            "tenant_id": self.tenant_id,
            "type": self.type,
            "subject": self.subject,
            "timestamp": self.timestamp.isoformat(),
            "data": self.data,
        }

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> Published:
        return cls(
            seq=int(wire["seq"]),
            id=str(wire["id"]),
            tenant_id=str(wire["tenant_id"]),
            type=str(wire["type"]),
            subject=wire.get("subject"),
            timestamp=datetime.fromisoformat(str(wire["timestamp"])),
            data=dict(wire.get("data") or {}),
        )


def stream_channel(task_queue_prefix: str) -> str:
    """The Redis pub/sub channel the dispatcher publishes sequenced events on."""
    return f"weft:{task_queue_prefix}events"


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def public_event(
    event_id: str, event_type: str, timestamp: datetime, data: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": event_id,
        "event": event_type,
        "type": event_type,
        "timestamp": iso(timestamp),
        "data": data,
    }
