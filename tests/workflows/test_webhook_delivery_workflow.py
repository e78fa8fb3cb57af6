"""WebhookDeliveryWorkflow on the time-skipping server: the retry schedule spans
about a day, a receiver's Retry-After lengthens the wait, 410 ends at once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from temporalio import activity
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from engine.events.delivery import retry_after_seconds
from engine.platform.queues import TaskQueue, queue_name
from engine.platform.settings import Settings
from tests.workflows.conftest import time_skipping_server_path
from workers.main import WORKFLOW_RUNNER
from workflows.activities import DELIVER_WEBHOOK, WEBHOOK_EXHAUSTED
from workflows.event_payloads import (
    AttemptInput,
    AttemptOutcome,
    AttemptResult,
    DeliveryInput,
    DeliveryResult,
    ExhaustedInput,
)
from workflows.webhook_delivery import WebhookDeliveryWorkflow, delivery_id

pytestmark = pytest.mark.asyncio
DEFAULT_SCHEDULE = Settings().webhook_retry_schedule_seconds


@pytest.fixture(scope="module")
async def skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server of this module's own: a day of retries must skip, and
    a run another module left mid-activity would stop the shared server's clock."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(time_skipping_server_path()),
        data_converter=pydantic_data_converter,
    )
    try:
        yield env
    finally:
        await env.shutdown()


@dataclass
class Receiver:
    """Answers per attempt number; the last answer repeats."""

    answers: list[tuple[AttemptOutcome, float | None]]
    attempts: list[tuple[int, datetime, float | None]] = field(default_factory=list)
    exhausted: list[ExhaustedInput] = field(default_factory=list)

    @DELIVER_WEBHOOK.defn
    async def deliver_webhook(self, params: AttemptInput) -> AttemptResult:
        when = activity.info().current_attempt_scheduled_time
        self.attempts.append((params.attempt, when, params.next_delay_seconds))
        outcome, retry_after = self.answers[min(params.attempt, len(self.answers)) - 1]
        if outcome == "retry" and params.next_delay_seconds is None:
            return AttemptResult(outcome="failed", status_code=500)
        wait = params.next_delay_seconds
        if retry_after is not None and wait is not None:
            wait = max(wait, retry_after)
        return AttemptResult(outcome=outcome, status_code=503, retry_in_seconds=wait)

    @WEBHOOK_EXHAUSTED.defn
    async def webhook_exhausted(self, params: ExhaustedInput) -> None:
        self.exhausted.append(params)


@asynccontextmanager
async def deliver(
    env: WorkflowEnvironment, receiver: Receiver, prefix: str, schedule: list[float]
) -> AsyncIterator[DeliveryResult]:
    workflows, io = queue_name(TaskQueue.WORKFLOWS, prefix), queue_name(TaskQueue.IO, prefix)
    async with Worker(
        env.client, task_queue=workflows, workflows=[WebhookDeliveryWorkflow],
        workflow_runner=WORKFLOW_RUNNER,
    ), Worker(
        env.client, task_queue=io,
        activities=[receiver.deliver_webhook, receiver.webhook_exhausted],
    ):  # fmt: skip
        result = await env.client.execute_workflow(
            WebhookDeliveryWorkflow.run,
            DeliveryInput(
                tenant_id="ten_1",
                event_id="evt_1",
                webhook_id="whk_1",
                schedule_seconds=schedule,
                jitter=0.2,
            ),
            id=delivery_id("evt_1", f"whk_{prefix}"),
            task_queue=workflows,
        )
        yield result


async def test_a_receiver_that_never_answers_is_tried_for_about_a_day(
    skipping_env: WorkflowEnvironment, prefix: str
) -> None:
    receiver = Receiver(answers=[("retry", None)])
    async with deliver(skipping_env, receiver, prefix, DEFAULT_SCHEDULE) as result:
        pass
    assert result == DeliveryResult(outcome="failed", attempts=len(DEFAULT_SCHEDULE))
    assert [a for a, _, _ in receiver.attempts] == list(range(1, 11))
    times = [when for _, when, _ in receiver.attempts]
    offsets = DEFAULT_SCHEDULE
    for n in range(1, len(times)):
        gap = (times[n] - times[n - 1]).total_seconds()
        planned = offsets[n] - offsets[n - 1]
        assert planned <= gap <= planned * 1.2 + 5, (planned, gap)  # schedule plus jitter
    span = times[-1] - times[0]
    assert timedelta(hours=24) <= span < timedelta(hours=29)  # about a day
    assert receiver.attempts[-1][2] is None  # the last attempt knows it is the last
    assert [e.attempts for e in receiver.exhausted] == [10]


async def test_retry_after_lengthens_the_wait_and_a_success_ends_the_run(
    skipping_env: WorkflowEnvironment, prefix: str
) -> None:
    receiver = Receiver(answers=[("retry", 3600.0), ("delivered", None)])
    async with deliver(skipping_env, receiver, prefix, [0, 5, 300]) as result:
        pass
    assert result == DeliveryResult(outcome="delivered", attempts=2)
    gap = (receiver.attempts[1][1] - receiver.attempts[0][1]).total_seconds()
    assert 3600 <= gap < 3700
    assert receiver.exhausted == []


async def test_gone_ends_at_the_first_attempt(
    skipping_env: WorkflowEnvironment, prefix: str
) -> None:
    receiver = Receiver(answers=[("gone", None)])
    async with deliver(skipping_env, receiver, prefix, [0, 5, 300]) as result:
        pass
    assert result == DeliveryResult(outcome="gone", attempts=1)
    assert len(receiver.attempts) == 1 and receiver.exhausted == []


async def test_retry_after_is_read_as_seconds_or_a_date_and_capped() -> None:
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    assert retry_after_seconds("120", now) == 120.0
    assert retry_after_seconds("Fri, 27 Nov 2026 12:05:00 GMT", now) == 300.0
    assert retry_after_seconds("Fri, 27 Nov 2026 11:00:00 GMT", now) == 0.0
    assert retry_after_seconds("999999999", now) == 24 * 3600.0
    assert retry_after_seconds("soon", now) is None and retry_after_seconds(None, now) is None
