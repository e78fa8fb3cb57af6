"""auterity's analytics through the real app and a real worker: the dashboard and a
workflow's metrics count exactly the executions and model calls the test made,
and another tenant sees none of them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from engine.ai.providers.local import EXTRACTIVE_MODEL
from engine.platform.settings import Settings
from tests.conftest import DocStack, make_tenant, worker_stack
from tests.pipelines.support import (
    SQLITE_ONLY,
    assert_declared,
    create_workflow,
    execute,
    finish,
    until_step,
)

pytestmark = pytest.mark.asyncio

ANSWER = {"name": "answer", "steps": [
    {"id": "facts", "type": "transform", "config": {"output": "Copper conducts heat well."}},
    {"id": "ask", "type": "ai_prompt", "dependencies": ["facts"],
     "config": {"system_prompt": "{{steps.facts.output}}", "prompt": "What conducts heat?"}},
]}  # fmt: skip
BROKEN = {"name": "broken", "steps": [
    {"id": "check", "type": "condition", "config": {"value": 1, "operator": "bogus"}},
]}  # fmt: skip
GATED = {"name": "gated", "steps": [{"id": "gate", "type": "human_approval"}]}


@pytest.fixture
async def stack(settings: Settings, temporal_env: WorkflowEnvironment) -> AsyncIterator[DocStack]:
    async with worker_stack(settings, temporal_env, "analytics") as api:
        yield api


async def dashboard(api: DocStack, headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = await api.http.get("/api/analytics/dashboard", headers=headers or api.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def metrics(api: DocStack, workflow_id: str) -> dict[str, Any]:
    response = await api.http.get(
        f"/api/analytics/workflows/{workflow_id}/metrics", headers=api.headers
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_the_numbers_are_the_executions_the_tenant_ran(stack: DocStack) -> None:
    empty = await dashboard(stack)
    assert empty["overview"] == {"total_workflows": 0, "active_executions": 0,
                                 "total_executions_today": 0, "success_rate": 0.0,
                                 "avg_execution_time": 0.0}  # fmt: skip
    answer = await create_workflow(stack, ANSWER)
    broken = await create_workflow(stack, BROKEN)
    gated = await create_workflow(stack, GATED)
    for workflow_id in (answer, answer, broken):
        done = await finish(stack, await execute(stack, workflow_id, {}))
        assert done["status"] == ("failed" if workflow_id == broken else "completed"), done
    waiting = await execute(stack, gated, {})
    await until_step(stack, waiting, "gate", "waiting_approval")

    board = await dashboard(stack)
    overview = board["overview"]
    assert overview["total_workflows"] == 3
    assert overview["active_executions"] == 1
    assert overview["total_executions_today"] == 4
    assert overview["success_rate"] == 66.67  # 2 of 3 finished: a percent, as auterity shows
    assert overview["avg_execution_time"] > 0
    usage = board["usage_stats"]
    assert usage["ai_requests_today"] == 2 and usage["most_used_model"] == EXTRACTIVE_MODEL
    assert usage["total_cost_today"] == 0.0  # the local provider costs nothing
    performance = board["performance_metrics"]
    assert performance["error_rate"] == 0.0 and performance["avg_response_time"] > 0
    assert performance["uptime"] == 100.0

    cancelled = await stack.http.post(f"/api/executions/{waiting}/cancel", headers=stack.headers)
    assert cancelled.status_code == 202
    assert (await finish(stack, waiting, approve=False))["status"] == "cancelled"
    # The dashboard reads the execution index, which the run's last activity writes
    # a moment after the run itself reports "cancelled".
    for _ in range(100):
        after = (await dashboard(stack))["overview"]
        if after["active_executions"] == 0:
            break
        await asyncio.sleep(0.1)
    assert after["active_executions"] == 0 and after["success_rate"] == 66.67  # not a failure

    ran = await metrics(stack, answer)
    assert (ran["total_executions"], ran["completed_executions"], ran["failed_executions"]) == (
        2, 2, 0)  # fmt: skip
    assert ran["success_rate"] == 100.0 and ran["ai_requests"] == 2
    assert ran["models"] == {EXTRACTIVE_MODEL: 2} and ran["last_executed_at"]
    assert ran["avg_execution_time"] > 0 and ran["avg_duration_ms"] >= 0
    assert [(s["step_id"], s["completed"]) for s in ran["steps"]] == [("facts", 2), ("ask", 2)]
    failed = await metrics(stack, broken)
    assert (failed["total_executions"], failed["failed_executions"]) == (1, 1)
    assert failed["success_rate"] == 0.0 and failed["ai_requests"] == 0
    assert failed["steps"][0]["failed"] == 1 and failed["steps"][0]["success_rate"] == 0.0
    stopped = await metrics(stack, gated)
    assert_declared(
        stack,
        await stack.http.get("/api/analytics/dashboard", headers=stack.headers),
        await stack.http.get(f"/api/analytics/workflows/{answer}/metrics", headers=stack.headers),
    )
    assert stopped["cancelled_executions"] == 1 and stopped["steps"][0]["cancelled"] == 1


@SQLITE_ONLY
async def test_another_tenant_sees_zeros_and_no_foreign_workflow(stack: DocStack) -> None:
    answer = await create_workflow(stack, ANSWER)
    await finish(stack, await execute(stack, answer, {}))
    assert (await dashboard(stack))["overview"]["total_executions_today"] == 1

    other = await make_tenant(stack.settings, "other")
    theirs = {"X-API-Key": other.key}
    board = await dashboard(stack, theirs)
    assert board["overview"] == {"total_workflows": 0, "active_executions": 0,
                                 "total_executions_today": 0, "success_rate": 0.0,
                                 "avg_execution_time": 0.0}  # fmt: skip
    assert board["usage_stats"] == {"ai_requests_today": 0, "total_cost_today": 0.0,
                                    "tokens_consumed": 0, "most_used_model": None}  # fmt: skip
    for workflow_id in (answer, "wf_nope"):
        response = await stack.http.get(
            f"/api/analytics/workflows/{workflow_id}/metrics", headers=theirs
        )
        assert response.status_code == 404 and response.json()["error"]["code"] == "NOT_FOUND"

    deleted = await stack.http.delete(f"/api/workflows/{answer}", headers=stack.headers)
    assert deleted.status_code == 204
    gone = await stack.http.get(f"/api/analytics/workflows/{answer}/metrics", headers=stack.headers)
    assert gone.status_code == 404
    assert (await dashboard(stack))["overview"]["total_workflows"] == 0
