"""The error bodies, as ``api.envelope.error_body`` writes them: the envelope of
``/api/v1`` and ``/api``, partio's error object on ``/v1.0`` and ``/``, and one
Server-Sent Event of the streaming routes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from api.envelope import ErrorPublic, Meta
from api.partio import PascalModel


class ErrorEnvelope(BaseModel):
    """An error answer: ``success`` false, no ``data``, the error in ``error``."""

    success: Literal[False]
    data: None
    error: ErrorPublic
    meta: Meta
    metadata: Meta


class PartioErrorPublic(PascalModel):
    """partio's error object (``Error`` is the HTTP reason phrase without spaces)."""

    error: str
    message: str
    status_code: int
    timestamp_utc: str
    request_id: str | None


class ServerSentEvent(BaseModel):
    """One event of a ``text/event-stream`` answer, as a client reads it: ``data``
    is the JSON text of the event; ``event`` and ``id`` when the stream names them."""

    data: str = Field(json_schema_extra={"contentMediaType": "application/json"})
    event: str | None = None
    id: str | None = None
    retry: int | None = None
