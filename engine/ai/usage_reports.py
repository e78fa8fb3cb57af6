"""Reading the ledger: usage by model, provider or user; month-to-date costs;
the tenant's budget."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import String, case, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from engine.ai.ledger import flush_all
from engine.ai.usage import month_start, spent_this_month
from engine.db.tables import TenantBudget, UsageRecord
from engine.platform.errors import InvalidInput

TIMEFRAMES = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
GROUPS: dict[str, tuple[str, Any]] = {
    "model": ("model", UsageRecord.model),
    "provider": ("provider", UsageRecord.provider),
    "user": ("user_id", UsageRecord.user_id),
}


def _totals_columns() -> list[ColumnElement[Any]]:
    return [
        func.count().label("requests"),
        func.coalesce(func.sum(UsageRecord.prompt_tokens), 0).label("prompt_tokens"),
        func.coalesce(func.sum(UsageRecord.completion_tokens), 0).label("completion_tokens"),
        func.coalesce(func.sum(UsageRecord.cost_usd), 0.0).label("cost"),
        func.avg(UsageRecord.latency_ms).label("latency"),
        func.coalesce(func.sum(case((UsageRecord.success.is_(False), 1), else_=0)), 0).label(
            "errors"
        ),
        func.coalesce(func.sum(case((UsageRecord.cached.is_(True), 1), else_=0)), 0).label(
            "cached"
        ),
    ]


def _row(row: Any) -> dict[str, Any]:
    prompt, completion = int(row.prompt_tokens), int(row.completion_tokens)
    return {
        "requests": int(row.requests),
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "total_cost_usd": round(float(row.cost), 8),
        "avg_latency_ms": round(float(row.latency), 2) if row.latency is not None else None,
        "errors": int(row.errors),
        "cached": int(row.cached),
    }


async def usage_summary(
    session: AsyncSession, tenant_id: str, *, timeframe: str = "24h", group_by: str = "model"
) -> dict[str, Any]:
    """z2 ``/models/usage``: requests, tokens, cost and latency per group."""
    await flush_all()  # the calls this process answered are in the figures
    if timeframe not in TIMEFRAMES:
        raise InvalidInput(
            f"timeframe must be one of {', '.join(TIMEFRAMES)}", details={"field": "timeframe"}
        )
    if group_by not in GROUPS:
        raise InvalidInput(
            f"group_by must be one of {', '.join(GROUPS)}", details={"field": "group_by"}
        )
    since = datetime.now(UTC) - TIMEFRAMES[timeframe]
    label, column = GROUPS[group_by]
    scope = (UsageRecord.tenant_id == tenant_id, UsageRecord.created_at >= since)
    rows = (
        await session.execute(
            select(column.label("key"), *_totals_columns())
            .where(*scope)
            .group_by(column)
            .order_by(func.sum(UsageRecord.cost_usd).desc(), column)
        )
    ).all()
    totals = (await session.execute(select(*_totals_columns()).where(*scope))).one()
    return {
        "usage": [{label: row.key, **_row(row)} for row in rows],
        "totals": _row(totals),
        "timeframe": timeframe,
        "group_by": group_by,
        "since": since.isoformat(),
    }


def _day(session: AsyncSession) -> ColumnElement[Any]:
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", UsageRecord.created_at), "YYYY-MM-DD")
    return func.substr(cast(UsageRecord.created_at, String), 1, 10)  # stored as UTC ISO text


async def cost_report(session: AsyncSession, tenant_id: str) -> dict[str, Any]:
    """auterity ``/api/analytics/costs``: month to date, budget, projection, breakdown."""
    await flush_all()  # the calls this process answered are in the figures
    now = datetime.now(UTC)
    start = month_start(now)
    spent = await spent_this_month(session, tenant_id)
    budget = await session.get(TenantBudget, tenant_id)
    days_in_month = calendar.monthrange(now.year, now.month)[1]
    elapsed_days = max((now - start).total_seconds(), 3600.0) / 86400
    scope = (UsageRecord.tenant_id == tenant_id, UsageRecord.created_at >= start)
    breakdown = (
        await session.execute(
            select(UsageRecord.model, func.sum(UsageRecord.cost_usd))
            .where(*scope)
            .group_by(UsageRecord.model)
            .order_by(func.sum(UsageRecord.cost_usd).desc())
        )
    ).all()
    day = _day(session)
    daily = (
        await session.execute(
            select(day.label("day"), func.sum(UsageRecord.cost_usd), func.count())
            .where(*scope)
            .group_by(day)
            .order_by(day)
        )
    ).all()
    limit = budget.monthly_limit_usd if budget else None
    return {
        "current_month": {
            "month": start.strftime("%Y-%m"),
            "total_spent": round(spent, 6),
            "budget_limit": limit,
            "hard_limit": budget.hard_limit if budget else None,
            "budget_used_percentage": round(spent / limit * 100, 2) if limit else None,
            "projected_monthly_cost": round(spent / elapsed_days * days_in_month, 6),
        },
        "cost_breakdown": {model: round(float(cost or 0), 6) for model, cost in breakdown},
        "daily_usage": [
            {"date": str(d), "cost": round(float(c or 0), 6), "requests": int(n)}
            for d, c, n in daily
        ],
    }


def budget_public(tenant_id: str, budget: TenantBudget | None, spent: float) -> dict[str, Any]:
    limit = budget.monthly_limit_usd if budget else None
    return {
        "tenant_id": tenant_id,
        "monthly_limit_usd": limit,
        "hard_limit": budget.hard_limit if budget else False,
        "spent_this_month_usd": round(spent, 6),
        "remaining_usd": round(max(0.0, limit - spent), 6) if limit is not None else None,
    }


async def read_budget(session: AsyncSession, tenant_id: str) -> dict[str, Any]:
    await flush_all()  # the calls this process answered are in the figures
    budget = await session.get(TenantBudget, tenant_id)
    return budget_public(tenant_id, budget, await spent_this_month(session, tenant_id))


async def set_budget(
    session: AsyncSession, tenant_id: str, monthly_limit_usd: float | None, hard_limit: bool
) -> dict[str, Any]:
    """Set (or, with None, remove) the tenant's monthly model budget."""
    budget = await session.get(TenantBudget, tenant_id)
    if monthly_limit_usd is None:
        if budget is not None:
            await session.delete(budget)
        budget = None
    elif budget is None:
        budget = TenantBudget(
            tenant_id=tenant_id, monthly_limit_usd=monthly_limit_usd, hard_limit=hard_limit
        )
        session.add(budget)
    else:
        budget.monthly_limit_usd = monthly_limit_usd
        budget.hard_limit = hard_limit
    await session.commit()
    return budget_public(tenant_id, budget, await spent_this_month(session, tenant_id))
