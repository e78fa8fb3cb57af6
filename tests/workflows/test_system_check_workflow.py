"""SystemCheckWorkflow: one ping per activity queue proves each has a live worker.

(That a queue nobody serves fails the check is not tested here: the test server
holds its clock while an activity task waits to be picked up, so the 30 s
schedule-to-close bound would take 30 real seconds.)
"""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import WorkflowEnvironment

from engine.platform.queues import ACTIVITY_QUEUES, TaskQueue, queue_name
from tests.workflows.fakes import FAKE_WORKER, FakeActivities, serve
from workflows.activities import Activity
from workflows.system_check import SystemCheckInput, SystemCheckResult, SystemCheckWorkflow

pytestmark = pytest.mark.asyncio


async def check(
    env: WorkflowEnvironment, fakes: FakeActivities, prefix: str, queues: list[str]
) -> SystemCheckResult:
    async with serve(env.client, fakes, prefix) as queue:
        return await env.client.execute_workflow(
            SystemCheckWorkflow.run,
            SystemCheckInput(queues=queues),
            id=f"system-check-{prefix}",
            task_queue=queue,
        )


async def test_each_activity_queue_is_pinged_in_turn(
    skipping_env: WorkflowEnvironment, prefix: str
) -> None:
    fakes = FakeActivities()
    queues = [queue_name(queue, prefix) for queue in ACTIVITY_QUEUES]

    result = await check(skipping_env, fakes, prefix, queues)

    assert [ping.queue for ping in fakes.called(Activity.PING_QUEUE)] == queues
    assert result.workflow_queue == queue_name(TaskQueue.WORKFLOWS, prefix)
    # Each answer comes from a worker polling that very queue.
    assert [answer.queue for answer in result.answers] == queues
    assert {answer.worker for answer in result.answers} == {FAKE_WORKER}


async def test_a_ping_that_fails_is_tried_again_up_to_three_times(
    skipping_env: WorkflowEnvironment, prefix: str
) -> None:
    hiccups = [ApplicationError("worker restarting", type="UNAVAILABLE") for _ in range(2)]
    fakes = FakeActivities(failures={Activity.PING_QUEUE: hiccups})
    queues = [queue_name(TaskQueue.CPU, prefix)]

    result = await check(skipping_env, fakes, prefix, queues)

    assert fakes.attempts(Activity.PING_QUEUE) == [1, 2, 3]
    assert [answer.queue for answer in result.answers] == queues


async def test_a_queue_whose_worker_keeps_failing_fails_the_check(
    skipping_env: WorkflowEnvironment, prefix: str
) -> None:
    broken = [ApplicationError("worker broken", type="UNAVAILABLE") for _ in range(5)]
    fakes = FakeActivities(failures={Activity.PING_QUEUE: broken})

    with pytest.raises(WorkflowFailureError) as failed:
        await check(skipping_env, fakes, prefix, [queue_name(TaskQueue.IO, prefix)])

    assert fakes.attempts(Activity.PING_QUEUE) == [1, 2, 3]
    assert isinstance(failed.value.cause, ActivityError)
    assert isinstance(failed.value.cause.cause, ApplicationError)
    assert failed.value.cause.cause.message == "worker broken"
