"""The A2A capability's errors (the JSON-RPC handler maps them to A2A's codes)."""

from __future__ import annotations

from engine.platform.errors import Conflict, NotFound


class A2ATaskNotFound(NotFound):
    code = "A2A_TASK_NOT_FOUND"


class A2ATaskNotCancelable(Conflict):
    code = "A2A_TASK_NOT_CANCELABLE"


class A2ATaskNotWaiting(Conflict):
    """A message for a task that does not wait for input (it works, or it ended)."""

    code = "A2A_TASK_NOT_WAITING"


class PushConfigNotFound(NotFound):
    code = "A2A_PUSH_CONFIG_NOT_FOUND"
