"""auterity's workflow analytics: ``/api/analytics/dashboard`` and
``/api/analytics/workflows/{workflow_id}/metrics``, bare bodies, the caller's
tenant only. (``/api/analytics/costs`` lives with the model routes.)"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from api.deps import Caller, requires
from api.schemas.analytics import DashboardPublic, WorkflowMetricsPublic
from engine.pipelines import analytics, store
from engine.platform.errors import NotFound

router = APIRouter(prefix="/api/analytics", tags=["analytics (auterity)"])

Reader = Annotated[Caller, requires("workflows:read")]


@router.get(
    "/dashboard",
    response_model=DashboardPublic,
    summary="Workflows, executions, model usage and performance at a glance",
)
async def read_dashboard(caller: Reader) -> DashboardPublic:
    return DashboardPublic.model_validate(await analytics.dashboard(caller.db))


@router.get(
    "/workflows/{workflow_id}/metrics",
    response_model=WorkflowMetricsPublic,
    summary="One workflow's executions, cost, model calls and per-step outcomes",
)
async def read_workflow_metrics(workflow_id: str, caller: Reader) -> WorkflowMetricsPublic:
    try:
        metrics = await analytics.workflow_metrics(caller.db, workflow_id)
    except store.WorkflowNotFound as exc:
        raise NotFound(exc.message) from None  # auterity's one code for anything missing
    return WorkflowMetricsPublic.model_validate(metrics)
