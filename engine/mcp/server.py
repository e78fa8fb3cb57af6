"""The MCP server (mcp SDK ``MCPServer``) exposing the tools of ``engine.mcp.tools``.

Each tool is registered with the JSON schema of its arguments model and
returns its result model (structured content). The caller is whoever the
transport authenticated for the request that carried the call
(``current_principal``; the API sets it); a tool runs in that caller's tenant
with a database session of its own, exactly as ``run_tool`` runs it for REST.
Engine errors reach the client as tool errors with their code and message;
anything else as the SDK's generic tool error (the traceback is only logged).
"""

from __future__ import annotations

import contextvars
import inspect
import logging
from collections.abc import Callable
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

from engine import __version__
from engine.db.scope import TenantScope
from engine.identity.principals import Principal
from engine.mcp.services import McpServices
from engine.mcp.tools import TOOLS, Tool, run_tool
from engine.platform.errors import WeftError

INSTRUCTIONS = (
    "Weftworks runs workflows (pipelines) and document processing on Temporal. Use "
    "list_workflows and start_workflow to run a workflow, get_workflow_status to follow it, "
    "and search_documents or rag_query to read the tenant's documents."
)

# The caller of the request being served (set by the transport around each request).
current_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "weft_mcp_principal", default=None
)


def _signature(tool: Tool[Any, Any]) -> inspect.Signature:
    """The tool's arguments as keyword parameters, so the SDK derives the same schema."""
    parameters = []
    for name, field in tool.arguments.model_fields.items():
        annotation: Any = Annotated[
            (field.annotation, *field.metadata, Field(description=field.description))
        ]
        default = (
            inspect.Parameter.empty
            if field.is_required()
            else field.get_default(call_default_factory=True)
        )
        parameters.append(
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default
            )
        )
    return inspect.Signature(parameters, return_annotation=tool.result)


def _tool_function(tool: Tool[Any, Any], services: Callable[[], McpServices]) -> Callable[..., Any]:
    async def call(**arguments: Any) -> BaseModel:
        principal = current_principal.get()
        if principal is None or principal.tenant_id is None:
            raise ToolError("UNAUTHORIZED: no authenticated caller")
        env = services()
        async with env.sessions() as session:
            db = TenantScope(session, principal.tenant_id, all_tenants=False)
            try:
                return await run_tool(db, env, principal, tool.name, arguments)
            except WeftError as exc:
                raise ToolError(f"{exc.code}: {exc.message}") from None

    call.__name__ = tool.name
    call.__doc__ = tool.description
    call.__signature__ = _signature(tool)  # type: ignore[attr-defined]
    return call


def build_server(services: Callable[[], McpServices]) -> MCPServer:
    """A server with every tool; ``services`` gives the process's clients at call time."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    server = MCPServer(
        "weftworks", instructions=INSTRUCTIONS, version=__version__, log_level="WARNING"
    )
    # The SDK configures logging in its constructor; the process's own setup stays.
    root.setLevel(level)
    root.handlers[:] = handlers
    for tool in TOOLS.values():
        server.add_tool(
            _tool_function(tool, services),
            name=tool.name,
            description=tool.description,
            annotations=ToolAnnotations(
                read_only_hint=tool.read_only, destructive_hint=False, open_world_hint=False
            ),
        )
    return server
