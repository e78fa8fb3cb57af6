"""A tenant's agents: create, list, read, update, delete.

z2 sends ``config.model_preferences.{primary_model, fallback_model, temperature,
max_tokens}``; the engine stores ``model_preferences.{primary, fallback}`` with
``temperature`` and ``max_tokens`` beside it (the shape a run's agent snapshot
reads), and hands z2's shape back. Another tenant's agent is simply not there.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StringConstraints,
)
from sqlalchemy import func, select

from engine.db.scope import TenantScope
from engine.db.tables import Agent
from engine.platform.errors import NotFound

AgentType = Literal["researcher", "writer", "coder", "analyst", "validator"]
AgentStatus = Literal["active", "inactive", "error"]
Label = Annotated[str, StringConstraints(min_length=1, max_length=100)]
ModelName = Annotated[str, StringConstraints(min_length=1, max_length=200)]
MAX_PAGE_SIZE = 100


class AgentNotFound(NotFound):
    code = "AGENT_NOT_FOUND"


class ModelPreferences(BaseModel):
    """Which model the agent talks to (``primary``/``fallback`` are accepted too)."""

    model_config = ConfigDict(extra="forbid")

    primary_model: ModelName | None = Field(
        default=None, validation_alias=AliasChoices("primary_model", "primary")
    )
    fallback_model: ModelName | None = Field(
        default=None, validation_alias=AliasChoices("fallback_model", "fallback")
    )
    temperature: StrictFloat | None = Field(default=None, ge=0, le=2)
    max_tokens: StrictInt | None = Field(default=None, ge=1, le=1_000_000)


class AgentConfig(BaseModel):
    """An agent's ``config``. ``temperature`` and ``max_tokens`` may also sit at the
    top level (the engine's own shape); there they win over ``model_preferences``."""

    model_config = ConfigDict(extra="forbid")

    model_preferences: ModelPreferences = Field(default_factory=ModelPreferences)
    temperature: StrictFloat | None = Field(default=None, ge=0, le=2)
    max_tokens: StrictInt | None = Field(default=None, ge=1, le=1_000_000)
    tools: list[Label] = Field(default_factory=list, max_length=100)
    memory_size: StrictInt | None = Field(default=None, ge=0, le=10_000_000)

    def stored(self) -> dict[str, Any]:
        """The engine's shape, as ``engine.pipelines.executions.snapshot`` reads it."""
        prefs = self.model_preferences
        return {
            "model_preferences": {"primary": prefs.primary_model, "fallback": prefs.fallback_model},
            "temperature": self.temperature if self.temperature is not None else prefs.temperature,
            "max_tokens": self.max_tokens if self.max_tokens is not None else prefs.max_tokens,
            "tools": list(self.tools),
            "memory_size": self.memory_size,
        }

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any]) -> AgentConfig:
        """z2's shape of a stored config (everything model-related under ``model_preferences``)."""
        prefs = dict(stored.get("model_preferences") or {})
        return cls(
            model_preferences=ModelPreferences(
                primary_model=prefs.get("primary"),
                fallback_model=prefs.get("fallback"),
                temperature=stored.get("temperature"),
                max_tokens=stored.get("max_tokens"),
            ),
            tools=list(stored.get("tools") or []),
            memory_size=stored.get("memory_size"),
        )

    def merged(self, changes: AgentConfig) -> AgentConfig:
        """This config with the keys ``changes`` was given (an update sends only some)."""
        prefs = self.model_preferences
        if "model_preferences" in changes.model_fields_set:
            sent = changes.model_preferences.model_dump(exclude_unset=True)
            prefs = prefs.model_copy(update=sent)
        rest = changes.model_dump(exclude_unset=True, exclude={"model_preferences"})
        return self.model_copy(update={**rest, "model_preferences": prefs})


class AgentCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    type: AgentType
    description: str | None = Field(default=None, max_length=10_000)
    capabilities: list[Label] = Field(default_factory=list, max_length=100)
    system_prompt: str | None = Field(default=None, max_length=100_000)
    config: AgentConfig = Field(default_factory=AgentConfig)
    status: AgentStatus = "active"


