"""Inbound callbacks as the API shows them: the answer to a delivered callback, and
an execution's callbacks (URL and secret while one waits)."""

from __future__ import annotations

from pydantic import BaseModel

from engine.events.callbacks import Received
from engine.events.catalog import iso
from engine.pipelines.executions import ExecutionCallback


class CallbackReceivedPublic(BaseModel):
    callback_id: str
    status: str  # "received"
    message_id: str
    received_at: str
    # True when this was the same message again: answered, not delivered twice.
    duplicate: bool

    @classmethod
    def of(cls, received: Received) -> CallbackReceivedPublic:
        return cls(
            callback_id=received.callback_id,
            status="received",
            message_id=received.message_id,
            received_at=iso(received.received_at),
            duplicate=received.duplicate,
        )


class CallbackPublic(BaseModel):
    callback_id: str
    execution_id: str
    step_id: str | None
    status: str  # waiting | received | expired
    # While it waits: the path to POST to (on this API's address) and the signing
    # secret (``whsec_…``: a Standard Webhooks key, or the sha256= HMAC key as is).
    callback_url: str | None
    secret: str | None
    expires_at: str
    created_at: str
    received_at: str | None
    message_id: str | None

    @classmethod
    def of(cls, found: ExecutionCallback) -> CallbackPublic:
        return cls(
            callback_id=found.callback_id,
            execution_id=found.execution_id,
            step_id=found.step_id,
            status=found.status,
            callback_url=found.callback_url,
            secret=found.secret,
            expires_at=iso(found.expires_at),
            created_at=iso(found.created_at),
            received_at=iso(found.received_at) if found.received_at else None,
            message_id=found.message_id,
        )


class CallbacksPublic(BaseModel):
    execution_id: str
    callbacks: list[CallbackPublic]
