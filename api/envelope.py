"""The response shapes of the contract.

``/api/v1`` (zentoria, z2, sutazai) and ``/api`` (auterity) share one envelope
(auterity clients read ``error.code`` from it unchanged); ``/v1.0`` and ``/``
answer partio's error object.
"""

from __future__ import annotations

from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Generic, TypeVar

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
    """``{"success", "data", "error", "meta"}``, declared as ``Envelope[XPublic]``."""

    success: bool
    data: DataT
    error: ErrorPublic | None
    meta: Meta


def timestamp() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def meta(request_id: str | None, **extra: Any) -> dict[str, Any]:
    return {"request_id": request_id, "timestamp": timestamp(), **extra}


def ok(
    data: BaseModel | dict[str, Any],
    *,
    request_id: str | None = None,
    status_code: int = 200,
) -> JSONResponse:
    """The success envelope around ``data``: a response model, or the JSON dump of
    one when the route leaves some of its keys out."""
    payload = data.model_dump(mode="json", by_alias=True) if isinstance(data, BaseModel) else data
    body = {"success": True, "data": payload, "error": None, "meta": meta(request_id)}
    return JSONResponse(body, status_code=status_code)


def is_partio_path(path: str) -> bool:
    return path == "/" or path.startswith("/v1.0/") or path == "/v1.0"


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
    return {
        "success": False,
        "data": None,
        "error": {
            "code": code,
            "message": message,
            "details": details or {},
            "request_id": request_id,
            "timestamp": timestamp(),
        },
        "meta": meta(request_id),
    }
