"""A2ATaskWorkflow on its own: the Temporal dev server with the fake activities of
``tests/workflows/fakes.py`` (no database, no model)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from tests.workflows.fakes import FakeActivities, Hold, new_prefix, serve
from workflows.a2a_payloads import (
    A2AFollowUp,
    A2APipelineCall,
    A2ATarget,
    A2ATaskInput,
    A2ATaskRecord,
    A2ATaskView,
)
from workflows.a2a_task import A2ATaskWorkflow
from workflows.activities import Activity

pytestmark = pytest.mark.asyncio(loop_scope="session")


def message(text: str, number: int, **data: Any) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"text": text}] + ([{"data": data}] if data else [])
    return {"messageId": f"m{number}", "role": "ROLE_USER", "parts": parts,
            "taskId": "a2t_w", "contextId": "ctx_w"}  # fmt: skip


def task_input(text: str, kind: str = "agent", **options: Any) -> A2ATaskInput:
    data = options.pop("data", {})
    return A2ATaskInput(
        task_id="a2t_w",
        context_id="ctx_w",
        tenant_id="ten_w",
        started_by="usr_w",
        target=A2ATarget(kind=kind, id="agt_w" if kind == "agent" else "wf_w", name="W"),  # type: ignore[arg-type]
        message=message(text, 1, **data),
        **options,
    )


async def until(handle: WorkflowHandle[A2ATaskWorkflow, A2ATaskView], state: str) -> A2ATaskView:
    async with asyncio.timeout(20):
        while True:
            view = await handle.query(A2ATaskWorkflow.task)
            if view.state == state:
                return view
            await asyncio.sleep(0.05)


def recorded(fakes: FakeActivities) -> list[str]:
    return [
        r.view.state for r in fakes.called(Activity.RECORD_A2A_TASK) if isinstance(r, A2ATaskRecord)
    ]


async def test_a_conversation_waits_for_each_message_and_ends_on_the_final_one(
    temporal_env: WorkflowEnvironment,
) -> None:
    hold = Hold(Activity.ANSWER_A2A_AGENT, nth=2)  # the second answer takes its time
    fakes = FakeActivities(hold=hold)
    async with serve(temporal_env.client, fakes, new_prefix()) as queue:
        handle = await temporal_env.client.start_workflow(
            A2ATaskWorkflow.run,
            task_input("first", multi_turn=True, input_timeout_seconds=20),
            id=f"a2a-task-{new_prefix()}",
            task_queue=queue,
        )
        waiting = await until(handle, "input-required")
        assert waiting.task["status"]["message"]["parts"] == [{"text": "answer to: first"}]
        second = await handle.execute_update(
            A2ATaskWorkflow.message, A2AFollowUp(message=message("second", 2))
        )
        assert second.state == "working"
        await hold.reached.wait()
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(
                A2ATaskWorkflow.message, A2AFollowUp(message=message("too soon", 9))
            )
        assert "not waiting for input" in str(refused.value.cause)
        hold.release.set()
        await until(handle, "input-required")
        final = await handle.execute_update(
            A2ATaskWorkflow.message, A2AFollowUp(message=message("last", 3), final=True)
        )
        assert final.state == "working"
        done = await handle.result()
    assert done.state == "completed"
    task = done.task
    assert task["artifacts"][0]["parts"] == [{"text": "answer to: last"}]
    assert [m["role"] for m in task["history"]] == ["ROLE_USER", "ROLE_AGENT"] * 3
    turns = [c.turns for c in fakes.called(Activity.ANSWER_A2A_AGENT)]
    assert [len(t) for t in turns] == [1, 3, 5]  # each turn sees the conversation so far
    assert recorded(fakes)[-1] == "completed"
    versions = [r.view.version for r in fakes.called(Activity.RECORD_A2A_TASK)]
    assert versions == sorted(versions)


async def test_nobody_answering_ends_the_task_with_the_last_answer(
    temporal_env: WorkflowEnvironment,
) -> None:
    fakes = FakeActivities()
    async with serve(temporal_env.client, fakes, new_prefix()) as queue:
        done = await temporal_env.client.execute_workflow(
            A2ATaskWorkflow.run,
            task_input("anyone?", multi_turn=True, input_timeout_seconds=0.5),
            id=f"a2a-task-{new_prefix()}",
            task_queue=queue,
        )
    assert done.state == "completed"
    assert done.task["artifacts"][0]["parts"] == [{"text": "answer to: anyone?"}]
    assert recorded(fakes) == ["working", "input-required", "completed"]


async def test_cancelling_a_waiting_task_records_it_canceled(
    temporal_env: WorkflowEnvironment,
) -> None:
    fakes = FakeActivities()
    async with serve(temporal_env.client, fakes, new_prefix()) as queue:
        handle = await temporal_env.client.start_workflow(
            A2ATaskWorkflow.run,
            task_input("hold on", multi_turn=True, input_timeout_seconds=20),
            id=f"a2a-task-{new_prefix()}",
            task_queue=queue,
        )
        await until(handle, "input-required")
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        assert (await handle.query(A2ATaskWorkflow.task)).state == "canceled"
    assert recorded(fakes)[-1] == "canceled"


async def test_a_failed_answer_fails_the_task_with_its_code(
    temporal_env: WorkflowEnvironment,
) -> None:
    error = ApplicationError("no model gpt-9", type="MODEL_NOT_AVAILABLE", non_retryable=True)
    fakes = FakeActivities(failures={Activity.ANSWER_A2A_AGENT: [error]})
    async with serve(temporal_env.client, fakes, new_prefix()) as queue:
        handle = await temporal_env.client.start_workflow(
            A2ATaskWorkflow.run, task_input("hi"), id=f"a2a-task-{new_prefix()}", task_queue=queue
        )
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        view = await handle.query(A2ATaskWorkflow.task)
    assert view.state == "failed"
    assert (
        view.task["status"]["message"]["parts"][0]["text"] == "MODEL_NOT_AVAILABLE: no model gpt-9"
    )
    assert recorded(fakes) == ["working", "failed"]


async def test_a_pipeline_gets_the_text_and_data_of_the_message(
    temporal_env: WorkflowEnvironment,
) -> None:
    fakes = FakeActivities()
    async with serve(temporal_env.client, fakes, new_prefix()) as queue:
        done = await temporal_env.client.execute_workflow(
            A2ATaskWorkflow.run,
            task_input("run it", kind="pipeline", data={"name": "Ada"}),
            id=f"a2a-task-{new_prefix()}",
            task_queue=queue,
        )
    (call,) = fakes.called(Activity.RUN_A2A_PIPELINE)
    assert isinstance(call, A2APipelineCall)
    assert (call.definition_id, call.text, call.data, call.turn) == (
        "wf_w",
        "run it",
        {"name": "Ada"},
        1,
    )
    parts = done.task["artifacts"][0]["parts"]
    assert parts[0] == {"text": "run it"}
    assert parts[1]["data"]["outputs"] == {"say": "run it", "name": "Ada"}
