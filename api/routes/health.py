"""Health, readiness and detailed dependency status (no authentication), and
sutazai's ``/api/v1/status`` (the same report, for any authenticated caller).

``/health`` answers the union of the zentoria, z2 and sutazai shapes; the
partio paths answer partio's PascalCase object. Model providers' states come
from the registry's cached listings (a remote provider is asked at most once a
minute, failures included) and the circuit breakers; no URL or key is shown.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response, Security
from fastapi.responses import JSONResponse

from api.deps import ResourcesDep, get_principal
from api.envelope import Envelope, ok, timestamp
from api.partio import PartioHealthPublic
from api.schemas.health import (
    CheckPublic,
    ChecksPublic,
    ComponentsPublic,
    HealthDetailedPublic,
    HealthPublic,
    PerformancePublic,
    ProviderHealthPublic,
    QueueSummaryPublic,
    ReadyChecksPublic,
    ReadyPublic,
    ServicesPublic,
)
from api.schemas.system import StatusPublic
from engine import __version__
from engine.ai import listings
from engine.identity.principals import Principal
from engine.platform.health import (
    HealthReport,
    Status,
    check_database,
    check_temporal,
    health_report,
)

router = APIRouter(tags=["health"])


async def _report(resources: ResourcesDep) -> HealthReport:
    return await health_report(
        resources.engine,
        resources.temporal,
        resources.redis,
        queue_prefix=resources.settings.task_queue_prefix,
    )


def _ollama_state(providers: list[dict[str, Any]]) -> Status:
    """sutazai's ``services.ollama``: the provider named ``ollama``, else the first
    Ollama provider by priority; ``not_configured`` without one."""
    ollamas = [p for p in providers if p["kind"] == "ollama"]
    chosen = next((p for p in ollamas if p["name"] == "ollama"), ollamas[0] if ollamas else None)
    if chosen is None:
        return Status.NOT_CONFIGURED
    return Status.HEALTHY if chosen["status"] == "healthy" else Status.UNHEALTHY


async def _summary(resources: ResourcesDep) -> HealthPublic:
    started = time.perf_counter()
    report, providers = await asyncio.gather(
        _report(resources), listings.provider_health(resources.models)
    )
    uptime = resources.uptime_seconds
    queue_states = {check.status for check in report.queues.values()}
    services = ServicesPublic(
        database=report.checks["database"].status,
        redis=report.checks["redis"].status,
        temporal=report.checks["temporal"].status,
        workers=Status.HEALTHY if queue_states == {Status.HEALTHY} else Status.DEGRADED,
        ollama=_ollama_state(providers),
    )
    task_queues = {
        name: QueueSummaryPublic(status=check.status, pollers=check.details.get("pollers", 0))
        for name, check in report.queues.items()
    }
    return HealthPublic(
        status=report.status,
        version=__version__,
        uptime=int(uptime),
        uptime_seconds=round(uptime, 3),
        timestamp=timestamp(),
        services=services,
        components=ComponentsPublic(
            **services.model_dump(),
            task_queues=task_queues,
            llm_providers={p["name"]: p["status"] for p in providers},
        ),
        providers=[ProviderHealthPublic.model_validate(p) for p in providers],
        performance=PerformancePublic(
            response_time_ms=round((time.perf_counter() - started) * 1000, 3),
            cache_hit_rate=resources.models.cache.process_hit_rate(),
        ),
    )


# Decorators register bottom-up: GET /health goes first so a wrong method's
# 405 names GET in its Allow header.
@router.head("/health", include_in_schema=False, response_model=HealthPublic)
@router.get("/api/health", include_in_schema=False, response_model=HealthPublic)
@router.get("/api/v1/health", include_in_schema=False, response_model=HealthPublic)
@router.get("/health", summary="Liveness and summary health", response_model=HealthPublic)
async def read_health(resources: ResourcesDep) -> HealthPublic:
    return await _summary(resources)


# A probe's keys that do not apply (latency, error, details) are left out, not null.
@router.get(
    "/api/v1/health/detailed",
    summary="Per-dependency status and latency",
    response_model=HealthDetailedPublic,
    response_model_exclude_none=True,
)
@router.get(
    "/api/health/detailed",
    include_in_schema=False,
    response_model=HealthDetailedPublic,
    response_model_exclude_none=True,
)
async def read_health_detailed(request: Request, resources: ResourcesDep) -> HealthDetailedPublic:
    """Open to probes; who runs what (worker identities, server versions,
    namespaces, error texts) only for an authenticated caller."""
    report = await _report(resources)
    detailed = HealthDetailedPublic(
        overall_status=report.status,
        status=report.status,
        version=__version__,
        uptime_seconds=round(resources.uptime_seconds, 3),
        timestamp=timestamp(),
        services=ChecksPublic(
            database=CheckPublic.of(report.checks["database"]),
            redis=CheckPublic.of(report.checks["redis"]),
            temporal=CheckPublic.of(report.checks["temporal"]),
        ),
        task_queues={name: CheckPublic.of(check) for name, check in report.queues.items()},
    )
    if await resources.is_someone(
        request.headers.get("x-api-key"), request.headers.get("authorization")
    ):
        return detailed
    services = detailed.services
    for check in (
        services.database,
        services.redis,
        services.temporal,
        *detailed.task_queues.values(),
    ):
        for name in ANONYMOUS_HIDDEN:
            setattr(check, name, None)
    return detailed


# What an anonymous caller of /health/detailed is not told.
ANONYMOUS_HIDDEN = ("error", "backend", "server_version", "namespace", "identities")


@router.get(
    "/api/ready",
    summary="Readiness: 503 until the database and Temporal answer",
    response_model=ReadyPublic,
    responses={503: {"model": ReadyPublic, "description": "Not ready"}},
)
@router.get("/api/v1/ready", include_in_schema=False)
@router.get("/ready", include_in_schema=False)
async def read_ready(resources: ResourcesDep) -> JSONResponse:
    database, temporal = await asyncio.gather(
        check_database(resources.engine), check_temporal(resources.temporal)
    )
    ready = database.status is Status.HEALTHY and temporal.status is Status.HEALTHY
    body = ReadyPublic(
        ready=ready,
        status="ready" if ready else "not_ready",
        timestamp=timestamp(),
        checks=ReadyChecksPublic(
            database=CheckPublic.of(database), temporal=CheckPublic.of(temporal)
        ),
    )
    return JSONResponse(
        body.model_dump(mode="json", exclude_none=True), status_code=200 if ready else 503
    )


def _partio_status(report: HealthReport) -> PartioHealthPublic:
    return PartioHealthPublic(status=report.status.value.capitalize(), version=__version__)


@router.head("/", include_in_schema=False)
async def head_root() -> Response:
    return Response(status_code=200)


@router.get("/", summary="Partio health status", response_model=PartioHealthPublic)
@router.get("/v1.0/health", summary="Partio health status", response_model=PartioHealthPublic)
async def read_partio_health(resources: ResourcesDep) -> PartioHealthPublic:
    return _partio_status(await _report(resources))


@router.get(
    "/api/v1/status",
    response_model=Envelope[StatusPublic],
    summary="Overall status, services and task queues (sutazai)",
)
async def read_status(
    request: Request,
    resources: ResourcesDep,
    principal: Annotated[Principal, Security(get_principal, scopes=["profile"])],
) -> JSONResponse:
    summary = await _summary(resources)
    data = StatusPublic(
        status=summary.status,
        version=summary.version,
        environment=resources.settings.env.value,
        uptime_seconds=summary.uptime_seconds,
        timestamp=summary.timestamp,
        services=summary.services,
        components=summary.components,
        temporal_ui_url=resources.settings.resolved_temporal_ui_url,
    )
    return ok(data, request_id=request.state.request_id)
