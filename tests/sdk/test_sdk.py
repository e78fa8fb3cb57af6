"""The SDK against the real API on a loopback port, with a real worker and the Temporal
dev server: pipelines built in code run like any other definition."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from engine.pipelines.definition import InvalidDefinition, from_steps
from engine.platform.settings import Settings
from engine.sdk import (
    ApiUnreachable,
    AsyncWeftClient,
    AuthError,
    Execution,
    InvalidRequest,
    NotFoundError,
    Pipeline,
    WaitTimeout,
    WeftClient,
)
from tests.conftest import DocStack, free_port, worker_stack
from tests.fake_providers import FakeProvider, serve, serve_app
from tests.models_support import model_settings, openai_config


@dataclass
class Served:
    url: str  # the API on a loopback port
    api: DocStack
    model: FakeProvider

    @property
    def key(self) -> str:
        return self.api.tenant.key


@pytest.fixture
async def served(settings: Settings, temporal_env: WorkflowEnvironment) -> AsyncIterator[Served]:
    async with serve(FakeProvider("openai", models=["gpt-4"], api_key="sk-fake")) as model:
        configured = model_settings(settings, {"openai": openai_config(model)})
        async with (
            worker_stack(configured, temporal_env, "sdk") as api,
            serve_app(create_app(api.settings), lifespan="on") as url,
        ):
            yield Served(url, api, model)


def greeter() -> Pipeline:
    """Three steps: a transform, a model call reading it, a transform reading that."""
    p = Pipeline("SDK greeter", description="built in code", category="demo")
    hello = p.transform("hello", output={"greeting": f"Hello {p.input('name')}"})
    poem = p.ai_prompt("poem", prompt=f"Write a line for {hello.output['greeting']}", model="gpt-4")
    p.transform("shout", output=poem.output.piped("upper"), name="Shout it")
    return p


# --- the builder, without a server ---------------------------------------------------------


def test_a_pipeline_reads_earlier_outputs_and_depends_on_them() -> None:
    p = greeter()
    assert [step.depends_on for step in p.steps] == [(), ("hello",), ("poem",)]
    assert str(p["poem"].output) == "{{steps.poem.output}}"
    assert p["poem"].config["prompt"] == "Write a line for {{steps.hello.output.greeting}}"
    assert p["shout"].config == {"output": "{{steps.poem.output | upper}}"}
    assert p["hello"].config == {"output": {"greeting": "Hello {{name}}"}}


def test_the_auterity_body_normalises_to_the_same_definition() -> None:
    p = Pipeline("branches")
    check = p.condition("vip", value=p.input("tier"), operator="equals", compare_to="gold")
    p.email("thanks", to=p.input("email"), subject="Thanks", when={check: True})
    p.api_call("crm", url="https://crm.example/c", method="post", body={"tier": p.input("tier")},
               after=[check])  # fmt: skip
    p.approval("review", message="ok?", after=["crm"])

    body = p.to_auterity()

    assert body["name"] == "branches" and "category" not in body
    assert from_steps(body["steps"]) == p.definition()
    thanks = p["thanks"]
    assert thanks.depends_on == ("vip",) and thanks.when == {"vip": True}
    assert p["crm"].config["method"] == "POST"
    assert body["steps"][3] == {
        "id": "review", "type": "human_approval", "name": "", "config": {"message": "ok?"},
        "dependencies": ["crm"],
    }  # fmt: skip


def test_the_builder_refuses_what_cannot_run() -> None:
    p = Pipeline("bad")
    p.transform("a", output=1)
    with pytest.raises(ValueError, match="already has a step 'a'"):
        p.transform("a", output=2)
    with pytest.raises(ValueError, match="unknown step 'later'"):
        p.transform("b", output=3, after=["later"])
    p.ai_prompt("c", prompt="{{steps.missing.output}}")
    with pytest.raises(InvalidDefinition) as caught:
        p.definition()
    assert caught.value.details["reason"] == "UNKNOWN_VARIABLE"
    with pytest.raises(InvalidDefinition):
        Pipeline("empty").to_auterity()
    with pytest.raises(ValueError, match="unknown filter"):
        p["a"].output.piped("eval")


# --- the async client ------------------------------------------------------------------------


async def test_a_pipeline_built_in_code_runs_through_the_async_client(served: Served) -> None:
    async with AsyncWeftClient(f"{served.url}/api", api_key=served.key) as client:
        workflow = await client.workflows.create(greeter())
        assert workflow.name == "SDK greeter" and workflow.category == "demo"
        assert [(s.id, s.dependencies) for s in workflow.steps] == [
            ("hello", []), ("poem", ["hello"]), ("shout", ["poem"]),
        ]  # fmt: skip

        started = await client.workflows.execute(workflow, input_data={"name": "Ada"})
        assert started.id == started.execution_id and started.progress.total_steps == 3
        states = [state async for state in client.executions.stream(started, poll_interval=0.1)]
        done = await client.executions.wait(started.id, timeout=60)

    assert states[-1].status == "completed" and not states[0].finished
    assert len({(s.status, s.progress.completed_steps) for s in states}) == len(states)
    assert done.succeeded and done.progress.completed_steps == 3
    assert done.output("hello") == {"greeting": "Hello Ada"}
    assert done.output("poem") == "Echo: Write a line for Hello Ada"
    assert done.output("shout") == "ECHO: WRITE A LINE FOR HELLO ADA"
    assert done.results["poem"].model == "gpt-4" and done.results["poem"].tokens_used > 0
    (prompt,) = [r for r in served.model.requests if r.path == "/v1/chat/completions"]
    assert prompt.body["messages"][-1]["content"] == "Write a line for Hello Ada"


async def test_approvals_cancel_and_typed_errors_through_the_async_client(
    served: Served,
) -> None:
    p = Pipeline("gated")
    review = p.approval("review", message="Ship it?")
    p.transform("after", output="shipped", after=[review])

    async with AsyncWeftClient(served.url, api_key=served.key) as client:
        workflow = await client.workflows.create(p)

        async def waiting(execution_id: str) -> Execution:
            async for state in client.executions.stream(execution_id, poll_interval=0.1):
                if state.results.get("review") and state.results["review"].status == (
                    "waiting_approval"
                ):
                    return state
            raise AssertionError(f"{execution_id} finished without waiting")

        approved = await client.workflows.execute(workflow.id)
        await waiting(approved.id)
        decision = await client.executions.approve(approved, "review", comment="yes")
        assert decision.approved is True and decision.comment == "yes"
        assert (await client.executions.wait(approved, timeout=60)).output("after") == "shipped"

        rejected = await client.workflows.execute(workflow.id)
        await waiting(rejected.id)
        await client.executions.approve(rejected.id, "review", approved=False)
        failed = await client.executions.wait(rejected.id, timeout=60)
        assert failed.status == "failed" and failed.error_code == "APPROVAL_REJECTED"

        held = await client.workflows.execute(workflow.id)
        await waiting(held.id)
        with pytest.raises(WaitTimeout) as slow:
            await client.executions.wait(held.id, timeout=0.3, poll_interval=0.1)
        assert slow.value.execution.status == "running"
        assert (await client.executions.cancel(held)).status == "cancelling"
        assert (await client.executions.wait(held, timeout=60)).status == "cancelled"

        with pytest.raises(NotFoundError) as missing:
            await client.workflows.execute("wf_nope")
        assert missing.value.code == "WORKFLOW_NOT_FOUND" and missing.value.status_code == 404
        with pytest.raises(InvalidRequest) as invalid:
            await client.workflows.create({"name": "x", "steps": [{"type": "teleport"}]})
        assert invalid.value.code == "VALIDATION_ERROR"
        assert invalid.value.details["reason"] == "UNKNOWN_STEP_TYPE"
        assert invalid.value.request_id

        listed = await client.executions.list(workflow_id=workflow.id)
        assert {e.id for e in listed.executions} == {approved.id, rejected.id, held.id}

    async with AsyncWeftClient(served.url, api_key="znt_wrong") as stranger:
        with pytest.raises(AuthError) as denied:
            await stranger.workflows.list()
        assert denied.value.code in ("UNAUTHORIZED", "INVALID_API_KEY")
    async with AsyncWeftClient(f"http://127.0.0.1:{free_port()}", api_key="k") as nowhere:
        with pytest.raises(ApiUnreachable) as unreachable:
            await nowhere.executions.get("exe_1")
        assert unreachable.value.code == "API_UNREACHABLE" and unreachable.value.status_code == 0


async def test_schedules_through_the_sdk(served: Served) -> None:
    async with AsyncWeftClient(served.url, api_key=served.key) as client:
        workflow = await client.workflows.create(greeter())
        schedule = await client.schedules.create(
            workflow, cron="0 6 * * *", input_data={"name": "Ada"}, paused=True
        )
        assert schedule.paused and schedule.cron == "0 6 * * *" and schedule.next_run_at is None
        resumed = await client.schedules.resume(schedule)
        assert not resumed.paused and resumed.next_run_at is not None
        with pytest.raises(InvalidRequest) as bad:
            await client.schedules.create(workflow, cron="0 25 * * *", input_data={"name": "A"})
        assert bad.value.details["field"] == "cron" and "hour 25" in bad.value.message
        await client.schedules.delete(schedule)
        with pytest.raises(NotFoundError):
            await client.schedules.get(schedule.id)


# --- the blocking client ---------------------------------------------------------------------


def run_blocking(url: str, key: str) -> tuple[str, Execution, Execution]:
    """auterity's SDK example, step by step, with the blocking client."""
    with WeftClient(url, api_key=key) as client:
        workflow = client.workflows.create(
            {
                "name": "Test Workflow",
                "steps": [
                    {"type": "transform", "config": {"output": "{{key}}"}},
                    {
                        "type": "transform",
                        "dependencies": ["step-1"],
                        "config": {"output": "{{steps.step-1.output | upper}}"},
                    },
                ],
            }  # fmt: skip
        )
        execution = client.workflows.execute(workflow.id, input_data={"key": "value"})
        status = client.executions.get_status(execution.id)
        states = list(client.executions.stream(execution.id, poll_interval=0.1))
        return workflow.id, status, states[-1]


async def test_the_blocking_client_follows_auterity_s_sdk_example(served: Served) -> None:
    # In a thread: the server runs on this event loop, which a blocking call would stall.
    workflow_id, status, done = await asyncio.to_thread(run_blocking, served.url, served.key)
    assert status.workflow_id == workflow_id and status.status in ("running", "completed")
    assert done.succeeded and done.output("step-2") == "VALUE"
    assert done.output_data == {"step-1": "value", "step-2": "VALUE"}

    def missing() -> Any:
        with WeftClient(served.url, api_key=served.key) as client:
            return client.executions.get("exe_nope")

    with pytest.raises(NotFoundError) as caught:
        await asyncio.to_thread(missing)
    assert caught.value.code == "EXECUTION_NOT_FOUND"
