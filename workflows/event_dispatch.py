"""EventDispatchWorkflow (``events-dispatcher``): drains the event outbox.

One run per deployment (per task-queue prefix). Each round is one activity
that watches the outbox for a while (``engine.events.dispatch``): it gives new
rows their stream position, starts a ``WebhookDeliveryWorkflow`` per (event,
subscribed webhook) and publishes the events to live streams, then looks again
every fraction of a second. When it returns, the next round starts at once.
A process that commits an event rings the ``wake`` signal now and then
(``engine.events.doorbell``), which starts the dispatcher if it is not
running. Delivery therefore survives API and worker restarts (a killed
worker's watch is retried elsewhere after the heartbeat timeout).
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from engine.platform.queues import TaskQueue
    from workflows.activities import DISPATCH_EVENTS
    from workflows.event_payloads import DispatchBatch, DispatchInput

WORKFLOW_ID = "events-dispatcher"
ROUNDS_PER_RUN = 200  # then continue-as-new, so the history stays short


def dispatcher_id(prefix: str) -> str:
    return f"{prefix}{WORKFLOW_ID}"


@workflow.defn
class EventDispatchWorkflow:
    def __init__(self) -> None:
        self._rung = False

    @workflow.signal
    def wake(self) -> None:
        """New events were committed."""
        self._rung = True

    @workflow.run
    async def run(self, params: DispatchInput) -> None:
        own = workflow.info().task_queue
        io_queue = own[: len(own) - len(TaskQueue.WORKFLOWS.value)] + TaskQueue.IO.value
        for _ in range(ROUNDS_PER_RUN):
            self._rung = False
            result = await DISPATCH_EVENTS.execute(
                DispatchBatch(limit=params.batch),
                task_queue=io_queue,
                start_to_close_timeout=timedelta(minutes=2),
                # A worker killed mid-round: retried after this, not the 2 minutes.
                heartbeat_timeout=timedelta(seconds=10),
                retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=10)),
                summary="Dispatch new events",
            )
            if result.more:
                continue
            if workflow.info().is_continue_as_new_suggested():
                break
            if result.watched:
                continue  # it looked at the outbox until just now: watch again
            with contextlib.suppress(TimeoutError):  # no ring: look anyway
                await workflow.wait_condition(
                    lambda: self._rung, timeout=timedelta(seconds=params.poll_seconds)
                )
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(params)
