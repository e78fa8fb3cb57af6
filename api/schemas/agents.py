"""Agents as z2 and sutazai show them on the one ``/api/v1/agents`` path (the union
of both shapes: z2's fields, and sutazai's ``port``)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from pydantic import BaseModel

from engine.agents.calls import AgentReply
from engine.agents.health import AgentHealth
from engine.agents.metrics import AgentMetrics
from engine.agents.service import config_of
from engine.db.tables import Agent


class ModelPreferencesPublic(BaseModel):
    primary_model: str | None
    fallback_model: str | None
    temperature: float | None
    max_tokens: int | None


class AgentConfigPublic(BaseModel):
    model_preferences: ModelPreferencesPublic
    tools: list[str]
    memory_size: int | None


class AgentPublic(BaseModel):
    """An agent in a list (z2's list item, plus sutazai's ``port``)."""

    id: str
    name: str
    description: str
    type: str
    status: str
    capabilities: list[str]
    config: AgentConfigPublic
    # sutazai lists a port per agent; these agents run inside the workers and
    # have none of their own.
    port: int | None
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, agent: Agent) -> AgentPublic:
        return cls(**_fields(agent))


class AgentMetricsPublic(BaseModel):
    """z2's ``metrics`` of an agent (``success_rate`` is a fraction)."""

    total_executions: int
    success_rate: float
    avg_duration_ms: int
    total_cost_usd: float

    @classmethod
    def of(cls, metrics: AgentMetrics) -> AgentMetricsPublic:
        return cls(
            total_executions=metrics.total_executions,
            success_rate=metrics.success_rate,
            avg_duration_ms=metrics.avg_duration_ms,
            total_cost_usd=metrics.total_cost_usd,
        )


class AgentDetailPublic(AgentPublic):
    """z2's ``GET /agents/{id}``: the list fields, the system prompt and metrics."""

    system_prompt: str
    metrics: AgentMetricsPublic

    @classmethod
    def of_agent(cls, agent: Agent, metrics: AgentMetrics) -> AgentDetailPublic:
        return cls(
            **_fields(agent),
            system_prompt=agent.system_prompt,
            metrics=AgentMetricsPublic.of(metrics),
        )


class AgentsPublic(BaseModel):
    agents: list[AgentPublic]
    total: int
    page: int
    pages: int


class AgentMetricsDetailPublic(AgentMetricsPublic):
    """``/agents/{id}/metrics``: z2's four figures and what they are made of."""

    agent_id: str
    completed_executions: int
    failed_executions: int
    running_executions: int
    total_tokens: int
    model_calls: int
    last_execution_at: str | None

    @classmethod
    def of_agent(cls, agent_id: str, metrics: AgentMetrics) -> AgentMetricsDetailPublic:
        last = metrics.last_execution_at
        return cls(
            **AgentMetricsPublic.of(metrics).model_dump(),
            agent_id=agent_id,
            completed_executions=metrics.completed_executions,
            failed_executions=metrics.failed_executions,
            running_executions=metrics.running_executions,
            total_tokens=metrics.total_tokens,
            model_calls=metrics.model_calls,
            last_execution_at=last.isoformat() if last else None,
        )


class ModelCheckPublic(BaseModel):
    role: Literal["primary", "fallback"]
    model: str | None
    resolved_model: str | None
    provider: str | None
    provider_status: str | None
    available: bool
    error: str | None


class AgentHealthPublic(BaseModel):
    """sutazai's agent health: ``status`` is ``healthy`` when the agent's model is served."""

    agent_id: str
    name: str
    status: Literal["healthy", "degraded", "unhealthy", "inactive"]
    healthy: bool
    agent_status: str
    checks: list[ModelCheckPublic]
    checked_at: str

    @classmethod
    def of(cls, health: AgentHealth) -> AgentHealthPublic:
        return cls(
            agent_id=health.agent_id,
            name=health.name,
            status=health.status,
            healthy=health.status == "healthy",
            agent_status=health.agent_status,
            checks=[ModelCheckPublic(**asdict(check)) for check in health.checks],
            checked_at=health.checked_at.isoformat(),
        )


class AgentTestPublic(BaseModel):
    """z2's ``/agents/{id}/test`` answer, with the model that answered."""

    output: str
    execution_time_ms: int
    tokens_used: int
    cost_usd: float
    success: bool
    model: str
    provider: str
    fallback_from: str | None  # ``provider/model`` the fallback stood in for

    @classmethod
    def of(cls, reply: AgentReply) -> AgentTestPublic:
        return cls(**_reply(reply))


class AgentInvokePublic(AgentTestPublic):
    """sutazai's ``/agents/{id}/invoke``: z2's test answer, plus the agent and the
    reply under sutazai's chat name ``response``."""

    agent_id: str
    response: str

    @classmethod
    def of_reply(cls, reply: AgentReply) -> AgentInvokePublic:
        return cls(**_reply(reply), agent_id=reply.agent_id, response=reply.output)


def _reply(reply: AgentReply) -> dict[str, Any]:
    return {
        "output": reply.output,
        "execution_time_ms": reply.execution_time_ms,
        "tokens_used": reply.tokens_used,
        "cost_usd": reply.cost_usd,
        "success": True,
        "model": reply.model,
        "provider": reply.provider,
        "fallback_from": reply.fallback_from,
    }


def _fields(agent: Agent) -> dict[str, Any]:
    config = config_of(agent)
    prefs = config.model_preferences
    return {
        "id": agent.id,
        "name": agent.name,
        "description": agent.description,
        "type": agent.type,
        "status": agent.status,
        "capabilities": list(agent.capabilities or []),
        "config": AgentConfigPublic(
            model_preferences=ModelPreferencesPublic(
                primary_model=prefs.primary_model,
                fallback_model=prefs.fallback_model,
                temperature=prefs.temperature,
                max_tokens=prefs.max_tokens,
            ),
            tools=list(config.tools),
            memory_size=config.memory_size,
        ),
        "port": None,
        "created_at": agent.created_at.isoformat(),
        "updated_at": agent.updated_at.isoformat(),
    }
