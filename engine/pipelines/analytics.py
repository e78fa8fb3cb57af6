"""Workflow analytics (auterity ``/api/analytics/...``): the dashboard and one
workflow's metrics, computed from the caller's tenant's execution index, model
ledger (``UsageRecord``) and request history, and nothing else.

Units follow auterity's dashboard: ``success_rate`` and ``uptime`` are percents,
``error_rate`` a fraction, ``avg_execution_time`` seconds, ``avg_response_time``
milliseconds. A success rate counts finished executions (completed against
failed or timed out); a cancelled one was stopped by a person and counts for
neither side.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Float, case, cast, extract, func
from sqlalchemy.sql.elements import ColumnElement

from engine.db.scope import TenantScope
from engine.db.tables import Execution, PipelineDefinitionRow, RequestRecord, UsageRecord
from engine.pipelines import store
from engine.pipelines.definition import PipelineDefinition

WINDOW = timedelta(days=30)  # rates and averages of the dashboard
FAILED = ("failed", "timed_out")
FINISHED = ("completed", *FAILED)
STEP_HISTORY = 200  # finished executions the per-step figures read


def day_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _percent(part: int, whole: int) -> float:
    return round(part / whole * 100, 2) if whole else 0.0


def _seconds(db: TenantScope) -> ColumnElement[Any]:
    """An execution's run time in seconds, on either backend."""
    if db.session.get_bind().dialect.name == "postgresql":
        return extract("epoch", Execution.completed_at - Execution.started_at)
    # SQLite keeps the UTC times as ISO text; julianday reads it in days.
    return (func.julianday(Execution.completed_at) - func.julianday(Execution.started_at)) * 86400.0


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


async def _one(db: TenantScope, model: type[Any], *columns: Any, where: tuple[Any, ...]) -> Any:
    query = db.select(model).with_only_columns(*columns).where(*where)
    return (await db.session.execute(query)).one()


async def _outcomes(db: TenantScope, *where: Any) -> dict[str, Any]:
    """Counts by outcome and the mean run time of finished executions."""
    done = Execution.status.in_(FINISHED) & Execution.started_at.is_not(None)
    timed = case((done & Execution.completed_at.is_not(None), _seconds(db)), else_=None)
    row = await _one(
        db,
        Execution,
        func.count(),
        _count_if(Execution.status == "completed"),
        _count_if(Execution.status.in_(FAILED)),
        _count_if(Execution.status == "cancelled"),
        _count_if(Execution.status.in_(("running", "scheduled"))),
        func.avg(cast(timed, Float)),
        func.coalesce(func.sum(Execution.tokens_used), 0),
        func.coalesce(func.sum(Execution.cost_usd), 0.0),
        func.max(Execution.created_at),
        where=where,
    )
    total, completed, failed, cancelled, running, seconds, tokens, cost, last = row
    return {
        "total": int(total),
        "completed": int(completed),
        "failed": int(failed),
        "cancelled": int(cancelled),
        "running": int(running),
        "success_rate": _percent(int(completed), int(completed) + int(failed)),
        "avg_seconds": round(float(seconds), 3) if seconds is not None else 0.0,
        "tokens": int(tokens),
        "cost": round(float(cost), 6),
        "last": last,
    }


async def _ledger(db: TenantScope, *where: Any) -> dict[str, Any]:
    """Model calls: how many, their tokens, cost, latency and failures, and the
    models by number of calls."""
    totals = await _one(
        db,
        UsageRecord,
        func.count(),
        func.coalesce(func.sum(UsageRecord.prompt_tokens + UsageRecord.completion_tokens), 0),
        func.coalesce(func.sum(UsageRecord.cost_usd), 0.0),
        func.avg(UsageRecord.latency_ms),
        _count_if(UsageRecord.success.is_(False)),
        where=where,
    )
    requests, tokens, cost, latency, errors = totals
    by_model = (
        await db.session.execute(
            db.select(UsageRecord)
            .with_only_columns(UsageRecord.model, func.count())
            .where(*where)
            .group_by(UsageRecord.model)
            .order_by(func.count().desc(), UsageRecord.model)
        )
    ).all()
    models = {str(model): int(count) for model, count in by_model}
    return {
        "requests": int(requests),
        "tokens": int(tokens),
        "cost": round(float(cost), 6),
        "latency_ms": round(float(latency), 2) if latency is not None else 0.0,
        "errors": int(errors),
        "models": models,
        "most_used_model": next(iter(models), None),
    }


