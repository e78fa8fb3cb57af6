"""A2A (agent-to-agent, protocol 1.0 and 0.3): the public agent card, the
tenant's extended card, and the JSON-RPC endpoint.

- ``GET /.well-known/agent-card.json`` (public): the deployment's card; its
  skills are the kinds of target (``agent``, ``pipeline``).
- ``GET /api/v1/a2a/agent-card``: the caller's extended card, whose skills are
  the tenant's active agents and pipelines (also ``GetExtendedAgentCard``).
- ``POST /a2a``: every A2A method, 1.0 and 0.3 names alike (the SDK's
  dispatcher decides by the ``A2A-Version`` header), answered by
  ``engine.a2a.handler``. The caller is authenticated here, before the SDK
  runs (401 without a credential); the bodies are JSON-RPC's own (or
  Server-Sent Events for the streaming methods), never the API envelope.
"""

from __future__ import annotations

from typing import Annotated

from a2a.server.context import ServerCallContext
from a2a.server.routes import DefaultServerCallContextBuilder
from a2a.server.routes.jsonrpc_dispatcher import JsonRpcDispatcher
from fastapi import APIRouter, Request, Response, Security
from fastapi.responses import JSONResponse

from api.deps import Caller, get_principal, requires
from api.envelope import Envelope, ok
from api.schemas.a2a import AgentCardPublic, JsonRpcResponsePublic
from engine.a2a import card
from engine.a2a.handler import CallerUser, WeftRequestHandler
from engine.a2a.tasks import A2ATasks
from engine.identity.principals import Principal
from engine.platform.errors import Forbidden

router = APIRouter(tags=["a2a"])

# Every A2A call talks to an agent (a task for a pipeline also needs
# workflows:execute, checked when the task starts).
SCOPE = "ai:chat"
RPC_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["jsonrpc", "method"],
                "properties": {
                    "jsonrpc": {"const": "2.0"},
                    "id": {"type": ["string", "integer", "null"]},
                    "method": {
                        "type": "string",
                        "examples": ["SendMessage", "GetTask", "message/send", "tasks/get"],
                    },
                    "params": {"type": "object"},
                },
            }
        }
    },
}
RPC_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {
        "description": (
            "The JSON-RPC answer; the streaming methods answer Server-Sent Events, "
            "one JSON-RPC answer per `data:` line"
        ),
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


def base_url(request: Request) -> str:
    """The URL the cards advertise: where this request reached the API."""
    return str(request.base_url).rstrip("/")


class CallerContextBuilder(DefaultServerCallContextBuilder):
    """The SDK's call context, carrying the caller the route authenticated (the
    default builder keeps the headers, which its A2A-Version check reads)."""

    def build(self, request: Request) -> ServerCallContext:
        context = super().build(request)
        principal: Principal = request.state.principal
        context.user = CallerUser(principal)
        context.state["tenant_id"] = principal.tenant_id
        context.state["base_url"] = base_url(request)
        return context


def dispatcher(request: Request) -> JsonRpcDispatcher:
    """This app's dispatcher (one per app: its handler holds the app's clients)."""
    state = request.app.state
    found: JsonRpcDispatcher | None = getattr(state, "a2a_dispatcher", None)
    if found is None:
        resources = state.resources
        tasks = A2ATasks(resources.settings, resources.sessions, resources.temporal)
        found = JsonRpcDispatcher(
            WeftRequestHandler(tasks),
            context_builder=CallerContextBuilder(),
            enable_v0_3_compat=True,
        )
        state.a2a_dispatcher = found
    return found


@router.get(
    "/.well-known/agent-card.json",
    response_model=AgentCardPublic,
    include_in_schema=False,  # public, like /health; the protocol's discovery URL
)
async def read_public_card(request: Request) -> JSONResponse:
    served = card.card_json(card.build_card(base_url(request)))
    return JSONResponse(served, headers={"Cache-Control": "public, max-age=300"})


@router.get(
    "/api/v1/a2a/agent-card",
    response_model=Envelope[AgentCardPublic],
    summary="The caller's extended A2A agent card (the tenant's agents and pipelines)",
)
async def read_extended_card(
    request: Request, caller: Annotated[Caller, requires("agents:read")]
) -> JSONResponse:
    built = await card.tenant_card(caller.db, base_url(request))
    return ok(card.card_json(built), request_id=request.state.request_id)


@router.post(
    card.RPC_PATH,
    response_model=JsonRpcResponsePublic,
    responses=RPC_RESPONSES,
    openapi_extra={"requestBody": RPC_BODY},
    summary="A2A JSON-RPC (1.0 and 0.3 methods; streaming methods answer SSE)",
)
async def a2a_jsonrpc(
    request: Request, principal: Annotated[Principal, Security(get_principal, scopes=[SCOPE])]
) -> Response:
    if principal.tenant_id is None:
        raise Forbidden("This credential is not bound to a tenant")
    return await dispatcher(request).handle_requests(request)
