"""Payloads of ``CommandWorkflow`` and its activities (declared in workflows.activities).

A zentoria command arrives already interpreted (intent and entities, by a chat
model or by rules): the workflow runs the intent's work in one activity and
records the outcome in a second one. The intent names live here because the
workflow itself decides which intents have work to run.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field


class Intent(StrEnum):
    """What a command asks for. Renaming one changes recorded histories."""

    FILE_UPLOAD = "file.upload"
    FILE_SEARCH = "file.search"
    FILE_LIST = "file.list"
    FILE_PROCESS = "file.process"
    DOCUMENT_SUMMARIZE = "document.summarize"
    DOCUMENT_QUERY = "document.query"
    WORKFLOW_RUN = "workflow.run"
    WORKFLOW_STATUS = "workflow.status"
    WORKFLOW_LIST = "workflow.list"
    AI_CHAT = "ai.chat"
    UNKNOWN = "unknown"


# Every intent but ``unknown`` has work to run.
RUNNABLE = frozenset(intent.value for intent in Intent if intent is not Intent.UNKNOWN)
UNKNOWN_INTENT = "UNKNOWN_INTENT"

CommandStatus = Literal["completed", "failed"]


class CommandError(BaseModel):
    code: str
    message: str


class CommandInput(BaseModel):
    """The run's input: the command as interpreted when it was accepted."""

    command_id: str
    tenant_id: str
    user_id: str
    command: str
    intent: str
    entities: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    interpreted_by: str = "rules"


class CommandOutcome(BaseModel):
    """What the intent's work came to (``run_command``)."""

    status: CommandStatus
    result: dict[str, Any] = Field(default_factory=dict)
    error: CommandError | None = None
    message: str = ""  # one human sentence about the outcome


class CommandRecord(BaseModel):
    """The outcome to write to the command's row, with its terminal event."""

    command_id: str
    tenant_id: str
    intent: str
    status: CommandStatus
    result: dict[str, Any] = Field(default_factory=dict)
    error: CommandError | None = None
    message: str = ""


class CommandResult(BaseModel):
    command_id: str
    intent: str
    status: CommandStatus
    result: dict[str, Any] = Field(default_factory=dict)
    error: CommandError | None = None
    message: str = ""
