"""Health of the engine's dependencies, measured, never assumed.

The database and Temporal are required; Redis is optional (its absence makes
the engine ``degraded``, not ``unhealthy``), and so is a task queue without
live pollers: the API still answers, but work on that queue would wait.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue as TaskQueueRef
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest, GetSystemInfoRequest
from temporalio.client import Client

from engine.platform.queues import ALL_QUEUES, TaskQueue, queue_name

CHECK_TIMEOUT_SECONDS = 2.0
# A worker long-polls for up to a minute, so a poller seen within this window is live.
POLLER_FRESH_SECONDS = 90.0


class Status(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"
    NOT_CONFIGURED = "not_configured"


@dataclass
class CheckResult:
    status: Status
    latency_ms: float | None = None
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(data.pop("details"))
        return {key: value for key, value in data.items() if value is not None}


@dataclass
class HealthReport:
    status: Status
    checks: dict[str, CheckResult]
    queues: dict[str, CheckResult]
    checked_at: datetime


async def _timed(probe: Callable[[], Awaitable[dict[str, Any] | None]]) -> CheckResult:
    started = time.perf_counter()
    try:
        details = await asyncio.wait_for(probe(), CHECK_TIMEOUT_SECONDS)
    except Exception as exc:  # any failure of a probe is the answer, not a crash
        return CheckResult(
            Status.UNHEALTHY,
            latency_ms=round((time.perf_counter() - started) * 1000, 2),
            error=_describe(exc),
        )
    return CheckResult(
        Status.HEALTHY,
        latency_ms=round((time.perf_counter() - started) * 1000, 2),
        details=details or {},
    )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {CHECK_TIMEOUT_SECONDS:g}s"
    # First line only, and no connection strings: health output is public.
    message = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {message}"[:200]


async def check_database(engine: AsyncEngine) -> CheckResult:
    async def probe() -> dict[str, Any]:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        return {"backend": engine.dialect.name}

    return await _timed(probe)


async def check_redis(redis: Redis | None) -> CheckResult:
    if redis is None:
        return CheckResult(Status.NOT_CONFIGURED)

    async def probe() -> None:
        await redis.ping()

    return await _timed(probe)


async def check_temporal(client: Client) -> CheckResult:
    async def probe() -> dict[str, Any]:
        info = await client.workflow_service.get_system_info(
            GetSystemInfoRequest(), timeout=timedelta(seconds=CHECK_TIMEOUT_SECONDS)
        )
        return {"server_version": info.server_version or None, "namespace": client.namespace}

    return await _timed(probe)


async def check_queue(client: Client, queue: TaskQueue, prefix: str = "") -> CheckResult:
    """Live pollers on a queue, as Temporal itself reports them."""
    kind = (
        TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
        if queue is TaskQueue.WORKFLOWS
        else TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY
    )

    async def probe() -> dict[str, Any]:
        answer = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueueRef(name=queue_name(queue, prefix)),
                task_queue_type=kind,
            ),
            timeout=timedelta(seconds=CHECK_TIMEOUT_SECONDS),
        )
        now = datetime.now(UTC)
        live = [
            poller
            for poller in answer.pollers
            if (now - poller.last_access_time.ToDatetime(UTC)).total_seconds()
            < POLLER_FRESH_SECONDS
        ]
        return {"pollers": len(live), "identities": sorted({p.identity for p in live})}

    result = await _timed(probe)
    if result.status is Status.HEALTHY and not result.details["pollers"]:
        result.status = Status.DEGRADED
        result.error = "no live worker polls this queue"
    return result


def overall(checks: dict[str, CheckResult], queues: dict[str, CheckResult]) -> Status:
    """Unhealthy when a required part is down; degraded when an optional one is."""
    required = (checks["database"], checks["temporal"])
    if any(check.status is not Status.HEALTHY for check in required):
        return Status.UNHEALTHY
    optional = [checks["redis"], *queues.values()]
    if any(check.status in (Status.UNHEALTHY, Status.DEGRADED) for check in optional):
        return Status.DEGRADED
    return Status.HEALTHY


async def health_report(
    engine: AsyncEngine, client: Client, redis: Redis | None, *, queue_prefix: str = ""
) -> HealthReport:
    """Probe every dependency concurrently, each bounded by a short timeout."""
    database, redis_check, temporal, *queue_checks = await asyncio.gather(
        check_database(engine),
        check_redis(redis),
        check_temporal(client),
        *(check_queue(client, queue, queue_prefix) for queue in ALL_QUEUES),
    )
    checks = {"database": database, "redis": redis_check, "temporal": temporal}
    queues = {queue.value: result for queue, result in zip(ALL_QUEUES, queue_checks, strict=True)}
    if temporal.status is not Status.HEALTHY:
        # Without Temporal, queue answers only repeat its error.
        for result in queues.values():
            result.status, result.error = Status.UNHEALTHY, "temporal unreachable"
    return HealthReport(overall(checks, queues), checks, queues, datetime.now(UTC))
