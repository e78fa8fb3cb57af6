"""z2 consent end to end: ``/api/v1/consent/…`` and its enforcement on pipelines
that declare ``data_categories``.

The API, a real worker and the Temporal dev server; a second user of the tenant
and a second tenant are made with the engine's own account functions, and an
``api_call`` step calls a receiver on loopback (opened for tenant URLs through
``tenant_egress_allowed_hosts``), so a step that must never run is seen not to.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from temporalio.testing import WorkflowEnvironment

from engine.db.connection import create_engine, create_sessionmaker, transaction
from engine.db.tables import Execution, Tenant, User
from engine.identity.accounts import create_api_key, create_user
from engine.identity.principals import USER_SCOPES
from engine.platform.settings import Settings
from tests.conftest import DocStack, TenantFixture, make_tenant, worker_stack
from tests.fake_providers import serve_app
from tests.pipelines.support import (
    SQLITE_ONLY,
    assert_declared,
    create_workflow,
    finish,
    read_execution,
    until_step,
)
from tests.pipelines.test_pipeline_events import of_type, until_ended

pytestmark = pytest.mark.asyncio

# z2's "Request user consent for data processing" body, verbatim.
Z2_REQUEST: dict[str, Any] = {
    "request_type": "data_processing",
    "description": "Process customer data for analytics",
    "data_categories": ["personal_info", "usage_data"],
    "purpose": "analytics",
    "retention_period": "2_years",
}


@dataclass
class Receiver:
    """The tenant's system: records every request a pipeline's api_call sends it."""

    url: str = ""
    calls: list[dict[str, Any]] = field(default_factory=list)


@asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()

    async def crm(request: Request) -> JSONResponse:
        found.calls.append(await request.json())
        return JSONResponse({"ok": True})

    async with serve_app(Starlette(routes=[Route("/crm", crm, methods=["POST"])])) as url:
        found.url = url
        yield found


@dataclass
class ConsentStack:
    api: DocStack
    receiver: Receiver
    temporal: WorkflowEnvironment
    subject_id: str  # the tenant's default user (an admin of the tenant)

    async def call(
        self, method: str, path: str, status: int, headers: dict[str, str] | None = None, **kw: Any
    ) -> dict[str, Any]:
        response = await self.api.http.request(
            method, path, headers=headers or self.api.headers, **kw
        )
        assert response.status_code == status, response.text
        assert_declared(self.api, response)
        return dict(response.json())


@pytest.fixture
async def stack(
    settings: Settings, temporal_env: WorkflowEnvironment
) -> AsyncIterator[ConsentStack]:
    async with receiver() as found:
        port = found.url.rsplit(":", 1)[1]
        configured = settings.model_copy(
            update={"tenant_egress_allowed_hosts": [f"127.0.0.1:{port}"]}
        )
        async with worker_stack(configured, temporal_env, "consent") as api:
            subject = await default_user(api.settings, api.tenant.tenant_id)
            yield ConsentStack(api, found, temporal_env, subject)


async def default_user(settings: Settings, tenant_id: str) -> str:
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            user_id = await session.scalar(select(User.id).where(User.tenant_id == tenant_id))
    finally:
        await engine.dispose()
    assert user_id is not None
    return str(user_id)


async def add_user(settings: Settings, tenant_id: str, email: str) -> tuple[str, dict[str, str]]:
    """Another (non-admin) user of the tenant, and headers with their API key."""
    engine = create_engine(settings)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            tenant = await session.get(Tenant, tenant_id)
            assert tenant is not None
            user = await create_user(session, tenant, email, "a-long-password", role="user")
            issued = await create_api_key(session, user, "test key", sorted(USER_SCOPES))
            user_id = user.id
    finally:
        await engine.dispose()
    return user_id, {"X-API-Key": issued.secret}


async def executions_of(settings: Settings, tenant_id: str) -> list[Execution]:
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            rows = await session.scalars(select(Execution).where(Execution.tenant_id == tenant_id))
            return list(rows)
    finally:
        await engine.dispose()


async def runs_of(temporal: WorkflowEnvironment, tenant_id: str) -> list[str]:
    """The tenant's pipeline runs Temporal knows (by the WeftTenant search attribute)."""
    query = f'WeftTenant = "{tenant_id}" AND WeftKind = "pipeline"'
    return [run.id async for run in temporal.client.list_workflows(query)]


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["data"] is None
    return dict(body["error"])


