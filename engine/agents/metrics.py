"""What an agent has done, from the execution index and the usage ledger.

An execution counts for an agent when its stored workflow definition has a
step with that ``agent_id``; its cost and tokens are the ledger's ``agent``
rows of the run (``workflow_id`` ``run-{execution_id}``). The ledger has no
agent column, so a run with several agents counts its agent calls for each.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from engine.agents.service import get_agent
from engine.db.scope import TenantScope
from engine.db.tables import Agent, Execution, PipelineDefinitionRow, UsageRecord

SUCCEEDED = "completed"
# Outcomes that say something about the agent. A cancelled run was the
# caller's choice, and a running one has no outcome yet.
FINISHED = ("completed", "failed", "timed_out")


@dataclass(frozen=True)
class AgentMetrics:
    total_executions: int
    completed_executions: int
    failed_executions: int
    running_executions: int
    success_rate: float  # a fraction of finished executions, as z2 shows it (0.94)
    avg_duration_ms: int
    total_cost_usd: float
    total_tokens: int
    model_calls: int
    last_execution_at: datetime | None


NO_METRICS = AgentMetrics(0, 0, 0, 0, 0.0, 0, 0.0, 0, 0, None)


def uses_agent(definition: Mapping[str, Any], agent_id: str) -> bool:
    steps = definition.get("steps") or []
    return any(isinstance(s, Mapping) and s.get("agent_id") == agent_id for s in steps)


async def agent_metrics(db: TenantScope, agent_id: str) -> AgentMetrics:
    """The metrics of one of the tenant's agents (``AgentNotFound`` otherwise)."""
    return await metrics_of(db, await get_agent(db, agent_id))


async def metrics_of(db: TenantScope, agent: Agent) -> AgentMetrics:
    tenant = agent.tenant_id
    definitions = await db.session.execute(
        select(PipelineDefinitionRow.id, PipelineDefinitionRow.definition).where(
            PipelineDefinitionRow.tenant_id == tenant
        )
    )
    # Deleted definitions too: their executions happened.
    ids = [row_id for row_id, definition in definitions if uses_agent(definition or {}, agent.id)]
    if not ids:
        return NO_METRICS
    runs = (Execution.tenant_id == tenant, Execution.definition_id.in_(ids))
    rows = (
        await db.session.execute(
            select(
                Execution.status,
                Execution.started_at,
                Execution.completed_at,
                Execution.created_at,
            ).where(*runs)
        )
    ).all()
    finished = [row for row in rows if row.status in FINISHED]
    completed = sum(1 for row in finished if row.status == SUCCEEDED)
    durations = [
        (row.completed_at - row.started_at).total_seconds() * 1000
        for row in finished
        if row.started_at and row.completed_at
    ]
    calls, cost, tokens = (
        await db.session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(UsageRecord.cost_usd), 0.0),
                func.coalesce(
                    func.sum(UsageRecord.prompt_tokens + UsageRecord.completion_tokens), 0
                ),
            ).where(
                UsageRecord.tenant_id == tenant,
                UsageRecord.kind == "agent",
                UsageRecord.workflow_id.in_(select(Execution.workflow_id).where(*runs)),
            )
        )
    ).one()
    return AgentMetrics(
        total_executions=len(rows),
        completed_executions=completed,
        failed_executions=len(finished) - completed,
        running_executions=sum(1 for row in rows if row.status in ("scheduled", "running")),
        success_rate=round(completed / len(finished), 4) if finished else 0.0,
        avg_duration_ms=round(sum(durations) / len(durations)) if durations else 0,
        total_cost_usd=round(float(cost), 6),
        total_tokens=int(tokens),
        model_calls=int(calls),
        last_execution_at=max((row.created_at for row in rows), default=None),
    )
