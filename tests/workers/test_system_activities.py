"""The system probe: a ping answers from the queue it was sent to."""

from __future__ import annotations

import dataclasses
import platform

import pytest
from temporalio.testing import ActivityEnvironment

from workers.activities.system import SystemActivities
from workflows.activities import PingInput, PingResult

pytestmark = pytest.mark.asyncio


async def test_a_ping_answers_with_the_queue_it_was_taken_from_and_the_worker(
    activity_env: ActivityEnvironment,
) -> None:
    # Asked about weft-io but taken from weft-cpu: the answer tells where it really ran.
    activity_env.info = dataclasses.replace(activity_env.info, task_queue="t-1-weft-cpu")
    system = SystemActivities("weft@host-a:42")

    answer = await activity_env.run(system.ping_queue, PingInput(queue="t-1-weft-io"))

    assert answer == PingResult(
        queue="t-1-weft-cpu", worker="weft@host-a:42", python=platform.python_version()
    )
