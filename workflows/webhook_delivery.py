"""WebhookDeliveryWorkflow (``hook-{event_id}-{webhook_id}``): one event to one webhook.

Each attempt is one activity that signs and POSTs the event and writes the
delivery log. Between attempts the workflow sleeps through the retry schedule
(by default attempts at 0 s, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h and
24 h after the event, each wait stretched by a random jitter), longer when the
receiver asked for it with ``Retry-After``. A 2xx ends the run delivered;
410 Gone disables the webhook; a webhook that was deleted or disabled meanwhile
ends it skipped. When every attempt failed, the webhook's run of failed events
grows, and a long enough run disables it. Every attempt carries the same
``webhook-id`` (the event id), so receivers can drop repeats.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from engine.platform.queues import TaskQueue
    from workflows.activities import DELIVER_WEBHOOK, WEBHOOK_EXHAUSTED
    from workflows.event_payloads import (
        AttemptInput,
        DeliveryInput,
        DeliveryResult,
        ExhaustedInput,
    )

# Activity retries cover our own failures (database, worker crash), not the
# receiver's: its failures are the attempts the schedule counts.
OWN_FAILURES = RetryPolicy(maximum_interval=timedelta(seconds=30))


def delivery_id(event_id: str, webhook_id: str) -> str:
    return f"hook-{event_id}-{webhook_id}"


@workflow.defn
class WebhookDeliveryWorkflow:
    @workflow.run
    async def run(self, params: DeliveryInput) -> DeliveryResult:
        own = workflow.info().task_queue
        io_queue = own[: len(own) - len(TaskQueue.WORKFLOWS.value)] + TaskQueue.IO.value
        # The schedule gives each attempt's time after the event; sleep the differences.
        offsets = params.schedule_seconds
        delays = [offsets[0]] + [b - a for a, b in zip(offsets, offsets[1:], strict=False)]
        wait = self._stretch(delays[0], params.jitter)
        for attempt in range(1, len(delays) + 1):
            if wait > 0:
                await workflow.sleep(timedelta(seconds=wait))
            following = (
                self._stretch(delays[attempt], params.jitter) if attempt < len(delays) else None
            )
            result = await DELIVER_WEBHOOK.execute(
                AttemptInput(
                    tenant_id=params.tenant_id,
                    event_id=params.event_id,
                    webhook_id=params.webhook_id,
                    attempt=attempt,
                    next_delay_seconds=following,
                ),
                task_queue=io_queue,
                start_to_close_timeout=timedelta(seconds=params.attempt_timeout_seconds),
                # The attempt beats while it waits: a worker that died is noticed
                # in seconds and the attempt runs again elsewhere.
                heartbeat_timeout=timedelta(seconds=10),
                retry_policy=OWN_FAILURES,
                summary=f"Attempt {attempt}",
            )
            if result.outcome not in ("retry", "failed"):
                return DeliveryResult(outcome=result.outcome, attempts=attempt)
            wait = result.retry_in_seconds or following or 0.0
        await WEBHOOK_EXHAUSTED.execute(
            ExhaustedInput(
                tenant_id=params.tenant_id,
                event_id=params.event_id,
                webhook_id=params.webhook_id,
                attempts=len(delays),
            ),
            task_queue=io_queue,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=OWN_FAILURES,
            summary="Count the failed event",
        )
        return DeliveryResult(outcome="failed", attempts=len(delays))

    @staticmethod
    def _stretch(seconds: float, jitter: float) -> float:
        return seconds * (1 + jitter * workflow.random().random()) if seconds > 0 else 0.0
