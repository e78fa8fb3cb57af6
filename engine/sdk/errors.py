"""What the SDK raises: the API's error, with the code the API answered."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from engine.sdk.models import Execution


class ApiError(Exception):
    """The API refused or failed a call.

    Attributes:
        code: The contract's error code (``VALIDATION_ERROR``, ``WORKFLOW_NOT_FOUND``, …).
        status_code: The HTTP status (0 when the API could not be reached).
        message: The API's message.
        details: Where and what (e.g. ``{"field": "cron"}``).
        request_id: The id to quote when asking about this call.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str,
        status_code: int,
        details: dict[str, Any] | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status_code = status_code
        self.details = details or {}
        self.request_id = request_id

    def __str__(self) -> str:
        where = f" (HTTP {self.status_code})" if self.status_code else ""
        return f"{self.code}{where}: {self.message}"


class AuthError(ApiError):
    """401 or 403: a missing or wrong key, or one without the scope the call needs."""


class NotFoundError(ApiError):
    """404: no such workflow, execution or schedule in the caller's tenant."""


class InvalidRequest(ApiError):
    """400 or 422: the request (or the definition it carries) is not valid."""


class ConflictError(ApiError):
    """409: the resource is not in a state that allows the call."""


class RateLimited(ApiError):
    """429: too many requests; ``retry_after`` says how long to wait (seconds)."""

    @property
    def retry_after(self) -> float | None:
        value = self.details.get("retry_after")
        return float(value) if isinstance(value, int | float) else None


class ApiUnreachable(ApiError):
    """The API did not answer (refused, timed out, name not resolved)."""


class WaitTimeout(TimeoutError):
    """An execution did not finish in time; ``execution`` is its last state."""

    def __init__(self, message: str, execution: Execution) -> None:
        super().__init__(message)
        self.execution = execution


BY_STATUS: dict[int, type[ApiError]] = {
    400: InvalidRequest,
    401: AuthError,
    403: AuthError,
    404: NotFoundError,
    409: ConflictError,
    422: InvalidRequest,
    429: RateLimited,
}


def error_from(response: httpx.Response) -> ApiError:
    """The typed error of a non-2xx response (the envelope's ``error``, or the status)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        error = {}
    status = response.status_code
    code = str(error.get("code") or f"HTTP_{status}")
    message = str(error.get("message") or response.reason_phrase or "request failed")
    details = error.get("details") if isinstance(error.get("details"), dict) else {}
    request_id = error.get("request_id") or response.headers.get("x-request-id")
    kind = BY_STATUS.get(status, ApiError)
    return kind(message, code=code, status_code=status, details=details, request_id=request_id)


def unreachable(exc: httpx.TransportError, base_url: str) -> ApiUnreachable:
    return ApiUnreachable(
        f"cannot reach the API at {base_url}: {exc or type(exc).__name__}",
        code="API_UNREACHABLE",
        status_code=0,
    )
