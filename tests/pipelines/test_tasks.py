"""sutazai's tasks through the real app and a real worker: a task is a durable
execution whose status and result are readable, a running one can be deleted
(cancelled), and nobody but its tenant sees it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from engine.ai.providers.local import EXTRACTIVE_MODEL
from engine.platform.settings import Settings
from tests.conftest import DocStack, make_tenant, worker_stack
from tests.pipelines.support import SQLITE_ONLY, assert_declared, create_workflow, until_step

pytestmark = pytest.mark.asyncio

GATED = {"name": "gated", "steps": [
    {"id": "gate", "type": "human_approval"},
    {"id": "done", "type": "transform", "dependencies": ["gate"],
     "config": {"output": "order {{order_id}} shipped"}},
]}  # fmt: skip


@pytest.fixture
async def stack(settings: Settings, temporal_env: WorkflowEnvironment) -> AsyncIterator[DocStack]:
    async with worker_stack(settings, temporal_env, "tasks") as api:
        yield api


async def submit(
    api: DocStack, body: dict[str, Any], headers: dict[str, str] | None = None
) -> httpx.Response:
    return await api.http.post("/api/v1/tasks", json=body, headers=headers or api.headers)


async def status(api: DocStack, task_id: str) -> dict[str, Any]:
    response = await api.http.get(f"/api/v1/tasks/{task_id}", headers=api.headers)
    assert response.status_code == 200, response.text
    return dict(response.json()["data"])


async def until(api: DocStack, task_id: str, *wanted: str) -> dict[str, Any]:
    for _ in range(600):
        task = await status(api, task_id)
        if task["status"] in wanted:
            return task
        await asyncio.sleep(0.1)
    raise AssertionError(f"{task_id} never reached {wanted}: {task}")


async def test_a_task_runs_and_its_result_is_readable(stack: DocStack) -> None:
    # sutazai's own test script, verbatim.
    created = await submit(
        stack, {"task_type": "automation", "payload": {"action": "test"}, "priority": 1}
    )
    assert created.status_code == 201, created.text
    body = created.json()
    task_id = body["task_id"]  # where sutazai's script reads it (jq -r '.task_id')
    assert task_id.startswith("task_") and body["data"]["task_id"] == task_id
    assert body["success"] is True and body["data"]["status"] == "queued"
    assert body["data"]["estimated_completion"] and body["data"]["priority"] == 1

    done = await until(stack, task_id, "completed", "failed")
    assert done["status"] == "completed" and done["progress"] == 1.0
    assert done["task_type"] == "automation" and done["execution_priority"] == "normal"
    assert done["started_at"] and done["completed_at"]
    result = await stack.http.get(f"/api/v1/tasks/{task_id}/result", headers=stack.headers)
    assert result.status_code == 200, result.text
    assert result.json()["data"]["result"] == {"action": "test"}
    shown = await stack.http.get(f"/api/v1/tasks/{task_id}", headers=stack.headers)
    assert_declared(stack, created, shown, result)

    prompt = await submit(stack, {"task_type": "ai_prompt", "priority": 2, "payload": {
        "system_prompt": "Copper conducts heat well. The sky is blue.",
        "prompt": "What conducts heat well?",
    }})  # fmt: skip
    assert prompt.status_code == 201, prompt.text
    prompt_id = prompt.json()["task_id"]
    assert (await until(stack, prompt_id, "completed", "failed"))["status"] == "completed"
    answer = (
        await stack.http.get(f"/api/v1/tasks/{prompt_id}/result", headers=stack.headers)
    ).json()["data"]
    assert "Copper conducts heat well." in answer["result"]
    assert list(answer["outputs"]) == ["step-1"]

    # An automation may carry its own steps and input.
    steps = [{"type": "transform", "config": {"output": "Hello {{name}}"}},
             {"type": "transform", "dependencies": ["step-1"],
              "config": {"output": "{{steps.step-1.output | upper}}"}}]  # fmt: skip
    payload = {"steps": steps, "input_data": {"name": "Ada"}}
    chained = await submit(stack, {"task_type": "automation", "payload": payload})
    chained_id = chained.json()["task_id"]
    assert (await until(stack, chained_id, "completed", "failed"))["status"] == "completed"
    outputs = (
        await stack.http.get(f"/api/v1/tasks/{chained_id}/result", headers=stack.headers)
    ).json()["data"]
    assert outputs["result"] == outputs["outputs"] == {"step-1": "Hello Ada", "step-2": "HELLO ADA"}

    # Each task is an execution of kind "task"; its pipeline is no workflow of the tenant.
    execution_id = done["execution_id"]
    execution = await stack.http.get(f"/api/executions/{execution_id}", headers=stack.headers)
    assert execution.status_code == 200 and execution.json()["status"] == "completed"
    step = (await stack.http.get(f"/api/executions/{prompt.json()['data']['execution_id']}",
                                 headers=stack.headers)).json()["results"]["step-1"]  # fmt: skip
    assert step["model"] == EXTRACTIVE_MODEL
    assert (await stack.http.get("/api/workflows", headers=stack.headers)).json()["total"] == 0


@SQLITE_ONLY
async def test_a_stored_workflow_runs_as_a_task_and_a_running_task_can_be_deleted(
    stack: DocStack,
) -> None:
    workflow_id = await create_workflow(stack, GATED)
    created = await submit(
        stack, {"task_type": workflow_id, "payload": {"order_id": "A-1"}, "priority": 3}
    )
    assert created.status_code == 201, created.text
    task = created.json()["data"]
    execution_id = task["execution_id"]
    await until_step(stack, execution_id, "gate", "waiting_approval")

    running = await status(stack, task["task_id"])
    assert running["status"] == "running" and running["workflow_id"] == workflow_id
    assert running["task_type"] == workflow_id and running["execution_priority"] == "urgent"
    assert running["total_steps"] == 2 and running["completed_steps"] == 0
    early = await stack.http.get(f"/api/v1/tasks/{task['task_id']}/result", headers=stack.headers)
    assert early.status_code == 409, early.text
    assert early.json()["error"]["code"] == "TASK_NOT_COMPLETED"
    assert early.json()["error"]["details"]["status"] == "running"

    deleted = await stack.http.delete(f"/api/v1/tasks/{task['task_id']}", headers=stack.headers)
    assert deleted.status_code == 204, deleted.text
    cancelled = await until(stack, task["task_id"], "cancelled", "completed", "failed")
    assert cancelled["status"] == "cancelled"
    again = await stack.http.delete(f"/api/v1/tasks/{task['task_id']}", headers=stack.headers)
    assert again.status_code == 409
    final = await stack.http.get(f"/api/v1/tasks/{task['task_id']}/result", headers=stack.headers)
    assert final.status_code == 200 and final.json()["data"]["status"] == "cancelled"

    # The same workflow, approved, finishes with the payload as its input.
    second = await submit(stack, {"task_type": workflow_id, "payload": {"order_id": "B-2"}})
    task_id, execution_id = second.json()["task_id"], second.json()["data"]["execution_id"]
    await until_step(stack, execution_id, "gate", "waiting_approval")
    approved = await stack.http.post(
        f"/api/v1/executions/{execution_id}/approvals/gate",
        json={"approved": True},
        headers=stack.headers,
    )
    assert approved.status_code == 200, approved.text
    assert (await until(stack, task_id, "completed", "failed"))["status"] == "completed"
    result = await stack.http.get(f"/api/v1/tasks/{task_id}/result", headers=stack.headers)
    assert result.json()["data"]["result"]["done"] == "order B-2 shipped"


@SQLITE_ONLY
async def test_unknown_invalid_and_other_tenants_tasks(stack: DocStack) -> None:
    created = await submit(stack, {"task_type": "automation", "payload": {"action": "x"}})
    task_id = created.json()["task_id"]
    execution_id = created.json()["data"]["execution_id"]
    await until(stack, task_id, "completed")
    http = stack.http

    for unknown in ("task_nope", "nope", execution_id):
        for method, path in (("GET", ""), ("GET", "/result"), ("DELETE", "")):
            response = await http.request(
                method, f"/api/v1/tasks/{unknown}{path}", headers=stack.headers
            )
            assert response.status_code == 404, (unknown, path, response.text)
    # A plain execution is no task.
    workflow_id = await create_workflow(stack, GATED)
    plain = await http.post(
        f"/api/workflows/{workflow_id}/execute",
        json={"input_data": {"order_id": "1"}},
        headers=stack.headers,
    )
    plain_id = plain.json()["execution_id"]
    as_task = "task_" + plain_id.removeprefix("exe_")
    assert (await http.get(f"/api/v1/tasks/{as_task}", headers=stack.headers)).status_code == 404
    await http.post(f"/api/executions/{plain_id}/cancel", headers=stack.headers)

    other = await make_tenant(stack.settings, "other")
    theirs = {"X-API-Key": other.key}
    for method, path in (("GET", ""), ("GET", "/result"), ("DELETE", "")):
        response = await http.request(method, f"/api/v1/tasks/{task_id}{path}", headers=theirs)
        assert response.status_code == 404, (path, response.text)
    foreign = await submit(stack, {"task_type": workflow_id, "payload": {}}, headers=theirs)
    assert foreign.status_code == 422  # their tenant has no such workflow

    for body, field in (
        ({"task_type": "no-such-kind", "payload": {}}, "task_type"),
        ({"task_type": "automation", "priority": 7}, "priority"),
        ({"task_type": "ai_prompt", "payload": {"prompt": "Hi {{name}}"}}, None),
        ({"task_type": "ai_prompt", "payload": {"prompt": "Hi {{na me}}"}}, None),
        ({"task_type": "automation", "payload": {"steps": "none"}}, "payload.steps"),
        ({"task_type": "human_approval", "payload": {}}, "task_type"),
    ):
        refused = await submit(stack, body)
        assert refused.status_code == 422, (body, refused.text)
        if field:
            assert refused.json()["error"]["details"]["field"] == field
    assert (await http.get("/api/workflows", headers=stack.headers)).json()["total"] == 1

    # Running a stored workflow as a task also needs the right to execute workflows.
    key = await http.post(
        "/api/v1/api-keys", json={"name": "tasks", "scopes": ["tasks:write", "tasks:read"]},
        headers=stack.headers,
    )  # fmt: skip
    limited = {"X-API-Key": key.json()["data"]["key"]}
    assert (await submit(stack, {"task_type": workflow_id}, headers=limited)).status_code == 403
    assert (await submit(stack, {"task_type": "automation"}, headers=limited)).status_code == 201
