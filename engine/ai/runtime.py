"""The long-lived model machinery of one process, and who a call is for.

One ``ModelRuntime`` per API process (created in the lifespan) holds the
shared HTTP client, the provider registry, the circuit breakers, the rolling
model statistics and the response cache; the chat and routing services take
it as their first argument.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.ai.breakers import BreakerBoard
from engine.ai.ledger import LedgerEntry, LedgerWriter
from engine.ai.providers.registry import ProviderRegistry
from engine.ai.response_cache import ResponseCache
from engine.ai.stats import ModelStats
from engine.ai.usage import check_budget, record_usage
from engine.db.tables import TenantBudget, UsageRecord
from engine.events import outbox
from engine.events.catalog import EventType
from engine.platform import metrics
from engine.platform.egress import new_http_client
from engine.platform.settings import Settings

# How long this process trusts what it read about a tenant's budget (its own
# changes apply at once; another replica's within this many seconds).
BUDGET_TTL_SECONDS = 5.0
# Model calls whose answers are announced as ai.response events (not probes or warm-ups).
RESPONSE_EVENT_KINDS = frozenset({"chat", "rag", "agent", "route", "batch"})


@dataclass(frozen=True)
class CallContext:
    """Who a model call is for, and what it belongs to (for the ledger)."""

    tenant_id: str
    user_id: str | None = None
    request_id: str | None = None
    kind: str = "chat"  # chat, route, test, batch, warm, rag, agent, embedding
    workflow_id: str | None = None
    run_id: str | None = None
    dedupe_key: str | None = None


@dataclass
class ModelRuntime:
    settings: Settings
    http: httpx.AsyncClient
    sessions: async_sessionmaker[AsyncSession]
    registry: ProviderRegistry
    breakers: BreakerBoard
    stats: ModelStats
    cache: ResponseCache
    ledger: LedgerWriter
    owns_http: bool = field(default=False)
    # tenant -> (read at, hard limit in force?)
    _budgets: dict[str, tuple[float, bool]] = field(default_factory=dict)

    @classmethod
    def open(
        cls,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        redis: Redis | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> ModelRuntime:
        client = http or new_http_client(settings)
        return cls(
            settings=settings,
            http=client,
            sessions=sessions,
            registry=ProviderRegistry(settings, client, sessions),
            breakers=BreakerBoard(settings),
            stats=ModelStats(redis),
            cache=ResponseCache(settings, redis),
            ledger=LedgerWriter(sessions),
            owns_http=http is None,
        )

    async def close(self) -> None:
        await self.ledger.close()  # what this process answered reaches the ledger
        if self.owns_http:
            await self.http.aclose()

    async def check_budget(self, tenant_id: str, estimated_cost: float) -> None:
        """Refuse a call past a hard budget; tenants without one cost no query."""
        now = time.monotonic()
        known = self._budgets.get(tenant_id)
        if known is None or now - known[0] > BUDGET_TTL_SECONDS:
            async with self.sessions() as session:
                budget = await session.get(TenantBudget, tenant_id)
            known = (now, budget is not None and budget.hard_limit)
            self._budgets[tenant_id] = known
        if known[1]:
            await self.ledger.flush()  # this process's own calls count at once
            async with self.sessions() as session:
                await check_budget(session, tenant_id, estimated_cost)

    def forget_budget(self, tenant_id: str) -> None:
        self._budgets.pop(tenant_id, None)

    async def record(
        self, ctx: CallContext, *, response: dict[str, Any] | None = None, **fields: object
    ) -> None:
        """One ledger row for a model call; with ``response``, an ``ai.response``
        event written with it. A call with a dedupe key (an activity's) is
        written at once in its own short transaction; any other goes to the
        batching ``ledger`` writer (see ``engine.ai.ledger``)."""
        columns: dict[str, Any] = {
            "tenant_id": ctx.tenant_id,
            "user_id": ctx.user_id,
            "kind": ctx.kind,
            "request_id": ctx.request_id,
            "workflow_id": ctx.workflow_id,
            "run_id": ctx.run_id,
            "dedupe_key": ctx.dedupe_key,
            **fields,
        }
        announce = response is not None and ctx.kind in RESPONSE_EVENT_KINDS
        event = (
            {**response, "request_id": ctx.request_id, "workflow_id": ctx.workflow_id}
            if announce and response is not None
            else None
        )
        if not ctx.dedupe_key and self.ledger.add(LedgerEntry(columns, event)):
            _observe(ctx.kind, fields)
            return
        row = UsageRecord(**columns)
        recorded = True
        async with self.sessions() as session:
            if ctx.dedupe_key:
                recorded = await record_usage(session, row)
            else:  # nothing to deduplicate: skip the lookup and the savepoint
                session.add(row)
            if event is not None:
                dedupe = f"{ctx.dedupe_key}:response" if ctx.dedupe_key else None
                await outbox.emit(
                    session,
                    ctx.tenant_id,
                    EventType.AI_RESPONSE,
                    event,
                    subject=ctx.workflow_id,
                    dedupe_key=dedupe,
                )
            await session.commit()
        if recorded:  # a retried activity's call is counted once, like its ledger row
            _observe(ctx.kind, fields)  # from the call's fields: the row is expired now


def _observe(kind: str, fields: dict[str, object]) -> None:
    def number(name: str) -> float:
        value = fields.get(name)
        return float(value) if isinstance(value, int | float) else 0.0

    metrics.observe_model_call(
        provider=str(fields.get("provider") or ""),
        model=str(fields.get("model") or ""),
        kind=kind,
        prompt_tokens=int(number("prompt_tokens")),
        completion_tokens=int(number("completion_tokens")),
        cost_usd=number("cost_usd"),
        success=fields.get("success") is not False,
        cached=bool(fields.get("cached")),
    )
