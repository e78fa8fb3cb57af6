"""sutazai's monitoring and system operations: ``/api/v1/metrics``,
``/api/v1/status`` and ``/api/v1/system/{info,config,reload}``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from api.schemas.health import ComponentsPublic, ServicesPublic
from engine.platform.health import Status


class PerformancePublic(BaseModel):
    """sutazai's ``performance_metrics``, over this process's lifetime."""

    requests_per_second: float
    avg_response_time_ms: float
    p95_response_time_ms: float
    error_rate: float  # 5xx answers / all answers
    total_requests: int
    rate_limited_requests: int


class SystemResourcesPublic(BaseModel):
    """sutazai's ``system_resources`` (``cpu_percent``: 1-minute load per core)."""

    cpu_percent: float | None
    memory_percent: float | None
    disk_usage_percent: float | None


class ModelUsagePublic(BaseModel):
    """Model calls recorded by this process (all tenants, providers and models)."""

    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


class MetricsPublic(BaseModel):
    """``GET /api/v1/metrics``: the Prometheus counters of ``/metrics``, summed up."""

    performance_metrics: PerformancePublic
    system_resources: SystemResourcesPublic
    models: ModelUsagePublic
    uptime_seconds: float
    timestamp: str


class StatusPublic(BaseModel):
    """``GET /api/v1/status``: overall status, services and task queues."""

    status: Status
    version: str
    environment: str
    uptime_seconds: float
    timestamp: str
    services: ServicesPublic
    components: ComponentsPublic
    temporal_ui_url: str | None


class TemporalInfoPublic(BaseModel):
    address: str
    namespace: str
    ui_url: str | None
    task_queues: list[str]


class SystemInfoPublic(BaseModel):
    """``GET /api/v1/system/info``: what this deployment runs."""

    name: str
    version: str
    environment: str
    python: str
    platform: str
    pid: int
    cpu_count: int
    database: str
    redis: bool
    vector_index: str
    blob_store: str
    temporal: TemporalInfoPublic
    uptime_seconds: float


class SystemConfigPublic(BaseModel):
    """``GET /api/v1/system/config``: every setting, secrets shown as ``***``."""

    settings: dict[str, Any]


class ReloadPublic(BaseModel):
    """``POST /api/v1/system/reload``: what was re-read without a restart."""

    reloaded: list[str]
    note: str
