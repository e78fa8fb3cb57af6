"""Pipeline executions report through the events outbox: started with the execution
row, each step as it completes or starts to wait, and the outcome with the index
(the API, a real worker and the Temporal dev server; the events table is read
directly)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from engine.db.connection import create_engine, create_sessionmaker
from engine.db.tables import Event
from engine.pipelines.executions import record_step_events
from engine.platform.settings import Settings
from tests.conftest import DocStack, worker_stack
from tests.fake_providers import FakeProvider, serve
from tests.models_support import model_settings, openai_config
from tests.pipelines.support import SQLITE_ONLY, create_workflow, execute, finish, until_step
from workflows.pipeline_payloads import StepEvent, StepEvents

pytestmark = pytest.mark.asyncio

ENDS = ("workflow.completed", "workflow.failed", "workflow.cancelled")


@pytest.fixture
async def api(settings: Settings, temporal_env: WorkflowEnvironment) -> AsyncIterator[DocStack]:
    async with worker_stack(settings, temporal_env, "events") as stack:
        yield stack


async def events_of(settings: Settings, execution_id: str) -> list[Event]:
    """The execution's events in the outbox, oldest first."""
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            rows = await session.scalars(
                select(Event)
                .where(Event.subject == execution_id)
                .order_by(Event.created_at, Event.id)
            )
            return list(rows)
    finally:
        await engine.dispose()


async def until_ended(settings: Settings, execution_id: str) -> list[Event]:
    """The events once the outcome's event is in (it is written after the run's status
    query already says it ended)."""
    for _ in range(300):
        found = await events_of(settings, execution_id)
        if any(event.type in ENDS for event in found):
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"{execution_id} has no outcome event: {found}")


def of_type(found: list[Event], kind: str) -> list[dict[str, Any]]:
    return [event.data for event in found if event.type == kind]


async def test_an_execution_reports_its_start_each_step_and_its_end_once(api: DocStack) -> None:
    workflow_id = await create_workflow(
        api,
        {
            "name": "Reported",
            "steps": [
                {"id": "draft", "type": "transform", "config": {"output": {"n": "{{n}}"}}},
                {"id": "gate", "type": "human_approval", "dependencies": ["draft"]},
                {"id": "mail", "type": "email", "dependencies": ["gate"],
                 "config": {"to": "ada@example.com", "subject": "n={{steps.draft.output.n}}"}},
            ],
        },
    )  # fmt: skip
    execution_id = await execute(api, workflow_id, {"n": 3})
    assert (await finish(api, execution_id))["status"] == "completed"
    found = await until_ended(api.settings, execution_id)

    kinds = [event.type for event in found]
    assert kinds.count("workflow.started") == 1
    assert kinds.count("workflow.completed") == 1
    assert kinds.count("workflow.step_completed") == 3
    assert kinds[0] == "workflow.started" and kinds[-1] == "workflow.completed"
    assert {event.tenant_id for event in found} == {api.tenant.tenant_id}

    (started,) = of_type(found, "workflow.started")
    assert started == {
        "execution_id": execution_id,
        "workflow_id": workflow_id,
        "workflow_name": "Reported",
        "status": "running",
        "total_steps": 3,
    }
    steps = of_type(found, "workflow.step_completed")
    assert [step["step_id"] for step in steps] == ["draft", "gate", "mail"]
    assert steps[0] == {
        "execution_id": execution_id,
        "workflow_id": workflow_id,
        "step_id": "draft",
        "step_name": "draft",
        "step_type": "transform",
        "status": "completed",
        "progress": {"completed_steps": 1, "total_steps": 3},
    }
    assert [step["progress"]["completed_steps"] for step in steps] == [1, 2, 3]
    (waiting,) = of_type(found, "workflow.progress")
    assert waiting["step_id"] == "gate" and waiting["status"] == "waiting_approval"
    assert waiting["progress"] == {"completed_steps": 1, "total_steps": 3}

    (completed,) = of_type(found, "workflow.completed")
    assert completed["execution_id"] == execution_id
    assert completed["workflow_id"] == workflow_id
    assert completed["status"] == "completed"
    assert isinstance(completed["duration_ms"], int) and completed["duration_ms"] >= 0
    assert completed["output_data"]["draft"] == {"n": 3}
    assert set(completed["output_data"]) == {"draft", "gate", "mail"}
    assert completed["result"] == completed["output_data"]  # zentoria's name for it


