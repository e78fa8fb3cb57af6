"""PipelineWorkflow's step events and ``wait_for_callback`` steps on the time-skipping
server with fake activities: what the run reports while it runs, how a callback
wakes a step (first delivery of its own callback only), and its timeout."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from engine.pipelines.definition import from_steps
from tests.workflows.fakes import FakeActivities, serve
from workflows.activities import Activity
from workflows.pipeline import (
    ApprovalInput,
    PipelineInput,
    PipelineResult,
    PipelineWorkflow,
)
from workflows.pipeline_payloads import (
    AgentSnapshot,
    CallbackReceived,
    ExecutionRecord,
    LoadedDefinition,
    OpenCallbackInput,
)

pytestmark = pytest.mark.asyncio


def run_input(steps: list[dict[str, Any]], prefix: str, **extra: Any) -> PipelineInput:
    return PipelineInput(
        execution_id=f"exe_{prefix.strip('-')}",
        tenant_id="ten_test",
        started_by="usr_test",
        definition_id="wf_test",
        definition=from_steps(steps),
        **extra,
    )


async def start(
    env: WorkflowEnvironment, queue: str, params: PipelineInput
) -> WorkflowHandle[PipelineWorkflow, PipelineResult]:
    return await env.client.start_workflow(
        PipelineWorkflow.run, params, id=f"run-{params.execution_id}", task_queue=queue
    )


async def until_status(
    handle: WorkflowHandle[PipelineWorkflow, PipelineResult], step_id: str, status: str
) -> None:
    for _ in range(400):
        if (await handle.query(PipelineWorkflow.status)).steps[step_id].status == status:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{step_id} never reached {status}")


def recorded(fakes: FakeActivities) -> ExecutionRecord:
    (record,) = fakes.called(Activity.RECORD_EXECUTION)
    assert isinstance(record, ExecutionRecord)
    return record


async def test_each_completed_step_is_reported_once_and_before_the_outcome(
    skipping_env: WorkflowEnvironment, prefix: str
) -> None:
    fakes = FakeActivities()
    steps = [
        {"id": "a", "type": "transform", "config": {"output": 1}},
        {"id": "b", "type": "email", "dependencies": ["a"], "config": {"to": "x@example.com"}},
        {"id": "c", "type": "api_call", "dependencies": ["a"],
         "config": {"url": "https://crm.example/c"}},
        {"id": "d", "type": "transform", "dependencies": ["b", "c"], "config": {"output": 2}},
    ]  # fmt: skip
    async with serve(skipping_env.client, fakes, prefix) as queue:
        handle = await start(skipping_env, queue, run_input(steps, prefix))
        assert (await handle.result()).status == "completed"

    events = fakes.step_events()
    assert sorted(e.step_id for e in events) == ["a", "b", "c", "d"]
    assert {e.kind for e in events} == {"step_completed"}
    assert [e.completed_steps for e in events] == [1, 2, 3, 4]
    assert {e.total_steps for e in events} == {4}
    batches = fakes.called(Activity.EMIT_STEP_EVENTS)
    assert {(b.execution_id, b.tenant_id, b.definition_id) for b in batches} == {
        (f"exe_{prefix.strip('-')}", "ten_test", "wf_test")
    }
    # Every step event is written before the outcome (whose event ends the stream).
    order = [call.activity for call in fakes.calls]
    last_emit = max(i for i, name in enumerate(order) if name is Activity.EMIT_STEP_EVENTS)
    assert last_emit < order.index(Activity.RECORD_EXECUTION)


async def test_a_wide_dag_reports_its_steps_in_a_few_batches(
    skipping_env: WorkflowEnvironment, prefix: str
) -> None:
    fakes = FakeActivities()
    steps: list[dict[str, Any]] = [
        {"id": f"n{i}", "type": "transform", "config": {"output": i},
         "dependencies": [f"n{i - 10}"] if i >= 10 else []}
        for i in range(60)
    ]  # fmt: skip
    async with serve(skipping_env.client, fakes, prefix) as queue:
        handle = await start(skipping_env, queue, run_input(steps, prefix))
        assert (await handle.result()).status == "completed"

    assert sorted(e.step_id for e in fakes.step_events()) == sorted(f"n{i}" for i in range(60))
    assert len(fakes.called(Activity.EMIT_STEP_EVENTS)) <= 6


async def test_a_step_waiting_for_approval_is_reported_as_progress(
    skipping_env: WorkflowEnvironment, prefix: str
) -> None:
    fakes = FakeActivities()
    steps = [{"id": "gate", "type": "human_approval"}]
    async with serve(skipping_env.client, fakes, prefix) as queue:
        handle = await start(skipping_env, queue, run_input(steps, prefix))
        await until_status(handle, "gate", "waiting_approval")
        await handle.execute_update(
            PipelineWorkflow.approve,
            ApprovalInput(step_id="gate", approved=True, decided_by="usr_test"),
        )
        await handle.result()

    assert [(e.kind, e.step_id) for e in fakes.step_events()] == [
        ("waiting_approval", "gate"),
        ("step_completed", "gate"),
    ]


async def test_a_callback_wakes_its_step_and_the_next_step_reads_the_body(
    skipping_env: WorkflowEnvironment, prefix: str
) -> None:
    # The fake delivers a callback the run never opened, then this step's twice:
    # only the first delivery of the step's own callback counts.
    fakes = FakeActivities(callback_bodies=[{"approved": True}, {"approved": False}])
    steps = [
        {"id": "wait", "type": "wait_for_callback",
         "config": {"timeout_seconds": 600,
                    "notify": {"url": "https://erp.example/hooks",
                               "body": {"order": "{{order}}"}}}},
        {"id": "next", "type": "transform", "dependencies": ["wait"],
         "config": {"output": {"approved": "{{steps.wait.output.approved}}"}}},
    ]  # fmt: skip
    async with serve(skipping_env.client, fakes, prefix) as queue:
        handle = await start(skipping_env, queue, run_input(steps, prefix, input_data={"order": 7}))
        result = await handle.result()
        status = await handle.query(PipelineWorkflow.status)

    assert result.outputs["wait"] == {"approved": True}
    assert result.outputs["next"] == {"approved": True}
    (opened,) = fakes.called(Activity.OPEN_CALLBACK)
    assert isinstance(opened, OpenCallbackInput)
    assert opened.step_id == "wait" and opened.workflow_id == f"run-{opened.execution_id}"
    assert opened.timeout_seconds == 600
    assert opened.notify == {"url": "https://erp.example/hooks", "body": {"order": 7}}
    detail = status.steps["wait"].detail
    assert detail["callback_id"] == "cbk_wait" and detail["message_id"] == "msg_1"
    assert detail["callback_url"] == "/api/v1/callbacks/tok_wait"
    kinds = [(e.kind, e.step_id) for e in fakes.step_events()]
    assert kinds == [
        ("waiting_callback", "wait"),
        ("step_completed", "wait"),
        ("step_completed", "next"),
    ]
    assert fakes.step_events()[0].callback_id == "cbk_wait"


async def test_the_waiting_step_shows_its_url_until_the_signal_arrives(
    skipping_env: WorkflowEnvironment, prefix: str
) -> None:
    fakes = FakeActivities()
    steps = [{"id": "wait", "type": "wait_for_callback"}]
    async with serve(skipping_env.client, fakes, prefix) as queue:
        handle = await start(skipping_env, queue, run_input(steps, prefix))
        await until_status(handle, "wait", "waiting_callback")
        status = await handle.query(PipelineWorkflow.status)
        assert status.steps["wait"].detail == {
            "callback_id": "cbk_wait",
            "callback_url": "/api/v1/callbacks/tok_wait",
        }
        assert status.progress.current_step == "wait"
        received = CallbackReceived(
            callback_id="cbk_wait", body="plain text", message_id="m1",
            received_at=datetime.now(UTC),
        )  # fmt: skip
        await handle.signal(PipelineWorkflow.callback, received)
        result = await handle.result()

    assert result.outputs == {"wait": "plain text"}
    (opened,) = fakes.called(Activity.OPEN_CALLBACK)
    assert isinstance(opened, OpenCallbackInput)
    assert opened.notify is None and opened.timeout_seconds == 7 * 86_400


async def test_a_callback_nobody_sends_fails_the_step_with_callback_timeout(
    skipping_env: WorkflowEnvironment, prefix: str
) -> None:
    fakes = FakeActivities()
    steps = [
        {"id": "wait", "type": "wait_for_callback", "config": {"timeout_seconds": 90}},
        {"id": "after", "type": "transform", "dependencies": ["wait"], "config": {"output": 1}},
    ]  # fmt: skip
    async with serve(skipping_env.client, fakes, prefix) as queue:
        handle = await start(skipping_env, queue, run_input(steps, prefix))
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        status = await handle.query(PipelineWorkflow.status)

    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "CALLBACK_TIMEOUT"
    assert status.steps["wait"].status == "failed"
    assert status.steps["wait"].error_code == "CALLBACK_TIMEOUT"
    assert status.steps["after"].status == "pending"
    record = recorded(fakes)
    assert record.status == "failed" and record.error_code == "CALLBACK_TIMEOUT"
    assert record.failed_step is not None and record.failed_step.step_id == "wait"


async def test_a_failed_agent_step_is_named_in_the_record_and_sub_runs_emit_nothing(
    skipping_env: WorkflowEnvironment, prefix: str
) -> None:
    child = LoadedDefinition(
        definition_id="wf_child",
        name="child",
        definition=from_steps(
            [{"id": "inner", "type": "transform", "config": {"output": 1}}]
        ).model_dump(mode="json"),
    )
    fakes = FakeActivities(
        definitions={"wf_child": child},
        failures={
            Activity.CALL_MODEL: [
                ApplicationError("no model m9", type="MODEL_NOT_AVAILABLE", non_retryable=True)
            ]
        },
    )
    steps = [
        {"id": "child", "type": "sub_workflow", "config": {"workflow_id": "wf_child"}},
        {"id": "research", "type": "agent", "agent_id": "agt_1", "dependencies": ["child"],
         "config": {"prompt": "x"}},
    ]  # fmt: skip
    agent = AgentSnapshot(id="agt_1", name="Researcher", type="researcher", model="m9")
    async with serve(skipping_env.client, fakes, prefix) as queue:
        params = run_input(steps, prefix, agents={"agt_1": agent})
        handle = await start(skipping_env, queue, params)
        with pytest.raises(WorkflowFailureError):
            await handle.result()

    failed = [r for r in fakes.called(Activity.RECORD_EXECUTION) if r.status == "failed"]
    (record,) = failed
    assert isinstance(record, ExecutionRecord)
    assert record.failed_step is not None
    assert record.failed_step.model_dump() == {
        "step_id": "research",
        "step_type": "agent",
        "agent_id": "agt_1",
        "code": "MODEL_NOT_AVAILABLE",
        "message": "no model m9",
    }
    # Only the top-level run reports its steps (the child has no execution of its own).
    assert [(e.kind, e.step_id) for e in fakes.step_events()] == [("step_completed", "child")]
    assert {b.execution_id for b in fakes.called(Activity.EMIT_STEP_EVENTS)} == {
        params.execution_id
    }
