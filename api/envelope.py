"""The response shapes of the contract.

``/api/v1`` (zentoria, z2, sutazai) and ``/api`` (auterity) share one envelope
(auterity clients read ``error.code`` from it unchanged); ``/v1.0`` and ``/``
answer partio's error object.
"""

from __future__ import annotations

from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Generic, TypeVar

import orjson
from fastapi.responses import JSONResponse
from pydantic import BaseModel

DataT = TypeVar("DataT")


class Meta(BaseModel):
    request_id: str | None
    timestamp: str


class ErrorPublic(BaseModel):
    code: str
    message: str
    details: dict[str, Any]
    request_id: str | None
    timestamp: str


class Envelope(BaseModel, Generic[DataT]):
    """``{"success", "data", "error", "meta"}``, declared as ``Envelope[XPublic]``;
    ``metadata`` repeats ``meta`` under sutazai's name for its clients."""

    success: bool
    data: DataT
    error: ErrorPublic | None
    meta: Meta
    metadata: Meta


class FastJSONResponse(JSONResponse):
    """JSON rendered by orjson (several times faster than the standard library on
    the envelopes routes build by hand); anything orjson refuses (an integer past
    64 bits, say) is rendered as before."""

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
        except TypeError:
            return super().render(content)


def timestamp() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def meta(request_id: str | None, **extra: Any) -> dict[str, Any]:
    return {"request_id": request_id, "timestamp": timestamp(), **extra}


def ok(
    data: BaseModel | dict[str, Any],
    *,
    request_id: str | None = None,
    status_code: int = 200,
    top_level: dict[str, Any] | None = None,
) -> JSONResponse:
    """The success envelope around ``data``: a response model, or the JSON dump of
    one when the route leaves some of its keys out. ``top_level``: keys a seed's
    clients read beside the envelope (declared by the route's envelope model)."""
    payload = data.model_dump(mode="json", by_alias=True) if isinstance(data, BaseModel) else data
    about = meta(request_id)
    body = {"success": True, "data": payload, "error": None, "meta": about, "metadata": about}
    return FastJSONResponse({**body, **(top_level or {})}, status_code=status_code)


def is_partio_path(path: str) -> bool:
    return path == "/" or path.startswith("/v1.0/") or path == "/v1.0"


# The error codes auterity (``/api``) and z2 (its own ``/api/v1`` paths) document
# for what the engine calls by the canonical (zentoria) name; the canonical code
# stays in ``details.code``. The HTTP status is the same either way.
AUTERITY_CODES = {
    "RATE_LIMIT_EXCEEDED": "RATE_LIMITED",
    "MODEL_API_ERROR": "AI_SERVICE_ERROR",
    "CIRCUIT_OPEN": "AI_SERVICE_ERROR",
    "UPSTREAM_RESPONSE_TOO_LARGE": "AI_SERVICE_ERROR",
    "RUN_FAILED": "WORKFLOW_ERROR",
}
# On auterity's model routes only: other routes time out on other upstreams.
AUTERITY_AI_CODES = {
    "GATEWAY_TIMEOUT": "AI_SERVICE_ERROR",
    "SERVICE_UNAVAILABLE": "AI_SERVICE_ERROR",
}
Z2_CODES = {"RATE_LIMIT_EXCEEDED": "RATE_LIMITED"}
Z2_PREFIXES = ("/api/v1/agents", "/api/v1/workflows", "/api/v1/a2a/", "/api/v1/consent/",
               "/api/v1/mcp/sessions", "/api/v1/mcp/tools", "/api/v1/models/providers")  # fmt: skip


def dialect_code(path: str, code: str) -> str:
    """``code`` as the document that owns ``path`` names it."""
    if path.startswith("/api/") and not path.startswith("/api/v1/"):
        if path.startswith(("/api/ai/", "/api/models/")) and code in AUTERITY_AI_CODES:
            return AUTERITY_AI_CODES[code]
        return AUTERITY_CODES.get(code, code)
    if path.startswith(Z2_PREFIXES):
        return Z2_CODES.get(code, code)
    return code


def error_body(
    *,
    path: str,
    status_code: int,
    code: str,
    message: str,
    details: dict[str, Any] | None,
    request_id: str | None,
) -> dict[str, Any]:
    if is_partio_path(path):
        phrase = HTTPStatus(status_code).phrase.replace(" ", "") if status_code else "Error"
        return {
            "Error": phrase,
            "Message": message,
            "StatusCode": status_code,
            "TimestampUtc": timestamp(),
            "RequestId": request_id,
        }
    about = meta(request_id)
    named = dialect_code(path, code)
    if named != code:
        details = {**(details or {}), "code": code}
    return {
        "success": False,
        "data": None,
        "error": {
            "code": named,
            "message": message,
            "details": details or {},
            "request_id": request_id,
            "timestamp": timestamp(),
        },
        "meta": about,
        "metadata": about,
    }
