"""zentoria commands and z2 MCP sessions and tools, as the API shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from engine.db.tables import Command, McpSession
from engine.mcp.commands import MAX_COMMAND_CHARS
from engine.mcp.tools import Tool


class CommandRequest(BaseModel):
    command: str = Field(min_length=1, max_length=MAX_COMMAND_CHARS)
    context: dict[str, Any] = Field(default_factory=dict)


class CommandAcceptedPublic(BaseModel):
    """zentoria's answer to ``POST /mcp/command``, field for field."""

    command_id: str
    status: str
    intent: str
    entities: dict[str, Any]
    workflow_id: str

    @classmethod
    def of(cls, row: Command) -> CommandAcceptedPublic:
        return cls(
            command_id=row.id,
            status=row.status,
            intent=row.intent or "unknown",
            entities=row.entities,
            workflow_id=row.workflow_id or f"cmd-{row.id}",
        )


class CommandErrorPublic(BaseModel):
    code: str
    message: str


class CommandPublic(CommandAcceptedPublic):
    """A command with what became of it; ``interpreted_by`` names the model that
    read it, or ``rules``."""

    command: str
    context: dict[str, Any]
    interpreted_by: str
    result: dict[str, Any]
    error: CommandErrorPublic | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Command) -> CommandPublic:
        accepted = CommandAcceptedPublic.of(row)
        error = row.error or None
        return cls(
            **accepted.model_dump(),
            command=row.command,
            context=row.context,
            interpreted_by=row.interpreted_by or "rules",
            result=row.result,
            error=CommandErrorPublic(
                code=str(error.get("code", "COMMAND_FAILED")), message=str(error.get("message", ""))
            )
            if error
            else None,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class SessionRequest(BaseModel):
    name: str | None = Field(default=None, max_length=200)
    context: dict[str, Any] = Field(default_factory=dict)


class SessionPublic(BaseModel):
    id: str
    session_id: str
    name: str | None
    status: str
    context: dict[str, Any]
    tools_used: int
    created_at: datetime
    last_active_at: datetime | None

    @classmethod
    def of(cls, row: McpSession) -> SessionPublic:
        return cls(
            id=row.id,
            session_id=row.id,
            name=row.name,
            status=row.status,
            context=row.context,
            tools_used=row.tools_used,
            created_at=row.created_at,
            last_active_at=row.last_active_at,
        )


class SessionsPublic(BaseModel):
    sessions: list[SessionPublic]
    total: int


class ToolPublic(BaseModel):
    name: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    required_scope: str
    read_only: bool

    @classmethod
    def of(cls, tool: Tool[Any, Any]) -> ToolPublic:
        return cls(
            name=tool.name,
            description=tool.description,
            input_schema=tool.input_schema(),
            output_schema=tool.result.model_json_schema(),
            required_scope=tool.scope,
            read_only=tool.read_only,
        )


class ToolsPublic(BaseModel):
    tools: list[ToolPublic]
    total: int


class ToolResultPublic(BaseModel):
    tool: str
    session_id: str | None
    result: dict[str, Any]