def z2_graph(name: str, **definition: Any) -> dict[str, Any]:
    """A z2 workflow: personal_info for every node, usage_data for the second one."""
    return {
        "name": name,
        "definition": {
            "nodes": [
                {"id": "profile", "type": "transform", "config": {"output": {"who": "{{who}}"}}},
                {"id": "usage", "type": "transform",
                 "config": {"output": "{{steps.profile.output.who}} used it",
                            "data_categories": ["usage_data"]}},
            ],
            "edges": [{"source": "profile", "target": "usage"}],
            "data_categories": ["personal_info"],
            **definition,
        },
    }  # fmt: skip


def waiting_pipeline(crm_url: str) -> dict[str, Any]:
    """auterity steps on personal_info: wait for a person, then call the CRM."""
    return {
        "name": "Review, then update the CRM",
        "data_categories": ["personal_info"],
        "steps": [
            {"id": "review", "type": "human_approval"},
            {"id": "crm", "type": "api_call", "dependencies": ["review"],
             "config": {"url": crm_url, "method": "POST", "body": {"who": "{{who}}"}}},
        ],
    }  # fmt: skip


async def z2_execute(stack: ConsentStack, workflow_id: str, input_data: dict[str, Any]) -> str:
    body = await stack.call(
        "POST", f"/api/v1/workflows/{workflow_id}/execute", 202, json={"input_data": input_data}
    )
    return str(body["data"]["execution_id"])


async def test_request_grant_and_a_pipeline_on_those_categories_completes(
    stack: ConsentStack,
) -> None:
    made = (await stack.call("POST", "/api/v1/consent/request", 201, json=Z2_REQUEST))["data"]
    assert made["status"] == "pending" and made["consent_id"] == made["id"]
    assert made["id"].startswith("cns_") and made["user_id"] == stack.subject_id
    assert {k: made[k] for k in Z2_REQUEST} == Z2_REQUEST
    assert made["requested_by"] == stack.subject_id and made["granted_at"] is None

    status = (await stack.call("GET", "/api/v1/consent/status", 200))["data"]
    assert status["user_id"] == stack.subject_id and status["total"] == 1
    assert [(c["id"], c["status"]) for c in status["consents"]] == [(made["id"], "pending")]
    assert status["granted_categories"] == []

    # The workflow declares personal_info for every node and usage_data for one.
    created = await stack.call("POST", "/api/v1/workflows", 201, json=z2_graph("Profile"))
    workflow = created["data"]
    assert workflow["data_categories"] == ["personal_info"]
    assert [n["data_categories"] for n in workflow["definition"]["nodes"]] == [[], ["usage_data"]]
    pending = await stack.api.http.post(
        f"/api/v1/workflows/{workflow['id']}/execute",
        json={"input_data": {"who": "Ada"}},
        headers=stack.api.headers,
    )
    assert error_of(pending, 403)["code"] == "CONSENT_REQUIRED"

    granted = (
        await stack.call("POST", "/api/v1/consent/grant", 200, json={"consent_id": made["id"]})
    )["data"]
    assert granted["status"] == "granted" and granted["granted_at"] is not None
    again = await stack.call("POST", "/api/v1/consent/grant", 200, json={"consent_id": made["id"]})
    assert again["data"]["granted_at"] == granted["granted_at"]  # granting again changes nothing
    status = (
        await stack.call(
            "GET", "/api/v1/consent/status?status=granted&data_category=usage_data", 200
        )
    )["data"]
    assert [c["id"] for c in status["consents"]] == [made["id"]]
    assert status["granted_categories"] == ["personal_info", "usage_data"]

    execution_id = await z2_execute(stack, workflow["id"], {"who": "Ada"})
    done = await finish(stack.api, execution_id)
    assert done["status"] == "completed", done
    assert done["results"]["usage"]["output"] == "Ada used it"
    (row,) = await executions_of(stack.api.settings, stack.api.tenant.tenant_id)
    assert (row.data_subject_id, row.data_categories) == (
        stack.subject_id, ["personal_info", "usage_data"],
    )  # fmt: skip


