"""Agents: z2's ``/api/v1/agents`` CRUD, metrics and test, and sutazai's agent
list, details, health and invoke on the same paths (each answer is the union of
both shapes). Testing or invoking an agent is a model call: it needs ``ai:chat``,
the scope that spends on models."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import AliasChoices, BaseModel, Field

from api.deps import Caller, requires
from api.envelope import Envelope, ok
from api.model_deps import ModelsDep, call_context
from api.query import PageNumber
from api.schemas.agents import (
    AgentDetailPublic,
    AgentHealthPublic,
    AgentInvokePublic,
    AgentMetricsDetailPublic,
    AgentPublic,
    AgentsPublic,
    AgentTestPublic,
)
from engine.agents import calls, health, metrics, service
from engine.agents.service import AgentCreate, AgentStatus, AgentType, AgentUpdate

router = APIRouter(prefix="/api/v1/agents", tags=["agents"])

Reader = Annotated[Caller, requires("agents:read")]
Writer = Annotated[Caller, requires("agents:write")]
Chatter = Annotated[Caller, requires("ai:chat")]
MAX_INPUT_CHARS = 100_000


class AgentTestBody(BaseModel):
    """z2's test input (sutazai's chat calls it ``message``)."""

    input: str = Field(
        min_length=1, max_length=MAX_INPUT_CHARS, validation_alias=AliasChoices("input", "message")
    )
    context: dict[str, Any] = Field(default_factory=dict)


@router.get("", response_model=Envelope[AgentsPublic], summary="List the tenant's agents")
async def read_agents(
    request: Request,
    caller: Reader,
    page: PageNumber = 1,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE_SIZE)] = 20,
    agent_type: Annotated[AgentType | None, Query(alias="type")] = None,
    status: AgentStatus | None = None,
    capability: Annotated[str | None, Query(max_length=100)] = None,
) -> JSONResponse:
    found = await service.list_agents(
        caller.db,
        agent_type=agent_type,
        status=status,
        capability=capability,
        page=page,
        limit=limit,
    )
    data = AgentsPublic(
        agents=[AgentPublic.of(agent) for agent in found.agents],
        total=found.total,
        page=found.page,
        pages=found.pages,
    )
    return ok(data, request_id=request.state.request_id)


@router.post(
    "", status_code=201, response_model=Envelope[AgentDetailPublic], summary="Create an agent"
)
async def create_agent(request: Request, caller: Writer, body: AgentCreate) -> JSONResponse:
    agent = await service.create_agent(caller.db, body, created_by=caller.principal.user_id)
    data = AgentDetailPublic.of_agent(agent, metrics.NO_METRICS)
    return ok(data, request_id=request.state.request_id, status_code=201)


@router.get(
    "/{agent_id}",
    response_model=Envelope[AgentDetailPublic],
    summary="Read an agent, with its metrics",
)
async def read_agent(request: Request, agent_id: str, caller: Reader) -> JSONResponse:
    agent = await service.get_agent(caller.db, agent_id)
    figures = await metrics.metrics_of(caller.db, agent)
    return ok(AgentDetailPublic.of_agent(agent, figures), request_id=request.state.request_id)


@router.put(
    "/{agent_id}",
    response_model=Envelope[AgentDetailPublic],
    summary="Update an agent (only the fields sent)",
)
async def update_agent(
    request: Request, agent_id: str, caller: Writer, body: AgentUpdate
) -> JSONResponse:
    agent = await service.update_agent(caller.db, agent_id, body)
    figures = await metrics.metrics_of(caller.db, agent)
    return ok(AgentDetailPublic.of_agent(agent, figures), request_id=request.state.request_id)


@router.delete("/{agent_id}", status_code=204, summary="Delete an agent")
async def delete_agent(agent_id: str, caller: Writer) -> Response:
    await service.delete_agent(caller.db, agent_id)
    return Response(status_code=204)


@router.get(
    "/{agent_id}/metrics",
    response_model=Envelope[AgentMetricsDetailPublic],
    summary="An agent's executions, success rate, duration and cost",
)
async def read_agent_metrics(request: Request, agent_id: str, caller: Reader) -> JSONResponse:
    figures = await metrics.agent_metrics(caller.db, agent_id)
    data = AgentMetricsDetailPublic.of_agent(agent_id, figures)
    return ok(data, request_id=request.state.request_id)


@router.get(
    "/{agent_id}/health",
    response_model=Envelope[AgentHealthPublic],
    summary="Whether the agent's models are served now",
)
async def read_agent_health(
    request: Request, agent_id: str, caller: Reader, models: ModelsDep
) -> JSONResponse:
    found = await health.agent_health(caller.db, models, agent_id)
    return ok(AgentHealthPublic.of(found), request_id=request.state.request_id)


@router.post(
    "/{agent_id}/test",
    response_model=Envelope[AgentTestPublic],
    summary="Try an agent with sample input",
)
async def create_agent_test(
    request: Request, agent_id: str, caller: Chatter, models: ModelsDep, body: AgentTestBody
) -> JSONResponse:
    reply = await calls.call_agent(
        caller.db,
        models,
        call_context(request, caller, kind="test"),
        agent_id,
        text=body.input,
        context=body.context,
    )
    return ok(AgentTestPublic.of(reply), request_id=request.state.request_id)


@router.post(
    "/{agent_id}/invoke",
    response_model=Envelope[AgentInvokePublic],
    summary="Invoke an agent (sutazai)",
)
async def create_agent_invocation(
    request: Request, agent_id: str, caller: Chatter, models: ModelsDep, body: AgentTestBody
) -> JSONResponse:
    reply = await calls.call_agent(
        caller.db,
        models,
        call_context(request, caller, kind="agent"),
        agent_id,
        text=body.input,
        context=body.context,
    )
    return ok(AgentInvokePublic.of_reply(reply), request_id=request.state.request_id)
