"""Health, readiness and the system check."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel
from pydantic.json_schema import SkipJsonSchema

from api.schemas.models import BreakerStateName, ProviderStatus
from engine.platform.health import CheckResult, Status
from workflows.system_check import SystemCheckResult


class QueueSummaryPublic(BaseModel):
    status: Status
    pollers: int


class ServicesPublic(BaseModel):
    database: Status
    redis: Status
    temporal: Status
    workers: Status
    # sutazai: the Ollama provider named ``ollama``, else the first Ollama one by
    # priority; ``not_configured`` when there is none.
    ollama: Status


class ComponentsPublic(ServicesPublic):
    task_queues: dict[str, QueueSummaryPublic]
    # z2: every model provider's state by name (the local provider included).
    llm_providers: dict[str, ProviderStatus]


class ProviderHealthPublic(BaseModel):
    """One model provider as ``/health`` sees it (never its URL or key)."""

    name: str
    kind: str
    source: str  # settings, database, builtin
    status: ProviderStatus
    circuit_breaker: BreakerStateName
    error: str | None  # the code of its last failed listing


class PerformancePublic(BaseModel):
    """sutazai: this health answer's own time, and the response cache's hit rate
    in this process (every tenant together)."""

    response_time_ms: float
    cache_hit_rate: float


class HealthPublic(BaseModel):
    """``GET /health``: the union of the zentoria, z2 and sutazai shapes."""

    status: Status
    version: str
    uptime: int
    uptime_seconds: float
    timestamp: str
    services: ServicesPublic
    components: ComponentsPublic
    providers: list[ProviderHealthPublic]
    performance: PerformancePublic


class CheckPublic(BaseModel):
    """One dependency's probe; keys that do not apply are absent, never null."""

    status: Status
    latency_ms: float | SkipJsonSchema[None] = None
    error: str | SkipJsonSchema[None] = None
    backend: str | SkipJsonSchema[None] = None
    server_version: str | SkipJsonSchema[None] = None
    namespace: str | SkipJsonSchema[None] = None
    pollers: int | SkipJsonSchema[None] = None
    identities: list[str] | SkipJsonSchema[None] = None

    @classmethod
    def of(cls, check: CheckResult) -> CheckPublic:
        return cls.model_validate(check.as_dict())


class ChecksPublic(BaseModel):
    database: CheckPublic
    redis: CheckPublic
    temporal: CheckPublic


class HealthDetailedPublic(BaseModel):
    overall_status: Status
    status: Status
    version: str
    uptime_seconds: float
    timestamp: str
    services: ChecksPublic
    task_queues: dict[str, CheckPublic]


class ReadyChecksPublic(BaseModel):
    database: CheckPublic
    temporal: CheckPublic


class ReadyPublic(BaseModel):
    """``GET /api/ready``: the same body with 200 (ready) or 503 (not ready)."""

    ready: bool
    status: Literal["ready", "not_ready"]
    timestamp: str
    checks: ReadyChecksPublic


class SystemCheckPublic(SystemCheckResult):
    """The run's id and each activity queue's answer."""

    workflow_id: str
