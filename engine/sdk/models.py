"""What the API answers, as the SDK returns it (unknown keys are ignored, so a newer
server does not break an older client)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

FINISHED = frozenset({"completed", "failed", "cancelled", "timed_out"})


class Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class WorkflowStep(Model):
    id: str
    type: str
    name: str = ""
    config: dict[str, Any] = Field(default_factory=dict)
    dependencies: list[str] = Field(default_factory=list)
    agent_id: str | None = None


class Workflow(Model):
    """A stored workflow definition (auterity's shape)."""

    id: str
    name: str
    description: str = ""
    status: str = "active"
    category: str | None = None
    steps: list[WorkflowStep] = Field(default_factory=list)
    created_at: datetime | None = None
    updated_at: datetime | None = None


class WorkflowPage(Model):
    workflows: list[Workflow]
    total: int
    page: int
    limit: int
    has_next: bool


class Progress(Model):
    completed_steps: int = 0
    total_steps: int = 0
    current_step: str | None = None


class ExecutionStarted(Model):
    """The answer to an execute call (``id`` and ``execution_id`` are the same)."""

    id: str
    execution_id: str
    workflow_id: str | None = None
    status: str
    priority: str = "normal"
    started_at: datetime | None = None
    scheduled_at: datetime | None = None
    input_data: dict[str, Any] = Field(default_factory=dict)
    progress: Progress = Field(default_factory=Progress)


class StepResult(Model):
    name: str = ""
    type: str = ""
    status: str
    output: Any = None
    error: str | None = None
    error_code: str | None = None
    tokens_used: int = 0
    cost_usd: float = 0.0
    model: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None


class LogEntry(Model):
    timestamp: datetime
    level: str
    message: str
    step_id: str | None = None


class Execution(Model):
    """An execution's status, progress, per-step results and log."""

    id: str
    execution_id: str
    workflow_id: str | None = None
    status: str
    priority: str = "normal"
    started_at: datetime | None = None
    completed_at: datetime | None = None
    duration: float | None = None  # seconds
    progress: Progress = Field(default_factory=Progress)
    input_data: dict[str, Any] = Field(default_factory=dict)
    output_data: dict[str, Any] = Field(default_factory=dict)
    results: dict[str, StepResult] = Field(default_factory=dict)
    logs: list[LogEntry] = Field(default_factory=list)
    tokens_used: int = 0
    total_cost_usd: float = 0.0
    error_code: str | None = None
    error: str | None = None

    @property
    def finished(self) -> bool:
        """Whether the execution has ended (completed, failed, cancelled or timed out)."""
        return self.status in FINISHED

    @property
    def succeeded(self) -> bool:
        return self.status == "completed"

    def output(self, step_id: str) -> Any:
        """One step's output (``KeyError`` for a step that has none yet)."""
        return self.results[step_id].output


class ExecutionPage(Model):
    executions: list[Execution]
    total: int
    page: int
    limit: int
    has_next: bool


class Cancelled(Model):
    id: str
    execution_id: str
    status: str


class Approval(Model):
    execution_id: str
    step_id: str
    approved: bool
    decided_by: str
    decided_at: datetime
    comment: str | None = None


class ScheduledRun(Model):
    scheduled_at: datetime
    started_at: datetime
    run_workflow_id: str
    execution_id: str | None = None


class Schedule(Model):
    id: str
    workflow_id: str
    cron: str | None = None
    interval_seconds: int | None = None
    timezone: str | None = None
    input_data: dict[str, Any] = Field(default_factory=dict)
    priority: str = "normal"
    paused: bool = False
    note: str | None = None
    next_run_at: datetime | None = None
    next_run_times: list[datetime] = Field(default_factory=list)
    recent_runs: list[ScheduledRun] = Field(default_factory=list)
    total_runs: int = 0
    created_at: datetime | None = None
    created_by: str | None = None
    temporal_schedule_id: str | None = None


class SchedulePage(Model):
    schedules: list[Schedule]
    total: int
    page: int
    limit: int
    has_next: bool
