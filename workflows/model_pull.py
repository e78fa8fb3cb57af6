"""ModelPullWorkflow (``pull-{provider}-{model}``): a model download that takes minutes.

One activity on ``weft-io`` streams Ollama's pull progress; it heartbeats every
line (so a dead worker is noticed and the pull resumes elsewhere — Ollama keeps
the layers it already has) and signals the workflow when the progress moves
enough to matter, so the ``progress`` query answers without touching Ollama.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from engine.platform.queues import TaskQueue
    from workflows.activities import PULL_MODEL, PullModelInput

# Failures that another attempt cannot fix.
PERMANENT = ["MODEL_NOT_AVAILABLE", "EGRESS_DENIED", "NOT_FOUND", "VALIDATION_ERROR"]


class ModelPullInput(BaseModel):
    provider: str
    model: str


class ModelPullProgress(BaseModel):
    provider: str = ""
    model: str = ""
    phase: Literal["pulling", "succeeded", "failed"] = "pulling"
    status: str = "queued"
    completed: int | None = None
    total: int | None = None
    error: str | None = None

    @property
    def percent(self) -> float | None:
        if not self.total:
            return None
        return round(100 * (self.completed or 0) / self.total, 1)


def workflow_id_for(provider: str, model: str) -> str:
    """One pull per provider and model at a time: a repeated start finds the running one."""
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in model)
    return f"pull-{provider}-{safe}"


@workflow.defn
class ModelPullWorkflow:
    def __init__(self) -> None:
        self._progress = ModelPullProgress()

    @workflow.run
    async def run(self, params: ModelPullInput) -> ModelPullProgress:
        self._progress = ModelPullProgress(provider=params.provider, model=params.model)
        own = workflow.info().task_queue  # activity queue with this run's prefix
        queue = own[: len(own) - len(TaskQueue.WORKFLOWS.value)] + TaskQueue.IO.value
        try:
            result = await PULL_MODEL.execute(
                PullModelInput(provider=params.provider, model=params.model),
                task_queue=queue,
                start_to_close_timeout=timedelta(hours=6),
                heartbeat_timeout=timedelta(minutes=2),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=2),
                    maximum_interval=timedelta(minutes=1),
                    maximum_attempts=5,
                    non_retryable_error_types=PERMANENT,
                ),
            )
        except ActivityError as exc:
            cause = exc.cause
            message = cause.message if isinstance(cause, ApplicationError) else str(exc)
            self._progress = self._progress.model_copy(
                update={"phase": "failed", "status": "failed", "error": message}
            )
            raise ApplicationError(
                f"pulling {params.model} failed: {message}", non_retryable=True
            ) from exc
        self._progress = self._progress.model_copy(
            update={
                "phase": "succeeded",
                "status": result.status,
                "total": result.total,
                "completed": result.total if result.total else result.completed,
            }
        )
        return self._progress

    @workflow.signal
    def report_progress(self, progress: ModelPullProgress) -> None:
        if self._progress.phase == "pulling":
            self._progress = progress.model_copy(
                update={"provider": self._progress.provider, "model": self._progress.model}
            )

    @workflow.query
    def progress(self) -> ModelPullProgress:
        return self._progress
