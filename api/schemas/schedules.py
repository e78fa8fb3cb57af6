"""Pipeline schedules on ``/api/v1/schedules`` (from ``ScheduleView`` in engine.pipelines)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, StrictBool, StrictInt

from engine.pipelines.schedules import MAX_INTERVAL_SECONDS, MAX_NOTE, ScheduleView


class ScheduleCreate(BaseModel):
    """Run ``workflow_id`` on a cron string or every ``interval_seconds`` (one of them)."""

    workflow_id: str = Field(min_length=1, max_length=40)
    cron: str | None = Field(default=None, min_length=1, max_length=200)
    interval_seconds: StrictInt | None = Field(default=None, ge=1, le=MAX_INTERVAL_SECONDS)
    timezone: str | None = Field(default=None, min_length=1, max_length=100)
    input_data: dict[str, Any] = Field(default_factory=dict)
    priority: str = "normal"
    paused: StrictBool = False
    note: str | None = Field(default=None, max_length=MAX_NOTE)


class ScheduleNote(BaseModel):
    note: str | None = Field(default=None, max_length=MAX_NOTE)


class SchedulePublic(ScheduleView):
    """A schedule: when it runs next, its recent runs with the executions they
    started, and whether it is paused."""

    @classmethod
    def of(cls, view: ScheduleView) -> SchedulePublic:
        return cls.model_validate(view.model_dump())


class SchedulesPublic(BaseModel):
    schedules: list[SchedulePublic]
    total: int
    page: int
    limit: int
    has_next: bool
