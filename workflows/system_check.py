"""SystemCheckWorkflow: proves that every task queue has a live worker.

It runs one tiny activity on each activity queue, so a finished run means the
workflow queue and all activity queues are served end to end.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from engine.platform.queues import ACTIVITY_QUEUES
    from workflows.activities import PING_QUEUE, PingInput, PingResult


class SystemCheckInput(BaseModel):
    queues: list[str] = [queue.value for queue in ACTIVITY_QUEUES]


class SystemCheckResult(BaseModel):
    workflow_queue: str
    answers: list[PingResult]


@workflow.defn
class SystemCheckWorkflow:
    @workflow.run
    async def run(self, params: SystemCheckInput) -> SystemCheckResult:
        answers = []
        for queue in params.queues:
            # A short schedule-to-start bound: a queue nobody serves fails the
            # check instead of waiting forever.
            answer = await PING_QUEUE.execute(
                PingInput(queue=queue),
                task_queue=queue,
                schedule_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_attempts=3),
            )
            answers.append(answer)
        return SystemCheckResult(workflow_queue=workflow.info().task_queue, answers=answers)
