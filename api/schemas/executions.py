"""Executions as z2 and auterity show them (from ``ExecutionView`` in engine.pipelines)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, StrictBool, StrictFloat

from engine.pipelines.executions import ExecutionView, StepResult


class ExecuteOptions(BaseModel):
    """z2's execution options."""

    timeout_seconds: StrictFloat | None = Field(default=None, gt=0, le=7 * 86_400)
    parallel_execution: StrictBool = True  # independent branches always run in parallel
    save_intermediate_results: StrictBool = True  # every step's result is kept


class Z2ExecuteRequest(BaseModel):
    input_data: dict[str, Any] = Field(default_factory=dict)
    options: ExecuteOptions = Field(default_factory=ExecuteOptions)


class AuterityExecuteRequest(BaseModel):
    input_data: dict[str, Any] = Field(default_factory=dict)
    priority: str = "normal"
    scheduled_at: datetime | None = None


class ApprovalRequest(BaseModel):
    approved: StrictBool
    comment: str | None = Field(default=None, max_length=2000)


class ProgressPublic(BaseModel):
    completed_steps: int
    total_steps: int
    current_step: str | None


class StepResultPublic(StepResult):
    """A step's result; ``cost`` is auterity's name for ``cost_usd``."""

    cost: float = 0.0


class LogPublic(BaseModel):
    timestamp: datetime
    level: str
    message: str
    step_id: str | None = None


class TracePublic(BaseModel):
    timestamp: datetime | None
    step_id: str
    agent_id: str | None
    action: str
    status: str
    result: Any = None
    tokens_used: int = 0
    cost_usd: float = 0.0


class ExecutionStartedPublic(BaseModel):
    """The answer to an execute call (z2 and auterity fields together)."""

    execution_id: str
    id: str  # the SDKs read ``execution.id``
    workflow_id: str | None
    status: str
    started_at: datetime | None
    scheduled_at: datetime | None = None
    priority: str
    input_data: dict[str, Any]
    progress: ProgressPublic
    estimated_duration_ms: int | None = None
    temporal_workflow_id: str
    temporal_ui_url: str | None = None  # the run in the Temporal Web UI


class ExecutionPublic(BaseModel):
    """An execution: auterity's ``GET /api/executions/{id}`` and z2's
    ``GET /workflows/{id}/executions/{execution_id}`` in one body."""

    id: str
    execution_id: str
    workflow_id: str | None
    status: str
    priority: str
    started_at: datetime | None
    completed_at: datetime | None
    duration: float | None  # seconds (auterity)
    duration_ms: int | None  # z2
    progress: ProgressPublic
    input_data: dict[str, Any]
    output_data: dict[str, Any]
    results: dict[str, StepResultPublic]
    logs: list[LogPublic]
    execution_trace: list[TracePublic]
    tokens_used: int
    total_cost_usd: float
    error_code: str | None
    error: str | None
    temporal_workflow_id: str
    temporal_ui_url: str | None = None  # the run in the Temporal Web UI


class Z2ExecutionPublic(BaseModel):
    """z2's ``GET /workflows/{id}/executions/{execution_id}``: progress is a fraction."""

    id: str
    execution_id: str
    workflow_id: str | None
    status: str
    progress: float
    input_data: dict[str, Any]
    output_data: dict[str, Any]
    execution_trace: list[TracePublic]
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: int | None
    total_cost_usd: float
    tokens_used: int
    results: dict[str, StepResultPublic]
    logs: list[LogPublic]
    error_code: str | None
    error: str | None
    temporal_workflow_id: str
    temporal_ui_url: str | None = None  # the run in the Temporal Web UI


class ExecutionListPublic(BaseModel):
    executions: list[ExecutionPublic]
    total: int
    page: int
    limit: int
    has_next: bool


class CancelPublic(BaseModel):
    id: str
    execution_id: str
    status: str


class ApprovalPublic(BaseModel):
    execution_id: str
    step_id: str
    approved: bool
    decided_by: str
    decided_at: datetime
    comment: str | None = None


def started_public(
    view: ExecutionView, *, scheduled_at: datetime | None, ui_url: str | None = None
) -> ExecutionStartedPublic:
    return ExecutionStartedPublic(
        execution_id=view.id,
        id=view.id,
        workflow_id=view.workflow_id,
        status=view.status,
        started_at=view.started_at,
        scheduled_at=scheduled_at,
        priority=view.priority,
        input_data=view.input_data,
        progress=ProgressPublic.model_validate(view.progress.model_dump()),
        temporal_workflow_id=view.temporal_workflow_id,
        temporal_ui_url=ui_url,
    )


def _results(view: ExecutionView) -> dict[str, StepResultPublic]:
    return {
        sid: StepResultPublic(**r.model_dump(), cost=r.cost_usd) for sid, r in view.results.items()
    }


def _trace(view: ExecutionView) -> list[TracePublic]:
    return [
        TracePublic(
            timestamp=r.completed_at or r.started_at,
            step_id=sid,
            agent_id=r.agent_id,
            action=r.type or "step",
            status=r.status,
            result=r.output,
            tokens_used=r.tokens_used,
            cost_usd=r.cost_usd,
        )
        for sid, r in view.results.items()
        if r.status != "pending"
    ]


def _outputs(view: ExecutionView) -> dict[str, Any]:
    return {sid: r.output for sid, r in view.results.items() if r.status == "completed"}


def _logs(view: ExecutionView) -> list[LogPublic]:
    return [LogPublic.model_validate(log.model_dump()) for log in view.logs]


def execution_public(view: ExecutionView, ui_url: str | None = None) -> ExecutionPublic:
    return ExecutionPublic(
        id=view.id,
        execution_id=view.id,
        workflow_id=view.workflow_id,
        status=view.status,
        priority=view.priority,
        started_at=view.started_at,
        completed_at=view.completed_at,
        duration=round(view.duration_ms / 1000, 3) if view.duration_ms is not None else None,
        duration_ms=view.duration_ms,
        progress=ProgressPublic.model_validate(view.progress.model_dump()),
        input_data=view.input_data,
        output_data=_outputs(view),
        results=_results(view),
        logs=_logs(view),
        execution_trace=_trace(view),
        tokens_used=view.tokens_used,
        total_cost_usd=view.cost_usd,
        error_code=view.error_code,
        error=view.error,
        temporal_workflow_id=view.temporal_workflow_id,
        temporal_ui_url=ui_url,
    )


def z2_execution_public(view: ExecutionView, ui_url: str | None = None) -> Z2ExecutionPublic:
    total = view.progress.total_steps
    return Z2ExecutionPublic(
        id=view.id,
        execution_id=view.id,
        workflow_id=view.workflow_id,
        status=view.status,
        progress=round(view.progress.completed_steps / total, 4) if total else 0.0,
        input_data=view.input_data,
        output_data=_outputs(view),
        execution_trace=_trace(view),
        started_at=view.started_at,
        completed_at=view.completed_at,
        duration_ms=view.duration_ms,
        total_cost_usd=view.cost_usd,
        tokens_used=view.tokens_used,
        results=_results(view),
        logs=_logs(view),
        error_code=view.error_code,
        error=view.error,
        temporal_workflow_id=view.temporal_workflow_id,
        temporal_ui_url=ui_url,
    )