@SQLITE_ONLY
async def test_without_a_granted_consent_no_execution_starts(stack: ConsentStack) -> None:
    tenant_id = stack.api.tenant.tenant_id
    workflow_id = await create_workflow(stack.api, waiting_pipeline(f"{stack.receiver.url}/crm"))
    other_id, _ = await add_user(stack.api.settings, tenant_id, "other@consent.test")
    # Only a consent for another category: personal_info is still missing.
    other = (
        await stack.call(
            "POST", "/api/v1/consent/request", 201, json={**Z2_REQUEST, "data_categories": ["x"]}
        )
    )["data"]
    await stack.call("POST", "/api/v1/consent/grant", 200, json={"consent_id": other["id"]})

    auterity = await stack.api.http.post(
        f"/api/workflows/{workflow_id}/execute",
        json={"input_data": {"who": "Ada"}},
        headers=stack.api.headers,
    )
    error = error_of(auterity, 403)
    assert error["code"] == "CONSENT_REQUIRED"
    assert error["details"]["missing_categories"] == ["personal_info"]
    assert error["details"]["data_subject_id"] == stack.subject_id
    # The subject named in the input must consent, not the caller.
    named = await stack.api.http.post(
        f"/api/v1/workflows/{workflow_id}/execute",
        json={"input_data": {"who": "Ada", "data_subject_id": other_id}},
        headers=stack.api.headers,
    )
    error = error_of(named, 403)
    assert (error["code"], error["details"]["data_subject_id"]) == ("CONSENT_REQUIRED", other_id)
    stranger = await make_tenant(stack.api.settings, "elsewhere")
    elsewhere = await default_user(stack.api.settings, stranger.tenant_id)
    unknown = await stack.api.http.post(
        f"/api/v1/workflows/{workflow_id}/execute",
        json={"input_data": {"who": "Ada", "data_subject_id": elsewhere}},
        headers=stack.api.headers,
    )
    assert error_of(unknown, 422)["details"]["field"] == "input_data.data_subject_id"

    assert await executions_of(stack.api.settings, tenant_id) == []
    assert await runs_of(stack.temporal, tenant_id) == []
    assert stack.receiver.calls == []


