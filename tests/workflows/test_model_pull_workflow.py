"""ModelPullWorkflow: a long pull reports its progress and ends succeeded or failed."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from tests.workflows.fakes import PULL_TOTAL, FakeActivities, Hold, serve
from workflows.activities import Activity, PullModelInput
from workflows.model_pull import (
    ModelPullInput,
    ModelPullProgress,
    ModelPullWorkflow,
    workflow_id_for,
)

pytestmark = pytest.mark.asyncio

PULL = ModelPullInput(provider="ollama", model="llama3.2:1b")


async def start(
    env: WorkflowEnvironment, queue: str, prefix: str
) -> WorkflowHandle[ModelPullWorkflow, ModelPullProgress]:
    return await env.client.start_workflow(
        ModelPullWorkflow.run,
        PULL,
        id=f"{workflow_id_for(PULL.provider, PULL.model)}-{prefix}",
        task_queue=queue,
    )


async def test_a_pull_reports_its_progress_and_finishes_at_100_percent(
    skipping_env: WorkflowEnvironment, prefix: str
) -> None:
    hold = Hold(Activity.PULL_MODEL)
    fakes = FakeActivities(hold=hold)
    async with serve(skipping_env.client, fakes, prefix) as queue:
        handle = await start(skipping_env, queue, prefix)
        await hold.reached.wait()  # the activity has signalled half the layers
        halfway = await handle.query(ModelPullWorkflow.progress)
        hold.release.set()
        result = await handle.result()
        after = await handle.query(ModelPullWorkflow.progress)

    # The signal's provider and model are ignored: the run's own are kept.
    assert halfway == ModelPullProgress(
        provider="ollama",
        model="llama3.2:1b",
        phase="pulling",
        status="pulling layers",
        completed=PULL_TOTAL // 2,
        total=PULL_TOTAL,
    )
    assert halfway.percent == 50.0
    assert fakes.called(Activity.PULL_MODEL) == [
        PullModelInput(provider="ollama", model="llama3.2:1b")
    ]
    assert (result.phase, result.status, result.percent) == ("succeeded", "success", 100.0)
    assert (result.provider, result.model) == ("ollama", "llama3.2:1b")
    assert after == result


async def test_a_pull_of_an_unknown_model_fails_at_once(
    skipping_env: WorkflowEnvironment, prefix: str
) -> None:
    missing = ApplicationError("pull model manifest: file does not exist", type="NOT_FOUND")
    fakes = FakeActivities(failures={Activity.PULL_MODEL: [missing]})
    async with serve(skipping_env.client, fakes, prefix) as queue:
        handle = await start(skipping_env, queue, prefix)
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
        progress = await handle.query(ModelPullWorkflow.progress)

    assert fakes.attempts(Activity.PULL_MODEL) == [1]
    assert isinstance(failed.value.cause, ApplicationError)
    assert failed.value.cause.message == (
        "pulling llama3.2:1b failed: pull model manifest: file does not exist"
    )
    assert (progress.phase, progress.status) == ("failed", "failed")
    assert progress.error == "pull model manifest: file does not exist"


async def test_a_pull_interrupted_by_a_lost_connection_resumes(
    skipping_env: WorkflowEnvironment, prefix: str
) -> None:
    lost = ApplicationError("connection to Ollama lost", type="UPSTREAM_UNAVAILABLE")
    fakes = FakeActivities(failures={Activity.PULL_MODEL: [lost]})
    async with serve(skipping_env.client, fakes, prefix) as queue:
        result = await (await start(skipping_env, queue, prefix)).result()

    assert fakes.attempts(Activity.PULL_MODEL) == [1, 2]
    assert (result.phase, result.percent) == ("succeeded", 100.0)
