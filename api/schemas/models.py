"""Model management: listings, pulls, usage, budget, breakers, run-time providers
and the response cache (zentoria, z2 and sutazai shapes, and auterity's listings)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import SkipJsonSchema

ModelKind = Literal["chat", "embedding"]


class InstalledModelPublic(BaseModel):
    name: str
    provider: str
    type: ModelKind
    size: int | None
    modified_at: str | None
    digest: str | None
    details: dict[str, Any]


class InstalledModelsPublic(BaseModel):
    models: list[InstalledModelPublic]


class PullStartedPublic(BaseModel):
    workflow_id: str
    model: str
    provider: str
    status: str


class PullProgressPublic(BaseModel):
    workflow_id: str
    provider: str
    model: str
    phase: Literal["pulling", "succeeded", "failed"]
    status: str
    completed: int | None
    total: int | None
    error: str | None
    percent: float | None
    workflow_status: str


class ModelDeletedPublic(BaseModel):
    name: str
    provider: str
    deleted: bool


class CatalogModelPublic(BaseModel):
    """A model as a provider's listing shows it: declared specs, prices, measured stats."""

    id: str
    name: str
    type: ModelKind
    capabilities: list[str]
    context_window: int | None
    cost_per_1k_input: float
    cost_per_1k_output: float
    quality_score: float | None
    avg_latency_ms: float | None
    error_rate: float
    size: int | None
    modified_at: str | None
    digest: str | None


ProviderStatus = Literal["healthy", "unhealthy", "circuit_open"]
BreakerStateName = Literal["closed", "open", "half_open"]


class CatalogProviderPublic(BaseModel):
    name: str
    kind: str
    source: str
    status: ProviderStatus
    circuit_breaker: BreakerStateName
    models: list[CatalogModelPublic]


class ModelSummaryPublic(BaseModel):
    """sutazai's flat model list."""

    name: str
    provider: str
    type: ModelKind
    size: int | None
    modified_at: str | None
    digest: str | None
    status: Literal["available", "unavailable"]
    last_used: str | None


class ModelCatalogPublic(BaseModel):
    """``GET /models``: z2's providers plus sutazai's models and default."""

    providers: list[CatalogProviderPublic]
    models: list[ModelSummaryPublic]
    default_model: str | None


class ModelInfoPublic(CatalogModelPublic):
    provider: str
    provider_kind: str
    circuit_breaker: BreakerStateName
    calls_measured: int
    details: dict[str, Any]


class UsageTotalsPublic(BaseModel):
    requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    total_cost_usd: float
    avg_latency_ms: float | None
    errors: int
    cached: int


class UsageGroupPublic(UsageTotalsPublic):
    """One group's totals; only the key ``group_by`` names is present."""

    model: str | SkipJsonSchema[None] = None
    provider: str | SkipJsonSchema[None] = None
    user_id: str | None = None


class UsageSummaryPublic(BaseModel):
    usage: list[UsageGroupPublic]
    totals: UsageTotalsPublic
    timeframe: str
    group_by: str
    since: str


class BudgetPublic(BaseModel):
    tenant_id: str
    monthly_limit_usd: float | None
    hard_limit: bool
    spent_this_month_usd: float
    remaining_usd: float | None


class BreakerPublic(BaseModel):
    name: str
    state: BreakerStateName
    failure_count: int
    failure_threshold: int
    recovery_timeout_seconds: float
    retry_after_seconds: float
    times_opened: int
    total_failures: int
    total_successes: int
    last_failure: str | None
    last_failure_at: str | None


class CircuitBreakersPublic(BaseModel):
    circuit_breakers: dict[str, BreakerPublic]
    open: list[str]


class ProviderPublic(BaseModel):
    """A provider added at run time; its API key never comes back."""

    id: str
    name: str
    kind: str
    base_url: str | None
    has_api_key: bool
    active: bool
    priority: int
    models: list[dict[str, Any]]
    created_at: str
    updated_at: str | None


class ProvidersPublic(BaseModel):
    providers: list[ProviderPublic]


class CacheStatsPublic(BaseModel):
    backend: Literal["redis", "memory"]
    hit_rate: float
    total_hits: int
    total_misses: int
    memory_used_mb: float
    keys_count: int
    ttl_average_seconds: float
    ttl_seconds: int


class CacheKeyPublic(BaseModel):
    key: str
    size_bytes: int
    ttl_seconds: float


class CacheKeysPublic(BaseModel):
    keys: list[CacheKeyPublic]
    count: int


class CacheClearedPublic(BaseModel):
    cleared: int
    pattern: str


class AuterityModelPublic(BaseModel):
    """auterity ``/api/ai/models``: chat models with prices and measured latency."""

    id: str
    provider: str
    cost_per_token: float
    max_tokens: int | None
    capabilities: list[str]
    quality_score: float | None
    avg_response_time: float | None


class AuterityModelsPublic(BaseModel):
    models: list[AuterityModelPublic]


class AvailableModelPublic(BaseModel):
    """auterity ``/api/models/available``."""

    id: str
    provider: str
    name: str
    type: ModelKind
    context_window: int | None
    cost_per_token: float
    status: Literal["available", "unavailable"]


class AvailableModelsPublic(BaseModel):
    models: list[AvailableModelPublic]


class MonthCostPublic(BaseModel):
    month: str
    total_spent: float
    budget_limit: float | None
    hard_limit: bool | None
    budget_used_percentage: float | None
    projected_monthly_cost: float


class DailyCostPublic(BaseModel):
    date: str
    cost: float
    requests: int


class CostReportPublic(BaseModel):
    """auterity ``/api/analytics/costs``."""

    current_month: MonthCostPublic
    cost_breakdown: dict[str, float]
    daily_usage: list[DailyCostPublic]
