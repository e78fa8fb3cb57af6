"""Metrics: Prometheus ``/metrics`` and sutazai's ``/api/v1/metrics`` (the same
counters, summed up in sutazai's ``performance_metrics`` shape).

Both answer a global administrator, or a scraper with ``Authorization: Bearer
$WEFT_METRICS_TOKEN``. The series are this process's own.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from api.deps import MetricsReader, ResourcesDep
from api.envelope import Envelope, ok, timestamp
from api.schemas.system import (
    MetricsPublic,
    ModelUsagePublic,
    PerformancePublic,
    SystemResourcesPublic,
)
from engine.platform import metrics
from engine.platform.system_info import system_resources

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    dependencies=[MetricsReader],
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
    summary="Prometheus metrics of this API process",
)
async def read_prometheus_metrics(request: Request) -> Response:
    body, content_type = metrics.exposition(request.headers.get("accept"))
    return Response(body, media_type=content_type)


@router.get(
    "/api/v1/metrics",
    dependencies=[MetricsReader],
    response_model=Envelope[MetricsPublic],
    summary="Request rates, latencies, errors, model usage and machine load (sutazai)",
)
async def read_metrics(request: Request, resources: ResourcesDep) -> JSONResponse:
    uptime = resources.uptime_seconds
    http = metrics.http_summary()
    models = metrics.model_summary()
    data = MetricsPublic(
        performance_metrics=PerformancePublic(
            requests_per_second=round(http.total_requests / uptime, 3) if uptime else 0.0,
            avg_response_time_ms=http.avg_response_time_ms,
            p95_response_time_ms=http.p95_response_time_ms,
            error_rate=round(http.error_requests / http.total_requests, 4)
            if http.total_requests
            else 0.0,
            total_requests=http.total_requests,
            rate_limited_requests=metrics.rate_limited_total(),
        ),
        system_resources=SystemResourcesPublic.model_validate(
            system_resources(resources.settings.data_dir)
        ),
        models=ModelUsagePublic(
            calls=models.calls,
            prompt_tokens=models.prompt_tokens,
            completion_tokens=models.completion_tokens,
            cost_usd=models.cost_usd,
        ),
        uptime_seconds=round(uptime, 3),
        timestamp=timestamp(),
    )
    return ok(data, request_id=request.state.request_id)
