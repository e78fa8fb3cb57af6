"""The long-lived clients that MCP tools and commands work with.

The API builds one from its resources, the worker from its own; the tools and
the commands' work take it instead of a FastAPI or worker type.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from engine.ai.runtime import ModelRuntime
from engine.db.scope import TenantScope
from engine.platform.settings import Settings
from engine.vectors.base import VectorIndex


@dataclass(frozen=True)
class McpServices:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    temporal: Client
    index: VectorIndex
    models: ModelRuntime
    http: httpx.AsyncClient


@dataclass(frozen=True)
class ToolCall:
    """One tool call: whose it is and the tenant's view of the data.

    Scopes are checked before a tool runs (``tools.run_tool``; a command's intent
    when the command is accepted), so the tools themselves only do the work.
    """

    db: TenantScope
    services: McpServices
    tenant_id: str
    user_id: str
    request_id: str | None = None