@pytest.fixture
async def model_api(
    settings: Settings, temporal_env: WorkflowEnvironment
) -> AsyncIterator[DocStack]:
    """The stack with an OpenAI-compatible provider whose fail-404 model is unknown upstream."""
    async with serve(
        FakeProvider("openai", models=["gpt-4", "fail-404"], api_key="sk-fake")
    ) as model:
        configured = model_settings(settings, {"openai": openai_config(model)})
        async with worker_stack(configured, temporal_env, "agent-events") as stack:
            yield stack


@SQLITE_ONLY
async def test_a_failed_agent_step_reports_the_failure_and_an_agent_error(
    model_api: DocStack,
) -> None:
    api = model_api
    made = await api.http.post(
        "/api/v1/agents",
        json={"name": "Unserved", "type": "researcher",
              "config": {"model_preferences": {"primary_model": "fail-404"}}},
        headers=api.headers,
    )  # fmt: skip
    assert made.status_code == 201, made.text
    agent_id = made.json()["data"]["id"]
    workflow_id = await create_workflow(
        api,
        {"name": "Agent run",
         "steps": [{"id": "research", "type": "agent", "agent_id": agent_id,
                    "config": {"prompt": "Find sources"}}]},
    )  # fmt: skip
    execution_id = await execute(api, workflow_id, {})
    body = await finish(api, execution_id)
    assert (body["status"], body["error_code"]) == ("failed", "MODEL_NOT_AVAILABLE")
    found = await until_ended(api.settings, execution_id)

    (failed,) = of_type(found, "workflow.failed")
    assert failed["status"] == "failed" and failed["workflow_id"] == workflow_id
    assert failed["error"]["code"] == "MODEL_NOT_AVAILABLE"
    assert "research" in failed["error"]["message"]
    (agent_error,) = of_type(found, "agent.error")
    assert agent_error["execution_id"] == execution_id
    assert (agent_error["step_id"], agent_error["agent_id"]) == ("research", agent_id)
    assert agent_error["error"]["code"] == "MODEL_NOT_AVAILABLE"
    assert of_type(found, "workflow.step_completed") == []
    assert of_type(found, "workflow.completed") == []


@SQLITE_ONLY
async def test_cancelled_and_timed_out_executions_report_their_end(api: DocStack) -> None:
    workflow_id = await create_workflow(
        api, {"name": "Gate", "steps": [{"id": "gate", "type": "human_approval"}]}
    )
    cancelled = await execute(api, workflow_id, {})
    await until_step(api, cancelled, "gate", "waiting_approval")
    response = await api.http.post(f"/api/executions/{cancelled}/cancel", headers=api.headers)
    assert response.status_code in (200, 202), response.text
    found = await until_ended(api.settings, cancelled)
    (end,) = of_type(found, "workflow.cancelled")
    assert end["status"] == "cancelled" and end["execution_id"] == cancelled
    assert [event.type for event in found] == [
        "workflow.started",
        "workflow.progress",
        "workflow.cancelled",
    ]

    started = await api.http.post(
        f"/api/v1/workflows/{workflow_id}/execute",
        json={"input_data": {}, "options": {"timeout_seconds": 1}},
        headers=api.headers,
    )
    assert started.status_code == 202, started.text
    timed_out = started.json()["data"]["execution_id"]
    found = await until_ended(api.settings, timed_out)
    (end,) = of_type(found, "workflow.failed")
    assert end["status"] == "failed" and end["error"]["code"] == "TIMEOUT"


async def test_step_events_are_written_once_however_often_a_batch_is_retried(
    settings: Settings,
) -> None:
    def batch(*step_ids: str) -> StepEvents:
        return StepEvents(
            execution_id="exe_retried",
            tenant_id="ten_x",
            definition_id="wf_x",
            events=[
                StepEvent(kind="step_completed", step_id=step_id, step_name=step_id,
                          step_type="transform", completed_steps=n, total_steps=3)
                for n, step_id in enumerate(step_ids, 1)
            ],
        )  # fmt: skip

    engine = create_engine(settings)
    try:
        sessions = create_sessionmaker(engine)
        for step_ids, added in ((("a", "b"), 2), (("a", "b"), 0), (("b", "c"), 1)):
            async with sessions() as session:
                assert await record_step_events(session, batch(*step_ids)) == added
                await session.commit()
    finally:
        await engine.dispose()
    found = await events_of(settings, "exe_retried")
    assert sorted(event.dedupe_key or "" for event in found) == [
        "exe_retried:a:step_completed",
        "exe_retried:b:step_completed",
        "exe_retried:c:step_completed",
    ]
    assert {event.type for event in found} == {"workflow.step_completed"}
    assert all(event.created_at is not None and event.seq is None for event in found)
    assert found[0].data["progress"] == {"completed_steps": 1, "total_steps": 3}