class AgentUpdate(BaseModel):
    """Only the fields sent change; ``config`` keys not sent are kept."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    type: AgentType | None = None
    description: str | None = Field(default=None, max_length=10_000)
    capabilities: list[Label] | None = Field(default=None, max_length=100)
    system_prompt: str | None = Field(default=None, max_length=100_000)
    config: AgentConfig | None = None
    status: AgentStatus | None = None


@dataclass(frozen=True)
class AgentPage:
    agents: list[Agent]
    total: int
    page: int
    limit: int

    @property
    def pages(self) -> int:
        return math.ceil(self.total / self.limit) if self.total else 0


def config_of(agent: Agent) -> AgentConfig:
    return AgentConfig.from_stored(agent.config or {})


def _capabilities(values: list[str]) -> list[str]:
    return list(dict.fromkeys(value.strip() for value in values if value.strip()))


async def create_agent(db: TenantScope, values: AgentCreate, *, created_by: str | None) -> Agent:
    """A new agent of the caller's tenant."""
    agent = Agent(
        name=values.name.strip(),
        type=values.type,
        description=values.description or "",
        capabilities=_capabilities(values.capabilities),
        system_prompt=values.system_prompt or "",
        config=values.config.stored(),
        status=values.status,
        created_by=created_by,
    )
    db.add(agent)
    await db.session.commit()
    await db.session.refresh(agent)
    return agent


async def get_agent(db: TenantScope, agent_id: str) -> Agent:
    agent = await db.find(Agent, agent_id)
    if agent is None:
        raise AgentNotFound(f"Agent {agent_id} not found")
    return agent


async def list_agents(
    db: TenantScope,
    *,
    agent_type: str | None = None,
    status: str | None = None,
    capability: str | None = None,
    page: int = 1,
    limit: int = 20,
) -> AgentPage:
    """One page of the tenant's agents, newest first, filtered by type, status and
    capability."""
    page, limit = max(page, 1), min(max(limit, 1), MAX_PAGE_SIZE)
    query = db.select(Agent)
    if agent_type:
        query = query.where(Agent.type == agent_type)
    if status:
        query = query.where(Agent.status == status)
    query = query.order_by(Agent.created_at.desc(), Agent.id.desc())
    offset = (page - 1) * limit
    if capability:
        # JSON containment differs between SQLite and PostgreSQL; a tenant's
        # agents are few, so this filter runs here.
        rows = [a for a in await db.session.scalars(query) if capability in (a.capabilities or [])]
        return AgentPage(rows[offset : offset + limit], len(rows), page, limit)
    total = await db.session.scalar(select(func.count()).select_from(query.subquery()))
    rows = list(await db.session.scalars(query.limit(limit).offset(offset)))
    return AgentPage(rows, int(total or 0), page, limit)


async def update_agent(db: TenantScope, agent_id: str, changes: AgentUpdate) -> Agent:
    """Apply the fields sent (``null`` leaves a field as it is)."""
    agent = await get_agent(db, agent_id)
    sent = changes.model_dump(exclude_unset=True, exclude_none=True, exclude={"config"})
    if "name" in sent:
        agent.name = sent["name"].strip()
    if "capabilities" in sent:
        agent.capabilities = _capabilities(sent["capabilities"])
    for key in ("type", "description", "system_prompt", "status"):
        if key in sent:
            setattr(agent, key, sent[key])
    if changes.config is not None:
        agent.config = config_of(agent).merged(changes.config).stored()
    await db.session.commit()
    await db.session.refresh(agent)
    return agent


async def delete_agent(db: TenantScope, agent_id: str) -> None:
    """Delete the agent. Running executions keep their snapshot of it; a stored
    workflow that still names it fails validation (``UNKNOWN_AGENT``) when run."""
    agent = await get_agent(db, agent_id)
    await db.session.delete(agent)
    await db.session.commit()