@SQLITE_ONLY
async def test_a_revoked_consent_stops_the_running_execution(stack: ConsentStack) -> None:
    api = stack.api
    made = (await stack.call("POST", "/api/v1/consent/request", 201, json=Z2_REQUEST))["data"]
    await stack.call("POST", "/api/v1/consent/grant", 200, json={"consent_id": made["id"]})
    workflow_id = await create_workflow(api, waiting_pipeline(f"{stack.receiver.url}/crm"))
    execution_id = await z2_execute(stack, workflow_id, {"who": "Ada"})
    # A run without categories of this consent is left alone.
    unrelated_id = await create_workflow(
        api,
        {"name": "Unrelated", "data_categories": ["billing"],
         "steps": [{"id": "wait", "type": "human_approval"}]},
    )  # fmt: skip
    billing = (
        await stack.call(
            "POST", "/api/v1/consent/request", 201,
            json={**Z2_REQUEST, "data_categories": ["billing"]},
        )
    )["data"]  # fmt: skip
    await stack.call("POST", "/api/v1/consent/grant", 200, json={"consent_id": billing["id"]})
    unrelated = await z2_execute(stack, unrelated_id, {})
    await until_step(api, execution_id, "review", "waiting_approval")
    await until_step(api, unrelated, "wait", "waiting_approval")

    revoked = (
        await stack.call("POST", "/api/v1/consent/revoke", 200, json={"consent_id": made["id"]})
    )["data"]
    assert revoked["status"] == "revoked" and revoked["revoked_at"] is not None
    assert revoked["stopped_executions"] == [execution_id]

    done = await finish(api, execution_id, approve=False)
    assert done["status"] == "failed", done
    assert done["error_code"] == "CONSENT_REVOKED"
    assert "personal_info" in done["error"] and "revoked" in done["error"]
    assert done["results"]["review"]["status"] == "cancelled"
    assert done["results"]["crm"]["status"] == "pending"
    z2 = await stack.call("GET", f"/api/v1/workflows/{workflow_id}/executions/{execution_id}", 200)
    assert z2["data"]["status"] == "failed"

    # The index row and the workflow.failed event say so too.
    found = await until_ended(api.settings, execution_id)
    (failed,) = of_type(found, "workflow.failed")
    assert failed["error"]["code"] == "CONSENT_REVOKED"
    assert "personal_info" in failed["error"]["message"]
    rows = {r.id: r for r in await executions_of(api.settings, api.tenant.tenant_id)}
    assert (rows[execution_id].status, rows[execution_id].error_code) == (
        "failed", "CONSENT_REVOKED",
    )  # fmt: skip
    assert stack.receiver.calls == []  # the later step never ran
    assert (await read_execution(api, unrelated))["status"] == "running"

    # A revoked consent stays revoked; revoking again changes nothing.
    regrant = await api.http.post(
        "/api/v1/consent/grant", json={"consent_id": made["id"]}, headers=api.headers
    )
    assert error_of(regrant, 409)["code"] == "CONSENT_ALREADY_REVOKED"
    again = await stack.call("POST", "/api/v1/consent/revoke", 200, json={"consent_id": made["id"]})
    assert again["data"]["stopped_executions"] == []
    assert again["data"]["revoked_at"] == revoked["revoked_at"]
    await api.http.post(f"/api/v1/executions/{unrelated}/cancel", headers=api.headers)


@SQLITE_ONLY
async def test_a_revoke_reaches_a_run_waiting_for_a_callback(stack: ConsentStack) -> None:
    api = stack.api
    made = (await stack.call("POST", "/api/v1/consent/request", 201, json=Z2_REQUEST))["data"]
    await stack.call("POST", "/api/v1/consent/grant", 200, json={"consent_id": made["id"]})
    workflow_id = await create_workflow(
        api,
        {"name": "Wait for the ERP",
         "steps": [
             {"id": "wait", "type": "wait_for_callback", "data_categories": ["usage_data"]},
             {"id": "crm", "type": "api_call", "dependencies": ["wait"],
              "config": {"url": f"{stack.receiver.url}/crm", "method": "POST",
                         "body": {"paid": "{{steps.wait.output}}"}}},
         ]},
    )  # fmt: skip
    execution_id = await z2_execute(stack, workflow_id, {})
    await until_step(api, execution_id, "wait", "waiting_callback")
    revoked = await stack.call(
        "POST", "/api/v1/consent/revoke", 200, json={"consent_id": made["id"]}
    )
    assert revoked["data"]["stopped_executions"] == [execution_id]
    done = await finish(api, execution_id)
    assert (done["status"], done["error_code"]) == ("failed", "CONSENT_REVOKED")
    assert "usage_data" in done["error"]
    assert done["results"]["wait"]["status"] == "cancelled"
    assert stack.receiver.calls == []


