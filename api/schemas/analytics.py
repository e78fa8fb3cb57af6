"""Analytics as auterity shows them: the dashboard and one workflow's metrics."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class OverviewPublic(BaseModel):
    total_workflows: int
    active_executions: int
    total_executions_today: int
    success_rate: float  # percent, executions of the last 30 days
    avg_execution_time: float  # seconds


class UsageStatsPublic(BaseModel):
    ai_requests_today: int
    total_cost_today: float
    tokens_consumed: int  # today
    most_used_model: str | None


class PerformancePublic(BaseModel):
    avg_response_time: float  # ms, model calls today
    error_rate: float  # fraction of today's model calls that failed
    uptime: float  # percent of today's API requests answered without a server error


class PeriodPublic(BaseModel):
    today_since: datetime
    rates_since: datetime


class DashboardPublic(BaseModel):
    overview: OverviewPublic
    usage_stats: UsageStatsPublic
    performance_metrics: PerformancePublic
    period: PeriodPublic


class StepMetricsPublic(BaseModel):
    step_id: str
    name: str
    type: str
    completed: int
    failed: int
    skipped: int
    cancelled: int
    success_rate: float  # percent
    avg_duration_ms: float


class WorkflowMetricsPublic(BaseModel):
    workflow_id: str
    name: str
    total_executions: int
    completed_executions: int
    failed_executions: int
    cancelled_executions: int
    active_executions: int
    success_rate: float  # percent, as on the dashboard
    avg_execution_time: float  # seconds
    avg_duration_ms: int
    total_tokens: int
    total_cost_usd: float
    avg_cost_usd: float
    ai_requests: int
    ai_errors: int
    avg_response_time: float  # ms
    models: dict[str, int]  # model calls per model
    most_used_model: str | None
    last_executed_at: datetime | None
    steps: list[StepMetricsPublic]
