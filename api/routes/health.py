"""Health, readiness and detailed dependency status (no authentication).

``/health`` answers the union of the zentoria, z2 and sutazai shapes; the
partio paths answer partio's PascalCase object.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from api.deps import ResourcesDep
from api.envelope import timestamp
from engine import __version__
from engine.health import (
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


def _summary(report: HealthReport, uptime: float) -> dict[str, Any]:
    services: dict[str, Any] = {name: check.status.value for name, check in report.checks.items()}
    queue_states = {check.status for check in report.queues.values()}
    services["workers"] = (
        Status.HEALTHY.value if queue_states == {Status.HEALTHY} else Status.DEGRADED.value
    )
    return {
        "status": report.status.value,
        "version": __version__,
        "uptime": int(uptime),
        "uptime_seconds": round(uptime, 3),
        "timestamp": timestamp(),
        "services": services,
        "components": {
            **services,
            "task_queues": {
                name: {"status": check.status.value, "pollers": check.details.get("pollers", 0)}
                for name, check in report.queues.items()
            },
        },
    }


# Decorators register bottom-up: GET /health goes first so a wrong method's
# 405 names GET in its Allow header.
@router.head("/health", include_in_schema=False)
@router.get("/api/health", include_in_schema=False)
@router.get("/api/v1/health", include_in_schema=False)
@router.get("/health", summary="Liveness and summary health")
async def read_health(resources: ResourcesDep) -> dict[str, Any]:
    return _summary(await _report(resources), resources.uptime_seconds)


@router.get("/api/v1/health/detailed", summary="Per-dependency status and latency")
@router.get("/api/health/detailed", include_in_schema=False)
async def read_health_detailed(resources: ResourcesDep) -> dict[str, Any]:
    report = await _report(resources)
    return {
        "overall_status": report.status.value,
        "status": report.status.value,
        "version": __version__,
        "uptime_seconds": round(resources.uptime_seconds, 3),
        "timestamp": timestamp(),
        "services": {name: check.as_dict() for name, check in report.checks.items()},
        "task_queues": {name: check.as_dict() for name, check in report.queues.items()},
    }


@router.get("/api/ready", summary="Readiness: 503 until the database and Temporal answer")
@router.get("/api/v1/ready", include_in_schema=False)
@router.get("/ready", include_in_schema=False)
async def read_ready(resources: ResourcesDep) -> JSONResponse:
    database, temporal = await asyncio.gather(
        check_database(resources.engine), check_temporal(resources.temporal)
    )
    ready = database.status is Status.HEALTHY and temporal.status is Status.HEALTHY
    body = {
        "ready": ready,
        "status": "ready" if ready else "not_ready",
        "timestamp": timestamp(),
        "checks": {"database": database.as_dict(), "temporal": temporal.as_dict()},
    }
    return JSONResponse(body, status_code=200 if ready else 503)


def _partio_status(report: HealthReport) -> dict[str, str]:
    return {"Status": report.status.value.capitalize(), "Version": __version__}


@router.head("/", include_in_schema=False)
async def head_root() -> Response:
    return Response(status_code=200)


@router.get("/", summary="Partio health status")
@router.get("/v1.0/health", summary="Partio health status")
async def read_partio_health(resources: ResourcesDep) -> dict[str, str]:
    return _partio_status(await _report(resources))
