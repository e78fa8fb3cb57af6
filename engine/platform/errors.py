"""Domain errors. Each carries one of the contract's error codes; the API maps
codes to HTTP statuses in one place (``api/errors.py``)."""

from __future__ import annotations

from typing import Any


class WeftError(Exception):
    code = "INTERNAL_ERROR"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class InvalidInput(WeftError):
    code = "VALIDATION_ERROR"


class NotFound(WeftError):
    code = "NOT_FOUND"


class Conflict(WeftError):
    code = "DUPLICATE_RESOURCE"


class Unauthorized(WeftError):
    code = "UNAUTHORIZED"


class Forbidden(WeftError):
    code = "FORBIDDEN"


class Unavailable(WeftError):
    code = "SERVICE_UNAVAILABLE"
