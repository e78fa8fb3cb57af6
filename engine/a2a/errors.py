"""The A2A capability's errors (the JSON-RPC handler maps them to A2A's codes)."""

from __future__ import annotations

from typing import Any

from engine.platform.errors import Conflict, NotFound, WeftError


class A2ATaskNotFound(NotFound):
    code = "A2A_TASK_NOT_FOUND"


class A2ATaskNotCancelable(Conflict):
    code = "A2A_TASK_NOT_CANCELABLE"


class A2ATaskNotWaiting(Conflict):
    """A message for a task that does not wait for input (it works, or it ended)."""

    code = "A2A_TASK_NOT_WAITING"


class PushConfigNotFound(NotFound):
    code = "A2A_PUSH_CONFIG_NOT_FOUND"


class A2ASessionNotFound(NotFound):
    code = "A2A_SESSION_NOT_FOUND"


class A2ASessionClosed(Conflict):
    """A negotiation or a message for a session that has ended."""

    code = "A2A_SESSION_CLOSED"


class A2ASessionRefused(WeftError):
    """The session's run refused a negotiation or a message (``code`` says why:
    ``VALIDATION_ERROR``, ``A2A_LIMIT_EXCEEDED``, ``A2A_MESSAGE_TOO_LARGE``, …),
    or delivering the message failed (the peer's own code)."""

    def __init__(self, code: str, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details=details)
        self.code = code
