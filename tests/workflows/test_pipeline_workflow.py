"""PipelineWorkflow's logic on the time-skipping server, with fake step activities:
parallel branches, templates, branches, approvals, failures, timeouts and cancel."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from engine.pipelines.definition import PipelineDefinition, from_steps
from tests.workflows.fakes import FakeActivities, Hold, serve
from workflows.activities import Activity
from workflows.pipeline import (
    ApprovalInput,
    PipelineInput,
    PipelineResult,
    PipelineWorkflow,
)
from workflows.pipeline_payloads import AgentSnapshot, ExecutionRecord, LoadedDefinition, StepCall

pytestmark = pytest.mark.asyncio


def pipeline(steps: list[dict[str, Any]], **options: Any) -> PipelineDefinition:
    return from_steps(steps, **options)


def run_input(definition: PipelineDefinition, prefix: str, **extra: Any) -> PipelineInput:
    return PipelineInput(
        execution_id=f"exe_{prefix.strip('-')}",
        tenant_id="ten_test",
        started_by="usr_test",
        definition_id="wf_test",
        definition=definition,
        **extra,
    )


async def start(
    env: WorkflowEnvironment, queue: str, params: PipelineInput
) -> WorkflowHandle[PipelineWorkflow, PipelineResult]:
    return await env.client.start_workflow(
        PipelineWorkflow.run, params, id=f"run-{params.execution_id}", task_queue=queue
    )


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(400):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


async def waiting_for_approval(
    handle: WorkflowHandle[PipelineWorkflow, PipelineResult], step_id: str
) -> None:
    for _ in range(400):
        status = await handle.query(PipelineWorkflow.status)
        if status.steps[step_id].status == "waiting_approval":
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{step_id} never waited for approval")


def recorded(fakes: FakeActivities) -> ExecutionRecord:
    (record,) = fakes.called(Activity.RECORD_EXECUTION)
    assert isinstance(record, ExecutionRecord)
    return record


async def test_the_onboarding_chain_fills_templates_from_input_and_earlier_steps(
    skipping_env: WorkflowEnvironment, prefix: str
) -> None:
    fakes = FakeActivities()
    definition = pipeline(
        [
            {"id": "welcome-email", "type": "email",
             "config": {"to": "{{customer_email}}", "subject": "Welcome!"}},
            {"id": "setup-account", "type": "api_call", "dependencies": ["welcome-email"],
             "config": {"url": "https://crm.example/customers", "method": "POST",
                        "body": {"email": "{{customer_email}}", "name": "{{customer_name}}",
                                 "sent": "{{steps.welcome-email.output}}"}}},
            {"id": "ai", "type": "ai_prompt", "dependencies": ["setup-account"],
             "config": {"prompt": "Content for {{customer_name}} in {{customer_industry}}",
                        "model": "gpt-4"}},
        ]
    )  # fmt: skip
    data = {"customer_email": "john@example.com", "customer_name": "John Doe",
            "customer_industry": "Technology"}  # fmt: skip
    async with serve(skipping_env.client, fakes, prefix) as queue:
        handle = await start(skipping_env, queue, run_input(definition, prefix, input_data=data))
        result = await handle.result()
        status = await handle.query(PipelineWorkflow.status)

    (mail,) = fakes.called(Activity.SEND_EMAIL)
    assert isinstance(mail, StepCall) and mail.config["to"] == "john@example.com"
    (call,) = fakes.called(Activity.CALL_API)
    assert isinstance(call, StepCall)
    assert call.config["body"] == {"email": "john@example.com", "name": "John Doe",
                                   "sent": "Email stored"}  # fmt: skip
    (prompt,) = fakes.called(Activity.CALL_MODEL)
    assert isinstance(prompt, StepCall)
    assert prompt.config["prompt"] == "Content for John Doe in Technology"
    assert result.status == "completed" and result.tokens_used == 10
    assert status.progress.completed_steps == 3 and status.progress.current_step is None
    assert [log.message for log in status.logs][:2] == [
        "Workflow execution started",
        "Step 'welcome-email' started",
    ]
    assert recorded(fakes).status == "completed"
    assert set(recorded(fakes).results) == {"welcome-email", "setup-account", "ai"}


async def test_the_middle_of_a_diamond_runs_in_parallel(
    skipping_env: WorkflowEnvironment, prefix: str
) -> None:
    # The first branch's call is held: the second branch starts anyway.
    hold = Hold(Activity.CALL_MODEL, nth=1)
    fakes = FakeActivities(hold=hold)
    definition = pipeline(
        [
            {"id": "start", "type": "transform", "config": {"output": {"topic": "{{topic}}"}}},
            {"id": "left", "type": "ai_prompt", "dependencies": ["start"],
             "config": {"prompt": "left {{steps.start.output.topic}}"}},
            {"id": "right", "type": "api_call", "dependencies": ["start"],
             "config": {"url": "https://x.example", "body": "{{steps.start.output}}"}},
            {"id": "join", "type": "transform", "dependencies": ["left", "right"],
             "config": {"output": ["{{steps.left.output}}", "{{steps.right.output}}"]}},
        ]
    )  # fmt: skip
    async with serve(skipping_env.client, fakes, prefix) as queue:
        handle = await start(
            skipping_env, queue, run_input(definition, prefix, input_data={"topic": "tea"})
        )
        await hold.reached.wait()
        await until(lambda: bool(fakes.called(Activity.CALL_API)))  # while left is held
        during = await handle.query(PipelineWorkflow.status)
        hold.release.set()
        result = await handle.result()

    assert during.steps["left"].status == "running"
    assert during.steps["right"].status == "completed"
    assert during.steps["join"].status == "pending"
    (call,) = fakes.called(Activity.CALL_API)
    assert isinstance(call, StepCall) and call.config["body"] == {"topic": "tea"}
    assert result.outputs["join"] == ["answer to: left tea", {"received": {"topic": "tea"}}]


async def test_a_condition_takes_one_branch_and_skips_the_other(
    skipping_env: WorkflowEnvironment, prefix: str
) -> None:
    fakes = FakeActivities()
    definition = pipeline(
        [
            {"id": "check", "type": "condition",
             "config": {"value": "{{score}}", "operator": "greater_than", "compare_to": 5}},
            {"id": "high", "type": "transform", "dependencies": ["check"],
             "when": {"check": True}, "config": {"output": "high"}},
            {"id": "low", "type": "transform", "dependencies": ["check"],
             "when": {"check": False}, "config": {"output": "low"}},
            {"id": "after-low", "type": "transform", "dependencies": ["low"],
             "config": {"output": "x"}},
            {"id": "end", "type": "transform", "dependencies": ["high", "low"],
             "config": {"output": "done"}},
        ]
    )  # fmt: skip
    async with serve(skipping_env.client, fakes, prefix) as queue:
        handle = await start(
            skipping_env, queue, run_input(definition, prefix, input_data={"score": 9})
        )
        result = await handle.result()
        status = await handle.query(PipelineWorkflow.status)

    assert {sid: s.status for sid, s in status.steps.items()} == {
        "check": "completed",
        "high": "completed",
        "low": "skipped",
        "after-low": "skipped",
        "end": "completed",
    }
    assert result.outputs["check"] == {"result": True}


async def test_approval_resumes_the_run_and_records_who_decided(
    skipping_env: WorkflowEnvironment, prefix: str
) -> None:
    fakes = FakeActivities()
    definition = pipeline(
        [
            {"id": "draft", "type": "ai_prompt", "config": {"prompt": "draft"}},
            {"id": "review", "type": "human_approval", "dependencies": ["draft"]},
            {"id": "publish", "type": "api_call", "dependencies": ["review"],
             "config": {"url": "https://x.example", "body": "{{steps.draft.output}}"}},
        ]
    )  # fmt: skip
    async with serve(skipping_env.client, fakes, prefix) as queue:
        handle = await start(skipping_env, queue, run_input(definition, prefix))
        await waiting_for_approval(handle, "review")
        # Only a waiting step can be decided: the validator refuses the others.
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(
                PipelineWorkflow.approve,
                ApprovalInput(step_id="publish", approved=True, decided_by="usr_boss"),
            )
        approval = await handle.execute_update(
            PipelineWorkflow.approve,
            ApprovalInput(step_id="review", approved=True, decided_by="usr_boss", comment="ok"),
        )
        result = await handle.result()

    assert approval.approved and approval.decided_by == "usr_boss" and approval.comment == "ok"
    assert result.status == "completed"
    assert len(fakes.called(Activity.CALL_API)) == 1


async def test_a_rejection_fails_the_run_with_a_clear_status(
    skipping_env: WorkflowEnvironment, prefix: str
) -> None:
    fakes = FakeActivities()
    definition = pipeline(
        [
            {"id": "review", "type": "human_approval"},
            {"id": "publish", "type": "api_call", "dependencies": ["review"],
             "config": {"url": "https://x.example"}},
        ]
    )  # fmt: skip
    async with serve(skipping_env.client, fakes, prefix) as queue:
        handle = await start(skipping_env, queue, run_input(definition, prefix))
        await waiting_for_approval(handle, "review")
        await handle.execute_update(
            PipelineWorkflow.approve,
            ApprovalInput(step_id="review", approved=False, decided_by="usr_boss"),
        )
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        status = await handle.query(PipelineWorkflow.status)

    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "APPROVAL_REJECTED"
    assert status.status == "failed" and status.steps["publish"].status == "pending"
    assert not fakes.called(Activity.CALL_API)
    assert recorded(fakes).status == "failed"
    assert recorded(fakes).error_code == "APPROVAL_REJECTED"


async def test_an_approval_nobody_gives_times_out(
    skipping_env: WorkflowEnvironment, prefix: str
) -> None:
    fakes = FakeActivities()
    definition = pipeline(
        [{"id": "review", "type": "human_approval", "config": {"timeout_seconds": 3600}}]
    )
    async with serve(skipping_env.client, fakes, prefix) as queue:
        handle = await start(skipping_env, queue, run_input(definition, prefix))
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()  # the test server skips the hour

    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "APPROVAL_TIMEOUT"


async def test_a_step_is_retried_and_a_permanent_failure_fails_the_run_at_once(
    skipping_env: WorkflowEnvironment, prefix: str
) -> None:
    flaky = [ApplicationError("upstream 503", type="HTTP_SERVER_ERROR") for _ in range(2)]
    fakes = FakeActivities(failures={Activity.CALL_API: flaky})
    ok = pipeline([{"id": "call", "type": "api_call", "config": {"url": "https://x.example"}}])
    async with serve(skipping_env.client, fakes, prefix) as queue:
        await (await start(skipping_env, queue, run_input(ok, prefix))).result()
    assert fakes.attempts(Activity.CALL_API) == [1, 2, 3]

    missing = ApplicationError("no model gpt-9", type="MODEL_NOT_AVAILABLE", non_retryable=True)
    fakes = FakeActivities(failures={Activity.CALL_MODEL: [missing]})
    bad = pipeline(
        [
            {"id": "a", "type": "ai_prompt", "config": {"prompt": "x", "model": "gpt-9"}},
            {"id": "b", "type": "transform", "dependencies": ["a"], "config": {"output": 1}},
        ]
    )
    async with serve(skipping_env.client, fakes, prefix + "2-") as queue:
        handle = await start(skipping_env, queue, run_input(bad, prefix + "2-"))
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        status = await handle.query(PipelineWorkflow.status)
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "MODEL_NOT_AVAILABLE"
    assert fakes.attempts(Activity.CALL_MODEL) == [1]
    assert status.steps["a"].status == "failed" and status.steps["a"].error == "no model gpt-9"
    assert status.steps["b"].status == "pending"


async def test_a_template_naming_a_missing_value_fails_the_step_not_the_worker(
    skipping_env: WorkflowEnvironment, prefix: str
) -> None:
    fakes = FakeActivities()
    definition = pipeline([{"id": "a", "type": "transform", "config": {"output": "{{nope}}"}}])
    async with serve(skipping_env.client, fakes, prefix) as queue:
        handle = await start(skipping_env, queue, run_input(definition, prefix))
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "TEMPLATE_ERROR"


async def test_the_run_honours_its_timeout_and_cancel_stops_a_running_step(
    skipping_env: WorkflowEnvironment, prefix: str
) -> None:
    definition = pipeline([{"id": "review", "type": "human_approval"}], timeout_seconds=60)
    fakes = FakeActivities()
    async with serve(skipping_env.client, fakes, prefix) as queue:
        handle = await start(skipping_env, queue, run_input(definition, prefix))
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "TIMEOUT"
    assert recorded(fakes).status == "timed_out"

    hold = Hold(Activity.CALL_MODEL)
    fakes = FakeActivities(hold=hold)
    long = pipeline([{"id": "slow", "type": "ai_prompt", "config": {"prompt": "x"}}])
    async with serve(skipping_env.client, fakes, prefix + "c-") as queue:
        handle = await start(skipping_env, queue, run_input(long, prefix + "c-"))
        await hold.reached.wait()
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        status = await handle.query(PipelineWorkflow.status)
    assert status.status == "cancelled"
    assert status.steps["slow"].status == "cancelled"
    assert recorded(fakes).status == "cancelled"


async def test_agents_are_passed_as_snapshots_and_sub_workflows_run_as_children(
    skipping_env: WorkflowEnvironment, prefix: str
) -> None:
    child = pipeline([{"id": "inner", "type": "transform", "config": {"output": "{{x}}!"}}])
    fakes = FakeActivities(
        definitions={
            "wf_child": LoadedDefinition(
                definition_id="wf_child", name="child", definition=child.model_dump(mode="json")
            )
        }
    )
    definition = pipeline(
        [
            {"id": "research", "type": "agent", "agent_id": "agt_1",
             "config": {"prompt": "research {{topic}}"}},
            {"id": "sub", "type": "sub_workflow", "dependencies": ["research"],
             "config": {"workflow_id": "wf_child", "input_data": {"x": "{{topic}}"}}},
        ]
    )  # fmt: skip
    agent = AgentSnapshot(id="agt_1", name="Researcher", type="researcher", model="m1")
    async with serve(skipping_env.client, fakes, prefix) as queue:
        handle = await start(
            skipping_env,
            queue,
            run_input(definition, prefix, input_data={"topic": "tea"}, agents={"agt_1": agent}),
        )
        result = await handle.result()

    (call,) = fakes.called(Activity.CALL_MODEL)
    assert isinstance(call, StepCall) and call.agent == agent
    assert result.outputs["sub"] == {"inner": "tea!"}
    await asyncio.sleep(0)  # the child recorded its own outcome too (no index row)
    assert len(fakes.called(Activity.RECORD_EXECUTION)) == 2
