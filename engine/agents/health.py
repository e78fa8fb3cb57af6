"""Whether an agent can work now (sutazai's ``/agents/{id}/health``).

An agent has no process of its own: it runs inside the workers, through the
model layer. So its health is whether its models resolve to a provider, and
whether that provider answers (its circuit breaker and last listing). A named
model that would only be stood in for by the extractive local provider is not
available.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from engine.agents.service import config_of, get_agent
from engine.ai.listings import provider_status
from engine.ai.providers.local_chat import is_extractive_model
from engine.ai.runtime import ModelRuntime
from engine.db.scope import TenantScope
from engine.platform.errors import WeftError

HealthStatus = Literal["healthy", "degraded", "unhealthy", "inactive"]


@dataclass(frozen=True)
class ModelCheck:
    role: Literal["primary", "fallback"]
    model: str | None  # as the agent names it; None: the deployment's default
    resolved_model: str | None
    provider: str | None
    provider_status: str | None  # healthy, unhealthy, circuit_open
    available: bool
    error: str | None


@dataclass(frozen=True)
class AgentHealth:
    agent_id: str
    name: str
    status: HealthStatus
    agent_status: str
    checks: list[ModelCheck]
    checked_at: datetime


async def check_model(
    rt: ModelRuntime, role: Literal["primary", "fallback"], model: str | None
) -> ModelCheck:
    try:
        target = await rt.registry.resolve(model)
    except WeftError as exc:
        return ModelCheck(role, model, None, None, None, False, exc.message)
    provider = target.entry.name
    state = provider_status(rt, target.entry)
    if model and not is_extractive_model(model) and is_extractive_model(target.model):
        error = f"No configured provider offers model {model!r}"
        return ModelCheck(role, model, None, None, None, False, error)
    problem = None if state == "healthy" else f"provider {provider} is {state}"
    return ModelCheck(role, model, target.model, provider, state, state == "healthy", problem)


async def agent_health(db: TenantScope, rt: ModelRuntime, agent_id: str) -> AgentHealth:
    """``healthy`` when the primary model is served; ``degraded`` when its provider
    is failing but the fallback is served (a call falls back); ``unhealthy`` when
    no provider offers the primary (a call fails: the fallback covers a failing
    provider, not a missing model), when nothing answers, or when the agent is
    marked ``error``; ``inactive`` when the agent is switched off."""
    agent = await get_agent(db, agent_id)
    prefs = config_of(agent).model_preferences
    primary = await check_model(rt, "primary", prefs.primary_model)
    checks = [primary]
    if prefs.fallback_model:
        checks.append(await check_model(rt, "fallback", prefs.fallback_model))
    status: HealthStatus
    if agent.status == "inactive":
        status = "inactive"
    elif agent.status != "error" and primary.available:
        status = "healthy"
    elif agent.status != "error" and primary.resolved_model and any(c.available for c in checks):
        status = "degraded"
    else:
        status = "unhealthy"
    return AgentHealth(
        agent_id=agent.id,
        name=agent.name,
        status=status,
        agent_status=agent.status,
        checks=checks,
        checked_at=datetime.now(UTC),
    )
