"""MCP: zentoria commands (``/api/v1/mcp/command``), z2's MCP sessions and tools
(``/api/v1/mcp/sessions``, ``/api/v1/mcp/tools``), and the MCP server itself at
``/mcp`` (streamable HTTP, the same tools).

The MCP server authenticates every request as the REST routes do (``Authorization:
Bearer`` or ``X-API-Key``) before the SDK sees it; its tools run as that caller,
in its tenant. Each stateful MCP session is bound to the credential that opened
it: the same ``mcp-session-id`` with another credential is unknown (404).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Security
from fastapi.responses import JSONResponse
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from api.deps import Caller, ResourcesDep, SessionDep, SettingsDep, get_principal
from api.envelope import Envelope, error_body, ok
from api.errors import STATUS_BY_CODE
from api.resources import Resources
from api.schemas.mcp import (
    CommandAcceptedPublic,
    CommandPublic,
    CommandRequest,
    SessionPublic,
    SessionRequest,
    SessionsPublic,
    ToolPublic,
    ToolResultPublic,
    ToolsPublic,
)
from engine.db.scope import TenantScope
from engine.identity.principals import Principal, authenticate
from engine.mcp import commands, sessions, tools
from engine.mcp.server import build_server, current_principal
from engine.mcp.services import McpServices
from engine.platform.errors import Forbidden, InvalidInput, Unauthorized, WeftError

router = APIRouter(prefix="/api/v1/mcp", tags=["mcp"])
MCP_PATH = "/mcp"


async def tenant_caller(
    principal: Annotated[Principal, Security(get_principal, scopes=["profile"])],
    session: SessionDep,
    settings: SettingsDep,
) -> Caller:
    """Any signed-in caller of a tenant (scope ``profile``). What a command or a tool may do is
    checked against the scope its intent or the tool needs (``engine.mcp``)."""
    if principal.tenant_id is None:
        raise Forbidden("This credential is not bound to a tenant")
    return Caller(principal, TenantScope(session, principal.tenant_id, all_tenants=False), settings)


Member = Annotated[Caller, Depends(tenant_caller)]


def services_of(resources: Resources) -> McpServices:
    return McpServices(
        settings=resources.settings,
        sessions=resources.sessions,
        temporal=resources.temporal,
        index=resources.index,
        models=resources.models,
        http=resources.http,
    )


# --- zentoria commands ---------------------------------------------------------


@router.post(
    "/command",
    status_code=202,
    response_model=Envelope[CommandAcceptedPublic],
    summary="Run a natural-language command (its progress streams on /api/v1/mcp/stream)",
)
async def create_command(
    request: Request, body: CommandRequest, caller: Member, resources: ResourcesDep
) -> JSONResponse:
    row = await commands.submit(
        caller.db,
        resources.temporal,
        caller.settings,
        resources.models,
        caller.principal,
        body.command,
        body.context,
        request_id=request.state.request_id,
    )
    data = CommandAcceptedPublic.of(row)
    return ok(data, request_id=request.state.request_id, status_code=202)


@router.get(
    "/command/{command_id}",
    response_model=Envelope[CommandPublic],
    summary="A command: its intent, status and result",
)
async def read_command(request: Request, command_id: str, caller: Member) -> JSONResponse:
    row = await commands.read(caller.db, command_id)
    return ok(CommandPublic.of(row), request_id=request.state.request_id)


# --- z2 sessions and tools -----------------------------------------------------


@router.get("/sessions", response_model=Envelope[SessionsPublic], summary="Your active sessions")
async def read_sessions(request: Request, caller: Member) -> JSONResponse:
    rows = await sessions.list_sessions(caller.db, caller.principal)
    data = SessionsPublic(sessions=[SessionPublic.of(row) for row in rows], total=len(rows))
    return ok(data, request_id=request.state.request_id)


@router.post(
    "/sessions",
    status_code=201,
    response_model=Envelope[SessionPublic],
    summary="Create a session",
)
async def create_session(request: Request, body: SessionRequest, caller: Member) -> JSONResponse:
    row = await sessions.create_session(
        caller.db, caller.principal, name=body.name, context=body.context
    )
    return ok(SessionPublic.of(row), request_id=request.state.request_id, status_code=201)


@router.get("/tools", response_model=Envelope[ToolsPublic], summary="The available tools")
async def read_tools(request: Request, caller: Member) -> JSONResponse:
    listed = [ToolPublic.of(tool) for tool in tools.TOOLS.values()]
    return ok(ToolsPublic(tools=listed, total=len(listed)), request_id=request.state.request_id)


@router.post(
    "/tools/{tool_name}",
    response_model=Envelope[ToolResultPublic],
    summary="Run a tool: the body holds its arguments (and optionally session_id)",
)
async def call_tool(
    request: Request,
    tool_name: str,
    caller: Member,
    resources: ResourcesDep,
    body: Annotated[dict[str, Any] | None, Body()] = None,
    session_id: Annotated[str | None, Query(max_length=40)] = None,
) -> JSONResponse:
    """The body is the tool's arguments, or ``{"arguments": {...}}``; a
    ``session_id`` (in the body or the query) counts the call in that session.
    Each tool needs its own scope (listed by ``GET /tools``)."""
    arguments = dict(body or {})
    given = arguments.pop("session_id", None)
    if given is not None and not isinstance(given, str):
        raise InvalidInput("session_id must be a string", details={"field": "session_id"})
    session_id = session_id or given
    if set(arguments) == {"arguments"}:
        nested = arguments["arguments"]
        if not isinstance(nested, dict):
            raise InvalidInput("arguments must be an object", details={"field": "arguments"})
        arguments = nested
    result = await tools.run_tool(
        caller.db,
        services_of(resources),
        caller.principal,
        tool_name,
        arguments,
        session_id=session_id,
        request_id=request.state.request_id,
    )
    data = ToolResultPublic(
        tool=tool_name, session_id=session_id, result=result.model_dump(mode="json")
    )
    return ok(data, request_id=request.state.request_id)


# --- the MCP server at /mcp ----------------------------------------------------


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _credential(scope: Scope) -> str | None:
    key = _header(scope, b"x-api-key")
    if key and key.strip():
        return key.strip()
    scheme, _, value = (_header(scope, b"authorization") or "").partition(" ")
    return (value.strip() or None) if scheme.lower() == "bearer" else None


class McpEndpoint:
    """The MCP server (streamable HTTP) at ``/mcp``, behind our own authentication.

    Its session manager runs inside the app's lifespan (``running``); requests
    without a valid credential are answered 401 in the contract's envelope before
    the SDK sees them. DNS-rebinding protection (a Host allowlist for servers
    reached by browsers without credentials) is off: every request must carry a
    credential in a header, which a rebinding page cannot send.
    """

    def __init__(self) -> None:
        self._resources: Resources | None = None
        self.server = build_server(self._services)
        self.server.streamable_http_app(
            streamable_http_path=MCP_PATH,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        self.app = StreamableHTTPASGIApp(self.server.session_manager)

    def _services(self) -> McpServices:
        if self._resources is None:
            raise RuntimeError("the MCP server is not running")
        return services_of(self._resources)

    @asynccontextmanager
    async def running(self, resources: Resources) -> AsyncIterator[None]:
        """Serve MCP while the block runs (once per app: the SDK allows one run).

        The session manager's task group lives in a task of its own, so the block
        may be entered and left by different tasks (as test clients do)."""
        ready, stop = asyncio.Event(), asyncio.Event()

        async def serve() -> None:
            async with self.server.session_manager.run():
                ready.set()
                await stop.wait()

        self._resources = resources
        task = asyncio.create_task(serve(), name="weft-mcp-sessions")
        started = asyncio.create_task(ready.wait())
        await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            started.cancel()
            self._resources = None
            task.result()  # raises why it could not start
        try:
            yield
        finally:
            stop.set()
            await task
            self._resources = None

    def route(self) -> Route:
        return Route(MCP_PATH, endpoint=self, methods=["GET", "POST", "DELETE"])

    async def _refuse(self, scope: Scope, send: Send, error: WeftError) -> None:
        status = STATUS_BY_CODE.get(error.code, 401)
        body = error_body(
            path=MCP_PATH,
            status_code=status,
            code=error.code,
            message=error.message,
            details=error.details,
            request_id=scope.get("state", {}).get("request_id"),
        )
        headers = [(b"content-type", b"application/json")]
        if status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="weft"'))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})

    async def _principal(self, credential: str | None) -> Principal:
        if self._resources is None:
            raise Unauthorized("The MCP server is not running")
        if not credential:
            raise Unauthorized("Authentication required: send a Bearer token or X-API-Key")
        async with self._resources.sessions() as session:
            principal = await authenticate(session, self._resources.settings, credential)
            await session.commit()  # the key's use is recorded
        if principal.tenant_id is None:
            raise Forbidden("This credential is not bound to a tenant")
        return principal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            principal = await self._principal(_credential(scope))
        except WeftError as exc:
            await self._refuse(scope, send, exc)
            return
        scope.setdefault("state", {})["principal"] = principal  # for request history
        # The SDK binds each stateful session to this identity (one credential).
        credential_id = principal.api_key_id or principal.session_id or "admin"
        scope["user"] = AuthenticatedUser(
            AccessToken(
                token=credential_id,
                client_id=f"{principal.tenant_id}/{principal.user_id}/{credential_id}",
                scopes=sorted(principal.scopes),
                subject=principal.user_id,
            )
        )
        token = current_principal.set(principal)
        try:
            await self.app(scope, receive, send)
        finally:
            current_principal.reset(token)
