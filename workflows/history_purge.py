"""HistoryPurgeWorkflow: the retention of partio's request history, run by a Temporal Schedule.

The schedule (``weft-history-purge``, hourly; see ``engine.audit.retention``)
starts one run at a time (overlap SKIP). A run deletes the rows older than the
worker's ``request_history_retention_days`` in batches, one activity each, until
a batch comes back short, so no single transaction holds a large table; at most
``max_batches`` per run keeps its history small, and the next tick goes on.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from engine.platform.queues import TaskQueue
    from workflows.activities import PURGE_REQUEST_HISTORY, HistoryPurgeBatch


class HistoryPurgeInput(BaseModel):
    batch_size: int = Field(default=1000, gt=0)
    max_batches: int = Field(default=100, gt=0)


class HistoryPurgeResult(BaseModel):
    deleted: int
    batches: int
    cutoff: datetime | None  # None when no batch ran


@workflow.defn
class HistoryPurgeWorkflow:
    @workflow.run
    async def run(self, params: HistoryPurgeInput) -> HistoryPurgeResult:
        own = workflow.info()
        prefix = own.task_queue[: len(own.task_queue) - len(TaskQueue.WORKFLOWS.value)]
        as_of = workflow.now()
        deleted = batches = 0
        cutoff = None
        while batches < params.max_batches:
            purged = await PURGE_REQUEST_HISTORY.execute(
                HistoryPurgeBatch(as_of=as_of, batch_size=params.batch_size),
                task_queue=prefix + TaskQueue.IO.value,
                start_to_close_timeout=timedelta(minutes=5),
                schedule_to_close_timeout=timedelta(minutes=30),
                retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=60)),
                summary="Delete expired request history",
            )
            batches += 1
            deleted += purged.deleted
            cutoff = purged.cutoff
            if purged.deleted < params.batch_size:
                break
        return HistoryPurgeResult(deleted=deleted, batches=batches, cutoff=cutoff)
