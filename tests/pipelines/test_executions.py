"""Pipeline executions end to end: the API, a real worker, the Temporal dev server, a
fake OpenAI-compatible provider and a webhook receiver, all on loopback."""

from __future__ import annotations

import asyncio
import copy
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from temporalio.testing import WorkflowEnvironment

from engine.platform.settings import Settings
from tests.conftest import DocStack, make_tenant, worker_stack
from tests.fake_providers import FakeProvider, serve, serve_app
from tests.models_support import ledger, model_settings, openai_config
from tests.pipelines.support import ONBOARDING, emails

pytestmark = pytest.mark.asyncio

ONBOARDING_RUN = {
    "input_data": {
        "customer_email": "john.doe@example.com",
        "customer_name": "John Doe",
        "customer_industry": "Technology",
    },
    "priority": "high",
}
MODELS = ["gpt-4", "fail-500", "fail-hang"]


@dataclass
class Receiver:
    """A CRM on loopback: records what it receives (and counts by Idempotency-Key)."""

    url: str = ""
    requests: list[tuple[dict[str, str], Any]] = field(default_factory=list)

    def keys(self) -> list[str]:
        return [headers.get("idempotency-key", "") for headers, _ in self.requests]


@asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()

    async def customers(request: Request) -> JSONResponse:
        found.requests.append((dict(request.headers), await request.json()))
        return JSONResponse({"id": "cust_1", "created": True}, status_code=201)

    app = Starlette(routes=[Route("/customers", customers, methods=["POST"])])
    async with serve_app(app) as url:
        found.url = url
        yield found