async def dashboard(db: TenantScope, *, now: datetime | None = None) -> dict[str, Any]:
    """auterity ``GET /api/analytics/dashboard`` for the caller's tenant."""
    now = now or datetime.now(UTC)
    today, since = day_start(now), now - WINDOW
    workflows = await _one(
        db,
        PipelineDefinitionRow,
        func.count(),
        where=(PipelineDefinitionRow.deleted_at.is_(None),),
    )
    active = await _one(db, Execution, func.count(), where=(Execution.status == "running",))
    started_today = await _one(db, Execution, func.count(), where=(Execution.created_at >= today,))
    recent = await _outcomes(db, Execution.created_at >= since)
    usage = await _ledger(db, UsageRecord.created_at >= today)
    requests = await _one(
        db,
        RequestRecord,
        func.count(),
        _count_if(RequestRecord.status_code >= 500),
        where=(RequestRecord.created_at >= today,),
    )
    served, server_errors = int(requests[0]), int(requests[1])
    calls, failed_calls = usage["requests"], usage["errors"]
    return {
        "overview": {
            "total_workflows": int(workflows[0]),
            "active_executions": int(active[0]),
            "total_executions_today": int(started_today[0]),
            "success_rate": recent["success_rate"],
            "avg_execution_time": recent["avg_seconds"],
        },
        "usage_stats": {
            "ai_requests_today": usage["requests"],
            "total_cost_today": usage["cost"],
            "tokens_consumed": usage["tokens"],
            "most_used_model": usage["most_used_model"],
        },
        "performance_metrics": {
            "avg_response_time": usage["latency_ms"],
            "error_rate": round(failed_calls / calls, 4) if calls else 0.0,
            # The share of today's API requests answered without a server error.
            "uptime": round(100 - _percent(server_errors, served), 2) if served else 100.0,
        },
        "period": {"today_since": today, "rates_since": since},
    }


def _when(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


async def _step_metrics(db: TenantScope, row: PipelineDefinitionRow) -> list[dict[str, Any]]:
    """Per step of the current definition: how its recent runs ended and took."""
    results = await db.session.scalars(
        db.select(Execution)
        .with_only_columns(Execution.results)
        .where(Execution.definition_id == row.id, Execution.status.in_((*FINISHED, "cancelled")))
        .order_by(Execution.created_at.desc())
        .limit(STEP_HISTORY)
    )
    outcomes: dict[str, Counter[str]] = {}
    durations: dict[str, list[float]] = {}
    for recorded in results:
        for step_id, step in (recorded or {}).items():
            outcomes.setdefault(step_id, Counter())[str(step.get("status"))] += 1
            start, end = _when(step.get("started_at")), _when(step.get("completed_at"))
            if step.get("status") == "completed" and start and end:
                durations.setdefault(step_id, []).append((end - start).total_seconds() * 1000)
    steps = []
    for step in PipelineDefinition.model_validate(row.definition).steps:
        seen, took = outcomes.get(step.id, Counter()), durations.get(step.id, [])
        steps.append(
            {
                "step_id": step.id,
                "name": step.title,
                "type": step.type.value,
                "completed": seen["completed"],
                "failed": seen["failed"],
                "skipped": seen["skipped"],
                "cancelled": seen["cancelled"],
                "success_rate": _percent(seen["completed"], seen["completed"] + seen["failed"]),
                "avg_duration_ms": round(sum(took) / len(took), 1) if took else 0.0,
            }
        )
    return steps


async def workflow_metrics(db: TenantScope, workflow_id: str) -> dict[str, Any]:
    """One workflow of the caller's tenant: its executions' outcomes, run time,
    tokens and cost, its model calls, and how each step fares."""
    row = await store.get_definition(db, workflow_id)
    outcomes = await _outcomes(db, Execution.definition_id == row.id)
    runs = db.select(Execution).with_only_columns(Execution.workflow_id)
    runs = runs.where(Execution.definition_id == row.id)
    calls = await _ledger(db, UsageRecord.workflow_id.in_(runs))
    total = outcomes["total"]
    return {
        "workflow_id": row.id,
        "name": row.name,
        "total_executions": total,
        "completed_executions": outcomes["completed"],
        "failed_executions": outcomes["failed"],
        "cancelled_executions": outcomes["cancelled"],
        "active_executions": outcomes["running"],
        "success_rate": outcomes["success_rate"],
        "avg_execution_time": outcomes["avg_seconds"],
        "avg_duration_ms": round(outcomes["avg_seconds"] * 1000),
        "total_tokens": outcomes["tokens"],
        "total_cost_usd": outcomes["cost"],
        "avg_cost_usd": round(outcomes["cost"] / total, 6) if total else 0.0,
        "ai_requests": calls["requests"],
        "ai_errors": calls["errors"],
        "avg_response_time": calls["latency_ms"],
        "models": calls["models"],
        "most_used_model": calls["most_used_model"],
        "last_executed_at": outcomes["last"],
        "steps": await _step_metrics(db, row),
    }
