"""Partio details a partio client notices (issue #12): a global admin may
process with any tenant's endpoint, user create answers its documented status,
and an endpoint that refuses connections answers a prompt upstream error."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from temporalio.testing import WorkflowEnvironment

from engine.platform.settings import Settings
from tests.conftest import DocStack, free_port, make_tenant, worker_stack

pytestmark = pytest.mark.asyncio
ADMIN_KEY = "partioadmin-" + "f" * 24


@pytest.fixture
async def stack(settings: Settings, temporal_env: WorkflowEnvironment) -> AsyncIterator[DocStack]:
    with_admin = settings.model_copy(
        update={"admin_api_keys": [ADMIN_KEY], "request_history_enabled": False}
    )
    async with worker_stack(with_admin, temporal_env) as built:
        yield built


async def test_global_admin_processes_with_any_tenants_endpoint(stack: DocStack) -> None:
    http, tenant = stack.http, stack.tenant
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    cell = {"Text": "A global admin may use any tenant's endpoint.", "Labels": ["x"]}
    one = await http.post(f"/v1.0/endpoints/{tenant.endpoint_id}/process", headers=admin, json=cell)
    assert one.status_code == 200, one.text
    assert one.json()["Chunks"][0]["Labels"] == ["x"]
    many = await http.post(
        f"/v1.0/endpoints/{tenant.endpoint_id}/process/batch", headers=admin, json=[cell, cell]
    )
    assert many.status_code == 200 and len(many.json()) == 2
    # A tenant's administrator still sees only its own tenant.
    other = await make_tenant(stack.settings, "other")
    login = await http.post(
        "/api/v1/auth/login", json={"email": other.email, "password": other.password}
    )
    as_other = {"Authorization": f"Bearer {login.json()['data']['access_token']}"}
    foreign = await http.post(
        f"/v1.0/endpoints/{tenant.endpoint_id}/process", headers=as_other, json=cell
    )
    assert foreign.status_code == 404 and foreign.json()["StatusCode"] == 404


async def test_user_create_answers_200_with_the_user(stack: DocStack) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    created = await stack.http.put(
        "/v1.0/users",
        headers=admin,
        json={
            "TenantId": stack.tenant.tenant_id,
            "Email": "jane@acme.test",
            "Password": "plaintext-password",
            "FirstName": "Jane",
            "LastName": "Doe",
            "IsAdmin": False,
        },
    )
    assert created.status_code == 200, created.text  # partio: "200 OK — UserMaster"
    user = created.json()
    assert user["Id"].startswith("usr_") and user["Email"] == "jane@acme.test"
    assert user["Password"] is None and user["TenantId"] == stack.tenant.tenant_id


async def test_refused_endpoint_answers_an_upstream_error_at_once(
    settings: Settings, temporal_env: WorkflowEnvironment
) -> None:
    port = free_port()  # nobody listens there; the operator opened it to tenants
    opened = settings.model_copy(
        update={"admin_api_keys": [ADMIN_KEY], "tenant_egress_allowed_hosts": [f"127.0.0.1:{port}"]}
    )
    async with worker_stack(opened, temporal_env) as stack:
        await _refused_endpoint(stack, port)


async def _refused_endpoint(stack: DocStack, port: int) -> None:
    http, tenant = stack.http, stack.tenant
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    endpoint = await http.put(
        "/v1.0/endpoints",
        headers=admin,
        json={
            "TenantId": tenant.tenant_id,
            "Model": "all-minilm",
            "Endpoint": f"http://127.0.0.1:{port}",
            "ApiFormat": "Ollama",
        },
    )
    assert endpoint.status_code == 201, endpoint.text
    bearer = {"Authorization": f"Bearer {tenant.key}"}
    started = time.monotonic()
    answer = await http.post(
        f"/v1.0/endpoints/{endpoint.json()['Id']}/process", headers=bearer, json={"Text": "hi"}
    )
    elapsed = time.monotonic() - started
    assert answer.status_code == 502, answer.text
    body = answer.json()
    assert body["StatusCode"] == 502 and "cannot be reached" in body["Message"]
    assert elapsed < 15, elapsed  # not minutes of activity retries
