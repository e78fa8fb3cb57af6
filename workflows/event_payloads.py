"""Payloads of the event dispatcher and webhook delivery workflows.

They carry ids only: the event body and the webhook's URL and secret are read
by the activities, so no secret ever enters a workflow history.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class DispatchInput(BaseModel):
    poll_seconds: float = 5.0
    batch: int = 500


class DispatchBatch(BaseModel):
    limit: int


class DispatchResult(BaseModel):
    sequenced: int
    dispatched: int
    deliveries: int
    more: bool  # a full batch: look again at once
    # The activity watched the outbox itself for a while: the next one starts at
    # once (False in histories from before it did).
    watched: bool = False


class DeliveryInput(BaseModel):
    tenant_id: str
    event_id: str
    webhook_id: str
    # When each attempt is due, in seconds after the event (the first normally 0),
    # and the jitter fraction that stretches each wait.
    schedule_seconds: list[float] = Field(min_length=1)
    jitter: float = 0.0
    # Bounds one attempt's activity: the request's own timeout plus a generous
    # margin for a busy database (a dead worker is noticed by its heartbeat).
    attempt_timeout_seconds: float = 120.0


class AttemptInput(BaseModel):
    tenant_id: str
    event_id: str
    webhook_id: str
    attempt: int
    # When the next attempt would be, if this one fails (None: this is the last).
    next_delay_seconds: float | None


AttemptOutcome = Literal["delivered", "retry", "gone", "skipped", "failed"]


class AttemptResult(BaseModel):
    outcome: AttemptOutcome
    status_code: int | None = None
    # The wait before the next attempt (a receiver's Retry-After can lengthen it).
    retry_in_seconds: float | None = None


class ExhaustedInput(BaseModel):
    tenant_id: str
    event_id: str
    webhook_id: str
    attempts: int


class DeliveryResult(BaseModel):
    outcome: AttemptOutcome
    attempts: int
