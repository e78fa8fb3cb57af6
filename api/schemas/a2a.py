"""A2A as the API documents it: the agent card and the JSON-RPC envelope.

Both are A2A's own wire shapes (camelCase), passed through as the SDK writes
them; these models name them in the OpenAPI schema and list their main keys.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class AgentCardPublic(BaseModel):
    """An A2A agent card (1.0 fields, with the 0.3 ones merged in)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    name: str
    description: str
    version: str
    supported_interfaces: list[dict[str, Any]] = Field(alias="supportedInterfaces")
    capabilities: dict[str, Any]
    skills: list[dict[str, Any]]
    security_schemes: dict[str, Any] = Field(alias="securitySchemes")


class JsonRpcErrorPublic(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: int
    message: str
    data: Any = None


class JsonRpcResponsePublic(BaseModel):
    """A JSON-RPC 2.0 answer: ``result`` or ``error``. Streaming methods
    (``SendStreamingMessage``, ``SubscribeToTask``, ``message/stream``,
    ``tasks/resubscribe``) answer Server-Sent Events, one of these per ``data:``."""

    model_config = ConfigDict(extra="allow")

    jsonrpc: Literal["2.0"]
    id: str | int | None
    result: Any = None
    error: JsonRpcErrorPublic | None = None
