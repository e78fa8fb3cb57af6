"""What answers an A2A task: one of the tenant's active agents, or one of its
active pipeline definitions, chosen by the message.

A message names its target in its metadata (the request's, else the
message's): ``skill`` (``agent:agt_…`` / ``pipeline:wf_…`` as the extended card
lists them, or just ``agent``/``pipeline``), ``agent_id`` or ``pipeline_id``.
Without one, the tenant's first active agent answers. A named target the
tenant does not have (or that is not active) is an invalid request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.db.scope import TenantScope
from engine.db.tables import Agent, PipelineDefinitionRow
from engine.platform.errors import InvalidInput
from workflows.a2a_payloads import A2ATarget

MAX_SKILLS = 200  # per kind, on the extended card
AGENT = "agent"
PIPELINE = "pipeline"


async def active_agents(db: TenantScope, limit: int = MAX_SKILLS) -> list[Agent]:
    """The tenant's active agents, oldest first (the first is the default target)."""
    query = (
        db.select(Agent)
        .where(Agent.status == "active")
        .order_by(Agent.created_at, Agent.id)
        .limit(limit)
    )
    return list(await db.session.scalars(query))


async def active_pipelines(db: TenantScope, limit: int = MAX_SKILLS) -> list[PipelineDefinitionRow]:
    """The tenant's active (not deleted) pipeline definitions, oldest first."""
    query = (
        db.select(PipelineDefinitionRow)
        .where(
            PipelineDefinitionRow.status == "active",
            PipelineDefinitionRow.deleted_at.is_(None),
        )
        .order_by(PipelineDefinitionRow.created_at, PipelineDefinitionRow.id)
        .limit(limit)
    )
    return list(await db.session.scalars(query))


def _requested(hints: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """``(kind, id)`` the hints ask for (either may be None)."""
    if hints.get("agent_id"):
        return AGENT, str(hints["agent_id"])
    if hints.get("pipeline_id"):
        return PIPELINE, str(hints["pipeline_id"])
    skill = str(hints.get("skill") or "").strip()
    if not skill:
        return None, None
    kind, _, target = skill.partition(":")
    if kind not in (AGENT, PIPELINE):
        raise InvalidInput(
            f"unknown skill {skill!r}: use agent:<id>, pipeline:<id>, agent or pipeline",
            details={"field": "metadata.skill"},
        )
    return kind, target or None


async def choose_target(db: TenantScope, hints: Mapping[str, Any]) -> A2ATarget | None:
    """The target the hints name (``InvalidInput`` when the tenant has no such
    active one), or the default; None when the tenant has nothing to answer."""
    kind, target_id = _requested(hints)
    if kind == PIPELINE:
        if target_id is None:
            pipelines = await active_pipelines(db, limit=1)
            return _pipeline(pipelines[0]) if pipelines else None
        row = await db.find(PipelineDefinitionRow, target_id)
        if row is None or row.deleted_at is not None or row.status != "active":
            raise InvalidInput(
                f"no active pipeline {target_id}", details={"field": "metadata.pipeline_id"}
            )
        return _pipeline(row)
    if target_id is not None:
        agent = await db.find(Agent, target_id)
        if agent is None or agent.status != "active":
            raise InvalidInput(
                f"no active agent {target_id}", details={"field": "metadata.agent_id"}
            )
        return _agent(agent)
    agents = await active_agents(db, limit=1)
    return _agent(agents[0]) if agents else None


def _agent(row: Agent) -> A2ATarget:
    return A2ATarget(kind="agent", id=row.id, name=row.name)


def _pipeline(row: PipelineDefinitionRow) -> A2ATarget:
    return A2ATarget(kind="pipeline", id=row.id, name=row.name)