@SQLITE_ONLY
async def test_only_the_subject_grants_and_another_tenant_sees_nothing(
    stack: ConsentStack,
) -> None:
    api, tenant_id = stack.api, stack.api.tenant.tenant_id
    other_id, other = await add_user(api.settings, tenant_id, "colleague@consent.test")
    # The tenant admin asks the colleague for consent; only the colleague may grant it.
    asked = (
        await stack.call(
            "POST", "/api/v1/consent/request", 201, json={**Z2_REQUEST, "user_id": other_id}
        )
    )["data"]
    assert (asked["user_id"], asked["requested_by"]) == (other_id, stack.subject_id)
    by_admin = await api.http.post(
        "/api/v1/consent/grant", json={"consent_id": asked["id"]}, headers=api.headers
    )
    assert error_of(by_admin, 403)["code"] == "FORBIDDEN"
    mine = (await stack.call("POST", "/api/v1/consent/request", 201, json=Z2_REQUEST))["data"]
    by_colleague = await api.http.post(
        "/api/v1/consent/grant", json={"consent_id": mine["id"]}, headers=other
    )
    assert error_of(by_colleague, 403)["code"] == "FORBIDDEN"
    revoke_mine = await api.http.post(
        "/api/v1/consent/revoke", json={"consent_id": mine["id"]}, headers=other
    )
    assert error_of(revoke_mine, 403)["code"] == "FORBIDDEN"
    granted = await stack.call(
        "POST", "/api/v1/consent/grant", 200, headers=other, json={"consent_id": asked["id"]}
    )
    assert granted["data"]["status"] == "granted"

    # Each user reads their own; a tenant admin may read another user's, a user may not.
    theirs = (await stack.call("GET", "/api/v1/consent/status", 200, headers=other))["data"]
    assert [c["id"] for c in theirs["consents"]] == [asked["id"]]
    peek = await api.http.get(f"/api/v1/consent/status?user_id={stack.subject_id}", headers=other)
    assert error_of(peek, 403)["code"] == "FORBIDDEN"
    read = await stack.call("GET", f"/api/v1/consent/status?user_id={other_id}", 200)
    assert read["data"]["granted_categories"] == ["personal_info", "usage_data"]
    # A tenant admin may revoke a user's consent.
    revoked = await stack.call(
        "POST", "/api/v1/consent/revoke", 200, json={"consent_id": asked["id"]}
    )
    assert revoked["data"]["status"] == "revoked"

    # Another tenant: none of these consents exist for it, nor its users for us.
    stranger: TenantFixture = await make_tenant(api.settings, "stranger")
    headers = {"X-API-Key": stranger.key}
    for path in ("/api/v1/consent/grant", "/api/v1/consent/revoke"):
        response = await api.http.post(path, json={"consent_id": mine["id"]}, headers=headers)
        assert error_of(response, 404)["code"] == "CONSENT_NOT_FOUND"
    listed = (await stack.call("GET", "/api/v1/consent/status", 200, headers=headers))["data"]
    assert listed["consents"] == [] and listed["total"] == 0
    across = await api.http.post(
        "/api/v1/consent/request",
        json={**Z2_REQUEST, "user_id": stack.subject_id},
        headers=headers,
    )
    assert error_of(across, 422)["details"]["field"] == "user_id"
    missing = await api.http.post("/api/v1/consent/request", json={}, headers=api.headers)
    assert error_of(missing, 422)["code"] == "VALIDATION_ERROR"


@SQLITE_ONLY
async def test_a_pipeline_without_data_categories_is_unaffected(stack: ConsentStack) -> None:
    workflow_id = await create_workflow(
        stack.api,
        {"name": "No personal data",
         "steps": [{"id": "crm", "type": "api_call",
                    "config": {"url": f"{stack.receiver.url}/crm", "method": "POST",
                               "body": {"n": "{{n}}"}}}]},
    )  # fmt: skip
    read = await stack.api.http.get(f"/api/workflows/{workflow_id}", headers=stack.api.headers)
    assert read.json()["data_categories"] == [] and read.json()["steps"][0]["data_categories"] == []
    execution_id = await z2_execute(stack, workflow_id, {"n": 1})
    done = await finish(stack.api, execution_id)
    assert done["status"] == "completed", done
    assert stack.receiver.calls == [{"n": 1}]
    (row,) = await executions_of(stack.api.settings, stack.api.tenant.tenant_id)
    assert (row.data_subject_id, row.data_categories) == (None, None)
    history = await stack.temporal.client.get_workflow_handle(f"run-{execution_id}").fetch_history()
    assert "check_consent" not in history.to_json()
