"""sutazai's tasks: submit, status, result (from ``TaskView`` in engine.pipelines)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, StrictInt

from api.envelope import Envelope
from engine.pipelines.tasks import DEFAULT_PRIORITY, PRIORITY_NAMES, TaskView


class TaskCreate(BaseModel):
    """``task_type``: a kind (``automation``, ``ai_prompt``, ``api_call``, …) or the id
    of a stored workflow; ``priority``: 0 low, 1 normal (sutazai's example), 2 high,
    3 urgent."""

    task_type: str = Field(min_length=1, max_length=100)
    payload: dict[str, Any] = Field(default_factory=dict)
    priority: StrictInt = Field(default=DEFAULT_PRIORITY, ge=0, le=len(PRIORITY_NAMES) - 1)


class TaskCreatedPublic(BaseModel):
    task_id: str
    status: str  # "queued"
    estimated_completion: datetime | None
    task_type: str
    priority: int
    created_at: datetime
    execution_id: str

    @classmethod
    def of(cls, task: TaskView) -> TaskCreatedPublic:
        return cls.model_validate(task.model_dump(include=set(cls.model_fields)))


class TaskCreatedEnvelope(Envelope[TaskCreatedPublic]):
    """The envelope, with ``task_id`` also at the top level: sutazai's own test
    script reads ``.task_id`` from the answer."""

    task_id: str


class TaskPublic(BaseModel):
    task_id: str
    status: str  # queued, running, completed, failed, cancelled, timed_out
    task_type: str
    workflow_id: str | None
    priority: int
    execution_priority: str
    progress: float  # 0–1
    completed_steps: int
    total_steps: int
    current_step: str | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    estimated_completion: datetime | None
    tokens_used: int
    cost_usd: float
    error_code: str | None
    error: str | None
    execution_id: str

    @classmethod
    def of(cls, task: TaskView) -> TaskPublic:
        return cls.model_validate(task.model_dump(include=set(cls.model_fields)))


class TaskResultPublic(BaseModel):
    """A finished task: ``result`` is a one-step task's output, else ``outputs``."""

    task_id: str
    status: str
    result: Any
    outputs: dict[str, Any]  # per step id
    completed_at: datetime | None
    tokens_used: int
    cost_usd: float
    error_code: str | None
    error: str | None

    @classmethod
    def of(cls, task: TaskView) -> TaskResultPublic:
        return cls.model_validate(task.model_dump(include=set(cls.model_fields)))
