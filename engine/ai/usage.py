"""The usage and cost ledger: one row per model call, wherever it happened.

Chat, embeddings, RAG answers and agent steps all record here, inside or
outside workflows; activities pass a ``dedupe_key`` (workflow, activity, attempt
-independent) so a retried activity never counts twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from engine.db.dedupe import record_once
from engine.db.tables import TenantBudget, UsageRecord
from engine.platform.errors import WeftError


class InsufficientCredits(WeftError):
    """A hard monthly budget would be exceeded (HTTP 402)."""

    code = "INSUFFICIENT_CREDITS"


@dataclass(frozen=True)
class Price:
    """US dollars per 1,000 tokens."""

    input_per_1k: float = 0.0
    output_per_1k: float = 0.0

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return round(
            prompt_tokens / 1000 * self.input_per_1k
            + completion_tokens / 1000 * self.output_per_1k,
            8,
        )


def price_for(model: str, table: dict[str, dict[str, float]]) -> Price:
    """The configured price of ``model`` (exact name, then its base before ``:``)."""
    entry = table.get(model) or table.get(model.split(":", 1)[0]) or {}
    return Price(
        float(entry.get("input", entry.get("cost_per_1k_input", 0.0))),
        float(entry.get("output", entry.get("cost_per_1k_output", 0.0))),
    )


async def record_usage(session: AsyncSession, record: UsageRecord) -> bool:
    """Add one ledger row; False when its dedupe key was already recorded."""
    return await record_once(session, record, UsageRecord.dedupe_key, record.dedupe_key)


def month_start(now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


async def spent_this_month(session: AsyncSession, tenant_id: str) -> float:
    total = await session.scalar(
        select(func.coalesce(func.sum(UsageRecord.cost_usd), 0.0)).where(
            UsageRecord.tenant_id == tenant_id, UsageRecord.created_at >= month_start()
        )
    )
    return float(total or 0.0)


async def check_budget(session: AsyncSession, tenant_id: str, estimated_cost: float) -> None:
    """Refuse a call that would take a hard budget past its monthly limit."""
    budget = await session.get(TenantBudget, tenant_id)
    if budget is None or not budget.hard_limit:
        return
    spent = await spent_this_month(session, tenant_id)
    if spent + estimated_cost > budget.monthly_limit_usd:
        raise InsufficientCredits(
            "The tenant's monthly model budget is used up",
            details={
                "budget_limit": budget.monthly_limit_usd,
                "spent": round(spent, 6),
                "estimated_cost": round(estimated_cost, 6),
            },
        )
