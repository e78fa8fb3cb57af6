"""ScheduledRunWorkflow: what a pipeline schedule's Temporal Schedule starts on each tick.

A Temporal Schedule can only start a workflow with a fixed input, but every
execution needs its own row in the execution index (``run-{execution_id}``),
tenant-scoped like an execution started through the API. So the schedule
starts this small workflow, whose one activity starts the execution exactly as
``POST /workflows/{id}/execute`` does. The activity's idempotency key is this
run's workflow id (Temporal appends the tick's time to it), so a retried
activity finds the execution its first attempt started instead of starting a
second one.

The run ends as soon as the execution has started: the pipeline runs on its
own and its outcome never fails the schedule. A permanent failure (the
definition was deleted, the input no longer fits it) fails this run, and the
schedule's ``pause_on_failure`` policy then pauses the schedule.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from engine.platform.queues import TaskQueue
    from workflows.activities import START_SCHEDULED_RUN, ScheduledStart

# Transient trouble (the database or Temporal briefly unreachable) is retried
# this long; the schedule skips its ticks meanwhile instead of piling them up.
START_WITHIN = timedelta(minutes=30)
# Failures another attempt cannot fix (raised by the engine as these codes).
PERMANENT = ["VALIDATION_ERROR", "WORKFLOW_NOT_FOUND", "NOT_FOUND", "FORBIDDEN"]


class ScheduledRunInput(BaseModel):
    """The fixed input a schedule starts every tick with."""

    schedule_id: str
    tenant_id: str
    definition_id: str
    started_by: str
    input_data: dict[str, Any] = Field(default_factory=dict)
    priority: str = "normal"


class ScheduledRunResult(BaseModel):
    execution_id: str
    workflow_id: str  # the execution's PipelineWorkflow run
    status: str


@workflow.defn
class ScheduledRunWorkflow:
    @workflow.run
    async def run(self, params: ScheduledRunInput) -> ScheduledRunResult:
        own = workflow.info()
        prefix = own.task_queue[: len(own.task_queue) - len(TaskQueue.WORKFLOWS.value)]
        started = await START_SCHEDULED_RUN.execute(
            ScheduledStart(
                schedule_id=params.schedule_id,
                tenant_id=params.tenant_id,
                definition_id=params.definition_id,
                started_by=params.started_by,
                input_data=params.input_data,
                priority=params.priority,
                idempotency_key=own.workflow_id,
            ),
            task_queue=prefix + TaskQueue.IO.value,
            start_to_close_timeout=timedelta(seconds=60),
            schedule_to_close_timeout=START_WITHIN,
            retry_policy=RetryPolicy(
                maximum_interval=timedelta(seconds=60), non_retryable_error_types=PERMANENT
            ),
            summary="Start the execution",
        )
        return ScheduledRunResult(
            execution_id=started.execution_id,
            workflow_id=started.workflow_id,
            status=started.status,
        )
