"""Health, readiness and the system check."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel
from pydantic.json_schema import SkipJsonSchema

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


class ComponentsPublic(ServicesPublic):
    task_queues: dict[str, QueueSummaryPublic]


class HealthPublic(BaseModel):
    """``GET /health``: the union of the zentoria, z2 and sutazai shapes."""

    status: Status
    version: str
    uptime: int
    uptime_seconds: float
    timestamp: str
    services: ServicesPublic
    components: ComponentsPublic


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