@dataclass
class PipelineStack:
    api: DocStack
    crm: Receiver
    model: FakeProvider

    async def create(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> str:
        response = await self.api.http.post(
            "/api/workflows", json=body, headers=headers or self.api.headers
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    async def execute(
        self, workflow_id: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> httpx.Response:
        return await self.api.http.post(
            f"/api/workflows/{workflow_id}/execute", json=body, headers=headers or self.api.headers
        )

    async def read(self, execution_id: str) -> dict[str, Any]:
        response = await self.api.http.get(
            f"/api/executions/{execution_id}", headers=self.api.headers
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def until(self, execution_id: str, *statuses: str, **step: str) -> dict[str, Any]:
        """Poll until the execution (or one step: ``step_id=status``) reaches a status."""
        for _ in range(600):
            body = await self.read(execution_id)
            if step:
                ((step_id, wanted),) = step.items()
                if body["results"].get(step_id, {}).get("status") == wanted:
                    return body
            elif body["status"] in statuses:
                return body
            await asyncio.sleep(0.1)
        raise AssertionError(f"{execution_id} never reached {statuses or step}: {body}")


@pytest.fixture
async def stack(
    settings: Settings, temporal_env: WorkflowEnvironment
) -> AsyncIterator[PipelineStack]:
    async with (
        serve(FakeProvider("openai", models=MODELS, api_key="sk-fake")) as model,
        receiver() as crm,
    ):
        port = crm.url.rsplit(":", 1)[1]
        configured = model_settings(
            settings,
            {"openai": openai_config(model)},
            # The operator opens the CRM's port and nothing else of this machine.
            tenant_egress_allowed_hosts=[f"127.0.0.1:{port}"],
        )
        async with worker_stack(configured, temporal_env, "pipelines") as api:
            yield PipelineStack(api, crm, model)


def onboarding(crm: Receiver) -> dict[str, Any]:
    """auterity's onboarding example, verbatim but for the CRM URL."""
    body = copy.deepcopy(ONBOARDING)
    body["steps"][1]["config"]["url"] = f"{crm.url}/customers"
    return body


async def test_the_auterity_onboarding_example_runs_with_its_variables_filled(
    stack: PipelineStack,
) -> None:
    workflow_id = await stack.create(onboarding(stack.crm))
    started = await stack.execute(workflow_id, ONBOARDING_RUN)
    assert started.status_code == 202, started.text
    execution_id = started.json()["execution_id"]
    assert started.json()["progress"]["total_steps"] == 3

    done = await stack.until(execution_id, "completed", "failed")

    assert done["status"] == "completed", done
    ((headers, body),) = stack.crm.requests
    assert body == {"email": "john.doe@example.com", "name": "John Doe",
                    "source": "auterity_onboarding"}  # fmt: skip
    assert headers["authorization"] == "Bearer crm-token"
    (mail,) = await emails(stack.api.settings, stack.api.tenant.tenant_id)
    assert mail.to == ["john.doe@example.com"] and mail.subject == "Welcome to Auterity!"
    assert mail.status == "stored"  # no SMTP server configured: kept, readable, not lost
    results = done["results"]
    assert list(results) == ["welcome-email", "setup-account", "ai-personalization"]
    assert results["setup-account"]["output"] == {"id": "cust_1", "created": True}
    assert results["setup-account"]["detail"]["status_code"] == 201
    ai = results["ai-personalization"]
    assert ai["status"] == "completed" and ai["model"] == "gpt-4"
    assert ai["tokens_used"] > 0 and ai["cost"] == ai["cost_usd"]
    (prompt,) = [r for r in stack.model.requests if r.path == "/v1/chat/completions"]
    assert prompt.body["messages"][-1]["content"] == (
        "Create personalized content for John Doe based on their industry: Technology"
    )
    assert done["progress"] == {"completed_steps": 3, "total_steps": 3, "current_step": None}
    assert done["logs"][0]["message"] == "Workflow execution started"
    assert "Step 'Setup Customer Account' completed" in [log["message"] for log in done["logs"]]
    assert done["duration"] is not None and done["completed_at"] is not None


async def test_a_failing_model_falls_back_and_the_ledger_shows_both_calls(
    stack: PipelineStack,
) -> None:
    workflow_id = await stack.create(
        {
            "name": "fallback",
            "steps": [
                {
                    "type": "ai_prompt",
                    "name": "Answer",
                    "config": {"prompt": "hello", "model": "fail-500", "fallback_model": "gpt-4"},
                },
            ],
        }  # fmt: skip
    )
    execution_id = (await stack.execute(workflow_id, {"input_data": {}})).json()["execution_id"]

    done = await stack.until(execution_id, "completed", "failed")

    assert done["status"] == "completed", done
    step = done["results"]["step-1"]
    assert step["model"] == "gpt-4" and step["detail"]["fallback_from"] == "openai/fail-500"
    rows = await ledger(stack.api.settings, stack.api.tenant.tenant_id)
    assert [(row.model, row.success) for row in rows] == [("fail-500", False), ("gpt-4", True)]
    assert {row.workflow_id for row in rows} == {f"run-{execution_id}"}


async def test_a_tenant_url_never_reaches_loopback_unless_the_operator_opened_that_port(
    stack: PipelineStack, temporal_address: str
) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    closed_port = listener.getsockname()[1]
    try:
        for url in (
            f"http://{temporal_address}/api/v1/namespaces",  # the Temporal server itself
            f"http://127.0.0.1:{closed_port}/",  # loopback, a port nobody opened
            f"http://localhost:{closed_port}/",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1/",
        ):
            workflow_id = await stack.create(
                {"name": "probe", "steps": [{"type": "api_call", "config": {"url": url}}]}
            )
            started = await stack.execute(workflow_id, {"input_data": {}})
            done = await stack.until(started.json()["execution_id"], "completed", "failed")
            assert done["status"] == "failed", url
            assert done["results"]["step-1"]["error_code"] == "EGRESS_DENIED", done
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing ever connected
    finally:
        listener.close()


async def test_approval_resumes_and_rejection_fails_with_a_clear_status(
    stack: PipelineStack,
) -> None:
    steps = [
        {"id": "review", "type": "human_approval", "name": "Manager review"},
        {"id": "notify", "type": "api_call", "dependencies": ["review"],
         "config": {"url": f"{stack.crm.url}/customers", "method": "POST",
                    "body": {"approved_by": "{{steps.review.output.decided_by}}"}}},
    ]  # fmt: skip
    workflow_id = await stack.create({"name": "approval", "steps": steps})
    headers = stack.api.headers

    approved = (await stack.execute(workflow_id, {"input_data": {}})).json()["execution_id"]
    await stack.until(approved, review="waiting_approval")
    path = f"/api/v1/executions/{approved}/approvals"
    wrong = await stack.api.http.post(f"{path}/notify", json={"approved": True}, headers=headers)
    assert wrong.status_code == 409, wrong.text
    decision = await stack.api.http.post(
        f"{path}/review", json={"approved": True, "comment": "fine"}, headers=headers
    )
    assert decision.status_code == 200, decision.text
    assert decision.json()["data"]["approved"] is True
    done = await stack.until(approved, "completed", "failed")
    assert done["status"] == "completed"
    ((_, body),) = stack.crm.requests
    assert body == {"approved_by": decision.json()["data"]["decided_by"]}

    rejected = (await stack.execute(workflow_id, {"input_data": {}})).json()["execution_id"]
    await stack.until(rejected, review="waiting_approval")
    answer = await stack.api.http.post(
        f"/api/v1/executions/{rejected}/approvals/review",
        json={"approved": False, "comment": "no"},
        headers=headers,
    )
    assert answer.status_code == 200
    failed = await stack.until(rejected, "failed", "completed")
    assert failed["status"] == "failed" and failed["error_code"] == "APPROVAL_REJECTED"
    assert failed["results"]["notify"]["status"] == "pending"
    assert len(stack.crm.requests) == 1  # the rejected run never called the CRM


async def test_editing_a_definition_does_not_change_a_running_execution(
    stack: PipelineStack,
) -> None:
    definition = {"name": "versions", "steps": [
        {"id": "gate", "type": "human_approval"},
        {"id": "result", "type": "transform", "dependencies": ["gate"],
         "config": {"output": "version one"}},
    ]}  # fmt: skip
    workflow_id = await stack.create(definition)
    execution_id = (await stack.execute(workflow_id, {"input_data": {}})).json()["execution_id"]
    await stack.until(execution_id, gate="waiting_approval")

    edited = copy.deepcopy(definition)
    edited["steps"][1]["config"]["output"] = "version two"
    updated = await stack.api.http.put(
        f"/api/workflows/{workflow_id}", json=edited, headers=stack.api.headers
    )
    assert updated.status_code == 200, updated.text
    await stack.api.http.post(
        f"/api/v1/executions/{execution_id}/approvals/gate",
        json={"approved": True},
        headers=stack.api.headers,
    )

    done = await stack.until(execution_id, "completed", "failed")
    assert done["results"]["result"]["output"] == "version one"


async def test_cancel_stops_a_long_step_within_seconds(stack: PipelineStack) -> None:
    workflow_id = await stack.create(
        {
            "name": "slow",
            "steps": [{"type": "ai_prompt", "config": {"prompt": "x", "model": "fail-hang"}}],
        }
    )
    execution_id = (await stack.execute(workflow_id, {"input_data": {}})).json()["execution_id"]
    await stack.until(execution_id, **{"step-1": "running"})
    for _ in range(100):  # the call has reached the provider
        if stack.model.count("/v1/chat/completions"):
            break
        await asyncio.sleep(0.05)

    cancelled = await stack.api.http.post(
        f"/api/executions/{execution_id}/cancel", headers=stack.api.headers
    )
    assert cancelled.status_code == 202, cancelled.text
    done = await stack.until(execution_id, "cancelled", "failed", "completed")

    assert done["status"] == "cancelled"
    assert done["results"]["step-1"]["status"] == "cancelled"
    again = await stack.api.http.post(
        f"/api/executions/{execution_id}/cancel", headers=stack.api.headers
    )
    assert again.status_code == 409


async def test_starts_are_idempotent_and_bad_input_is_refused(stack: PipelineStack) -> None:
    workflow_id = await stack.create(onboarding(stack.crm))
    keyed = {**stack.api.headers, "Idempotency-Key": "run-once"}
    first = await stack.execute(workflow_id, ONBOARDING_RUN, headers=keyed)
    second = await stack.execute(workflow_id, ONBOARDING_RUN, headers=keyed)
    assert first.json()["execution_id"] == second.json()["execution_id"]
    await stack.until(first.json()["execution_id"], "completed", "failed")
    assert len(stack.crm.requests) == 1

    missing = await stack.execute(workflow_id, {"input_data": {"customer_name": "Ann"}})
    assert missing.status_code == 422, missing.text
    error = missing.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert error["details"]["reason"] == "UNKNOWN_VARIABLE"
    assert error["details"]["variable"] == "customer_email"

    unknown = await stack.execute("wf_nope", ONBOARDING_RUN)
    assert unknown.status_code == 404


async def test_another_tenant_cannot_see_execute_or_cancel(stack: PipelineStack) -> None:
    workflow_id = await stack.create(
        {"name": "private", "steps": [{"id": "gate", "type": "human_approval"}]}
    )
    execution_id = (await stack.execute(workflow_id, {"input_data": {}})).json()["execution_id"]
    await stack.until(execution_id, gate="waiting_approval")
    other = await make_tenant(stack.api.settings, "other")
    theirs = {"X-API-Key": other.key}
    http = stack.api.http

    assert (await stack.execute(workflow_id, {"input_data": {}}, headers=theirs)).status_code == 404
    assert (await http.get(f"/api/executions/{execution_id}", headers=theirs)).status_code == 404
    z2 = f"/api/v1/workflows/{workflow_id}/executions/{execution_id}"
    assert (await http.get(z2, headers=theirs)).status_code == 404
    cancel = await http.post(f"/api/executions/{execution_id}/cancel", headers=theirs)
    assert cancel.status_code == 404
    approve = await http.post(
        f"/api/v1/executions/{execution_id}/approvals/gate", json={"approved": True},
        headers=theirs,
    )  # fmt: skip
    assert approve.status_code == 404
    listed = await http.get("/api/executions", headers=theirs)
    assert listed.json()["total"] == 0

    mine = await http.get(z2, headers=stack.api.headers)
    assert mine.status_code == 200 and mine.json()["data"]["status"] == "running"
    await http.post(f"/api/executions/{execution_id}/cancel", headers=stack.api.headers)


async def test_scheduled_at_delays_the_start_and_priority_is_accepted(
    stack: PipelineStack,
) -> None:
    from datetime import UTC, datetime, timedelta

    workflow_id = await stack.create(
        {"name": "later", "steps": [{"type": "transform", "config": {"output": "{{x}}"}}]}
    )
    when = datetime.now(UTC) + timedelta(seconds=6)
    started = await stack.execute(
        workflow_id,
        {"input_data": {"x": 1}, "priority": "urgent", "scheduled_at": when.isoformat()},
    )
    assert started.status_code == 202, started.text
    assert started.json()["status"] == "scheduled"
    execution_id = started.json()["execution_id"]
    status = (await stack.read(execution_id))["status"]
    if datetime.now(UTC) < when:  # a loaded machine may only get here after the start
        assert status == "scheduled"

    done = await stack.until(execution_id, "completed", "failed")
    assert done["status"] == "completed" and done["priority"] == "urgent"
    assert datetime.fromisoformat(done["completed_at"]) >= when
    bad = await stack.execute(workflow_id, {"input_data": {"x": 1}, "priority": "asap"})
    assert bad.status_code == 422
