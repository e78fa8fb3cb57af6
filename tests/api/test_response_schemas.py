"""Every JSON answer is what /openapi.json says it is.

Real requests go through the real app (a worker on the test's own task queues,
a fake Ollama for the model routes), and each body is validated against the
schema the app declares for that path, method and status. Objects are checked
closed: a key the declared model does not have fails as surely as a missing or
mistyped one, so a route whose body drifts from its model fails here.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from jsonschema import Draft202012Validator
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from engine.platform.queues import ALL_QUEUES
from engine.platform.settings import Settings
from tests.conftest import TenantFixture, api_client, make_tenant
from tests.fake_providers import FakeProvider
from tests.models_support import PRICES, ollama_config
from workers.main import WorkerResources, build_workers

# The routes whose 2xx is not JSON, and what they answer instead.
NOT_JSON = {
    ("POST", "/api/v1/chat/stream"): "text/event-stream",
    ("GET", "/api/v1/executions/{execution_id}/events"): "text/event-stream",
    ("GET", "/api/v1/mcp/files/{file_id}/download"): "application/octet-stream",
    ("GET", "/metrics"): "text/plain",  # Prometheus' text format
}
# Keys of a JSON Schema whose value maps names to schemas (not a schema itself).
SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "schemas")
TEXT = (
    "Weftworks runs document processing as durable Temporal workflows. "
    "The kettle inventory of the Zorblat company holds 7,300 copper kettles. "
) * 4


def _pattern(template: str) -> str:
    parts = re.split(r"(\{[^}]+\})", template)
    return "".join("[^/]+" if part.startswith("{") else re.escape(part) for part in parts)


def closed(schema: Any) -> Any:
    """``schema`` with every object that declares properties refusing any other key."""
    if isinstance(schema, list):
        return [closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {
        key: {name: closed(sub) for name, sub in value.items()}
        if key in SCHEMA_MAPS and isinstance(value, dict)
        else closed(value)
        for key, value in schema.items()
    }
    if "properties" in schema and "additionalProperties" not in schema:
        out["additionalProperties"] = False
    return out


class Schemas:
    """The app's OpenAPI document, and the check of a body against it."""

    def __init__(self, app: FastAPI) -> None:
        self.spec = app.openapi()
        self.components = closed(self.spec["components"])

    def operation(self, method: str, path: str) -> str:
        """The path template of the operation that serves ``method path``.

        Where several match, the router tries the more specific one first (the
        providers router before ``/models/{name}``): the most literal template wins.
        """
        found = [
            template
            for template, operations in self.spec["paths"].items()
            if method.lower() in operations and re.fullmatch(_pattern(template), path)
        ]
        assert found, f"{method} {path} is not in the schema"
        return max(found, key=lambda template: len(re.sub(r"\{[^}]+\}", "", template)))

    def declared(self, method: str, template: str, status: int) -> dict[str, Any]:
        operation = self.spec["paths"][template][method.lower()]
        response = operation["responses"].get(str(status))
        assert response is not None, f"{method} {template} does not declare a {status}"
        schema = response.get("content", {}).get("application/json", {}).get("schema")
        assert schema, f"{method} {template} declares no JSON schema for {status}"
        return dict(schema)

    def errors(self, method: str, template: str, status: int, body: Any) -> list[str]:
        schema = {**closed(self.declared(method, template, status)), "components": self.components}
        validator = Draft202012Validator(schema)
        return [
            f"{'/'.join(map(str, error.absolute_path)) or '<body>'}: {error.message}"
            for error in validator.iter_errors(body)
        ]


@dataclass
class Checked:
    """Calls the API and checks every answer against its declared schema."""

    http: httpx.AsyncClient
    schemas: Schemas
    seen: set[tuple[str, str]] = field(default_factory=set)

    def check(self, response: httpx.Response, status: int = 200) -> Any:
        assert response.status_code == status, response.text
        method, path = response.request.method, response.request.url.path
        template = self.schemas.operation(method, path)
        body = response.json()
        errors = self.schemas.errors(method, template, status, body)
        assert not errors, f"{method} {template} ({status}) drifted from its schema:\n" + (
            "\n".join(errors)
        )
        self.seen.add((method, template))
        return body

    async def call(self, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        return self.check(await self.http.request(method, path, **kwargs), status)


@dataclass
class TwoTenants:
    """A checked API and two tenants: ``a`` and ``b`` are their credentials."""

    api: Checked
    settings: Settings
    first: TenantFixture
    second: TenantFixture

    @property
    def a(self) -> dict[str, str]:
        return {"X-API-Key": self.first.key}

    @property
    def b(self) -> dict[str, str]:
        return {"X-API-Key": self.second.key}

    @property
    def http(self) -> httpx.AsyncClient:
        return self.api.http


@dataclass
class Stack:
    api: Checked
    settings: Settings
    tenant: TenantFixture
    user: dict[str, str]  # the tenant's default credential
    admin: dict[str, str]  # the first admin: a global administrator


@pytest.fixture
async def stack(
    settings: Settings,
    admin_key: str,  # first: the first admin exists only on an empty database
    temporal_env: WorkflowEnvironment,
    fake_ollama: FakeProvider,
) -> AsyncIterator[Stack]:
    """The API and a worker on task queues of this test, with a fake Ollama (listing
    only models that answer: the auto-routed call must not land on a broken one)."""
    fake_ollama.lists_trouble = False
    configured = settings.model_copy(
        update={
            "task_queue_prefix": f"s{uuid.uuid4().hex[:8]}-",
            "rate_limits_enabled": False,
            "providers": {"ollama": ollama_config(fake_ollama)},
            "model_prices": PRICES,
            "default_chat_model": "llama-test",
        }
    )
    tenant = await make_tenant(configured, "schemas")
    resources = WorkerResources.open(configured)
    try:
        async with AsyncExitStack() as workers:
            for worker in build_workers(
                temporal_env.client, ALL_QUEUES, resources, prefix=configured.task_queue_prefix
            ):
                await workers.enter_async_context(worker)
            app = create_app(configured)
            async with api_client(app) as http:
                yield Stack(
                    Checked(http, Schemas(app)),
                    configured,
                    tenant,
                    {"X-API-Key": tenant.key},
                    {"X-API-Key": admin_key},
                )
    finally:
        await resources.close()


def test_every_json_route_declares_a_named_response_model() -> None:
    spec = create_app(Settings()).openapi()
    unnamed = []
    for template, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if not status.startswith("2"):
                    continue
                content = response.get("content", {})
                if status == "204" or method == "head":
                    assert not content, f"{method} {template} has a body for {status}"
                    continue
                if (method.upper(), template) in NOT_JSON:
                    assert NOT_JSON[method.upper(), template] in content, (method, template)
                    assert "application/json" not in content, (method, template)
                    continue
                schema = content.get("application/json", {}).get("schema", {})
                items = schema.get("items", {}) if schema.get("type") == "array" else schema
                if "$ref" not in items:
                    unnamed.append(f"{method.upper()} {template} {status}: {schema}")
    assert not unnamed, "routes without a response model:\n" + "\n".join(unnamed)


def test_a_body_that_drifts_from_its_model_fails() -> None:
    schemas = Schemas(create_app(Settings()))
    route = ("GET", "/api/v1/models/budget", 200)
    budget = {
        "tenant_id": "ten_1",
        "monthly_limit_usd": None,
        "hard_limit": False,
        "spent_this_month_usd": 0.0,
        "remaining_usd": None,
    }
    body = {
        "success": True,
        "data": budget,
        "error": None,
        "meta": {"request_id": "r1", "timestamp": "2026-01-01T00:00:00Z"},
        "metadata": {"request_id": "r1", "timestamp": "2026-01-01T00:00:00Z"},
    }
    assert schemas.errors(*route, body) == []
    extra = {**body, "data": {**budget, "currency": "USD"}}
    missing = {**body, "data": {k: v for k, v in budget.items() if k != "remaining_usd"}}
    mistyped = {**body, "data": {**budget, "hard_limit": "no"}}
    for drifted in (extra, missing, mistyped):
        assert schemas.errors(*route, drifted), drifted
    partio = ("GET", "/v1.0/whoami", 200)
    assert schemas.errors(*partio, {"Role": "User", "TenantName": "Acme"}) == []
    assert schemas.errors(*partio, {"role": "User", "tenant_name": "Acme"})  # not PascalCase


async def test_health_identity_and_partio_admin_answers(stack: Stack) -> None:
    api, admin = stack.api, stack.admin
    for path in ("/health", "/api/v1/health/detailed", "/api/ready", "/", "/v1.0/health"):
        await api.call("GET", path)

    account = {"email": f"s-{uuid.uuid4().hex[:8]}@example.test", "password": "pw-12345678"}
    await api.call("POST", "/api/v1/auth/register", 201, json={**account, "full_name": "Ada"})
    tokens = (await api.call("POST", "/api/v1/auth/login", json=account))["data"]
    tokens = (
        await api.call(
            "POST", "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
    )["data"]
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    await api.call("GET", "/api/v1/users/me", headers=bearer)
    await api.call("PUT", "/api/v1/users/me", headers=bearer, json={"name": "Ada L."})
    await api.call("POST", "/api/v1/auth/logout", headers=bearer, json={})

    other = {"email": f"a-{uuid.uuid4().hex[:8]}@example.test", "password": "pw-12345678"}
    await api.call("POST", "/api/auth/register", 201, json=other)
    pair = await api.call("POST", "/api/auth/login", json=other)
    await api.call("POST", "/api/auth/refresh", json={"refresh_token": pair["refresh_token"]})

    expiring = {"name": "ci", "scopes": ["files:read"], "expires_at": "2099-01-01T00:00:00Z"}
    await api.call("POST", "/api/v1/api-keys", 201, headers=stack.user, json=expiring)
    await api.call("POST", "/api/v1/api-keys", 201, headers=stack.user, json={
        "name": "reader", "scopes": ["files:read"]
    })  # fmt: skip
    await api.call("GET", "/api/v1/api-keys", headers=stack.user)

    made = await api.call("PUT", "/v1.0/tenants", 201, headers=admin, json={
        "Name": "Globex", "Labels": ["prod"], "Tags": {"env": "prod"}
    })  # fmt: skip
    tenant_id = made["Id"]
    await api.call("GET", f"/v1.0/tenants/{tenant_id}", headers=admin)
    await api.call("PUT", f"/v1.0/tenants/{tenant_id}", headers=admin, json={"Name": "Globex 2"})
    await api.call("POST", "/v1.0/tenants/enumerate", headers=admin, json={"MaxResults": 1})
    user = await api.call("PUT", "/v1.0/users", 200, headers=admin, json={
        "TenantId": tenant_id, "Email": f"u-{uuid.uuid4().hex[:6]}@example.test",
        "Password": "pw-12345678", "FirstName": "Uma",
    })  # fmt: skip
    await api.call("GET", f"/v1.0/users/{user['Id']}", headers=admin)
    await api.call("PUT", f"/v1.0/users/{user['Id']}", headers=admin, json={"LastName": "Ode"})
    await api.call("POST", "/v1.0/users/enumerate", headers=admin, json={})
    credential = await api.call("PUT", "/v1.0/credentials", 201, headers=admin, json={
        "TenantId": tenant_id, "UserId": user["Id"], "Name": "ci"
    })  # fmt: skip
    await api.call("GET", f"/v1.0/credentials/{credential['Id']}", headers=admin)
    await api.call(
        "PUT", f"/v1.0/credentials/{credential['Id']}", headers=admin, json={"Active": False}
    )
    await api.call("POST", "/v1.0/credentials/enumerate", headers=admin, json={})
    endpoint = await api.call("PUT", "/v1.0/endpoints", 201, headers=admin, json={
        "TenantId": tenant_id, "Model": "nomic-embed-text",
        "Endpoint": "http://ollama.weft-test.invalid:9/", "ApiFormat": "Ollama", "ApiKey": "secret",
    })  # fmt: skip
    await api.call("GET", f"/v1.0/endpoints/{endpoint['Id']}", headers=admin)
    await api.call("PUT", f"/v1.0/endpoints/{endpoint['Id']}", headers=admin, json={"Name": "e"})
    await api.call("POST", "/v1.0/endpoints/enumerate", headers=admin, json={})
    await api.call("GET", "/v1.0/whoami", headers=admin)
    await api.call("GET", "/v1.0/whoami", headers={"Authorization": f"Bearer {stack.tenant.key}"})

    # The background writer stores history a moment later.
    deadline = time.monotonic() + 10
    while True:
        page = await api.call("POST", "/v1.0/requests/enumerate", headers=admin, json={})
        detailed = [row for row in page["Objects"] if row["HasDetail"]]
        if detailed or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert detailed, "no request with stored bodies was recorded"
    await api.call("GET", f"/v1.0/requests/{detailed[0]['Id']}", headers=admin)
    await api.call("GET", f"/v1.0/requests/{detailed[0]['Id']}/detail", headers=admin)


async def _wait_run(api: Checked, headers: dict[str, str], execution_id: str) -> dict[str, Any]:
    """Every answer on the way is checked: running (progress) and finished (result)."""
    deadline = time.monotonic() + 180
    while True:
        run = (await api.call("GET", f"/api/v1/mcp/workflow/{execution_id}", headers=headers))[
            "data"
        ]
        if run["status"] != "running":
            return dict(run)
        assert time.monotonic() < deadline, f"run {execution_id} did not finish: {run}"
        await asyncio.sleep(0.3)


async def test_document_answers(stack: Stack) -> None:
    api, user = stack.api, stack.user
    upload = {"file": ("kettles.txt", TEXT.encode(), "text/plain")}
    again = {"Idempotency-Key": "kettles-1", **user}
    made = await api.call("POST", "/api/v1/mcp/upload", 201, headers=again, files=upload)
    run = await _wait_run(api, user, made["data"]["execution_id"])
    assert run["status"] == "completed", run
    repeated = await api.call("POST", "/api/v1/mcp/upload", 200, headers=again, files=upload)
    assert repeated["data"]["execution_id"] == made["data"]["execution_id"]

    kept = await api.call(
        "POST", "/api/v1/mcp/upload", 201, headers=user,
        files={"file": ("later.txt", b"Processed later, on request.", "text/plain")},
        data={"process": "false", "project_id": "p1"},
    )  # fmt: skip
    assert "execution_id" not in kept["data"]
    file_id = kept["data"]["file_id"]
    started = await api.call("POST", "/api/v1/mcp/workflow", 202, headers=user, json={
        "workflow_name": "document_processor", "input_data": {"file_id": file_id}
    })  # fmt: skip
    await _wait_run(api, user, started["data"]["execution_id"])
    await api.call("GET", "/api/v1/mcp/files", headers=user)
    await api.call("GET", f"/api/v1/mcp/files/{file_id}", headers=user)

    await api.call("POST", "/api/v1/ai/embeddings", headers=user, json={"input": ["a", "b"]})
    question = {"query": "How many copper kettles are there?", "top_k": 2}
    cited = await api.call("POST", "/api/v1/ai/rag/query", headers=user, json=question)
    assert cited["data"]["citations"], cited  # text has no pages: no "page" key
    plain = await api.call(
        "POST", "/api/v1/ai/rag/query", headers=user, json={**question, "include_citations": False}
    )
    assert plain["data"]["citations"] == []  # asked for none: an empty list, not a missing key

    bearer = {"Authorization": f"Bearer {stack.tenant.key}"}
    process = f"/v1.0/endpoints/{stack.tenant.endpoint_id}/process"
    cell = {"Text": TEXT, "Labels": ["l"], "Tags": {"k": "v"}}
    await api.call("POST", process, headers=bearer, json=cell)
    await api.call("POST", f"{process}/batch", headers=bearer, json=[cell, {"Text": "Short."}])

    await api.call("POST", "/api/v1/system/check", headers=stack.admin, json={})


async def test_model_chat_and_routing_answers(stack: Stack) -> None:
    api, user, admin = stack.api, stack.user, stack.admin
    chat = {"message": "ping", "model": "llama-test"}
    await api.call("POST", "/api/v1/ai/chat", headers=user, json={
        "messages": [{"role": "user", "content": "hello"}], "model": "llama-test"
    })  # fmt: skip
    await api.call("POST", "/api/v1/chat", headers=user, json=chat)
    batch = await api.call("POST", "/api/v1/chat/batch", headers=user, json={
        "requests": [chat, {"message": "ping", "model": "fail-404"}]
    })  # fmt: skip
    assert [r["success"] for r in batch["data"]["results"]] == [True, False]
    await api.call(
        "POST", "/api/v1/models/test", headers=user, json={"model": "llama-test", "prompt": "hi"}
    )

    await api.call("GET", "/api/v1/ai/models", headers=user)
    await api.call("GET", "/api/v1/models", headers=user)
    await api.call("GET", "/api/v1/models/llama-test/info", headers=user)
    for group_by in ("model", "provider", "user"):
        await api.call("GET", "/api/v1/models/usage", headers=user, params={"group_by": group_by})
    await api.call("GET", "/api/v1/models/budget", headers=user)
    limited = {"monthly_limit_usd": 25.0, "hard_limit": False}
    await api.call("PUT", "/api/v1/models/budget", headers=admin, json=limited)
    await api.call("GET", "/api/v1/health/circuit-breakers", headers=user)

    provider = await api.call("POST", "/api/v1/models/providers", 201, headers=admin, json={
        "name": "extra", "kind": "openai", "base_url": "http://127.0.0.1:9/v1",
        "api_key": "sk-x", "models": ["gpt-extra"], "active": False,
    })  # fmt: skip
    provider_id = provider["data"]["id"]
    await api.call("GET", "/api/v1/models/providers", headers=admin)
    await api.call(
        "PUT", f"/api/v1/models/providers/{provider_id}", headers=admin, json={"priority": 5}
    )
    pull = await api.call("POST", "/api/v1/ai/models/pull", 202, headers=admin, json={
        "name": "qwen:0.5b"
    })  # fmt: skip
    progress = f"/api/v1/ai/models/pull/{pull['data']['workflow_id']}"
    deadline = time.monotonic() + 60
    while (await api.call("GET", progress, headers=admin))["data"]["phase"] == "pulling":
        assert time.monotonic() < deadline, "the pull did not finish"
        await asyncio.sleep(0.1)
    await api.call("DELETE", "/api/v1/ai/models/qwen:0.5b", headers=admin)
    deleted = await api.http.delete(f"/api/v1/models/providers/{provider_id}", headers=admin)
    assert deleted.status_code == 204

    warm = {"requests": [chat, {"message": "x", "model": "fail-404"}]}
    await api.call("POST", "/api/v1/cache/warm", headers=user, json=warm)
    await api.call("GET", "/api/v1/cache/stats", headers=user)
    await api.call("GET", "/api/v1/cache/keys", headers=user)
    await api.call("POST", "/api/v1/cache/clear", headers=user, json={"pattern": "*"})

    await api.call("POST", "/api/ai/route", headers=user, json={"prompt": "Say hi"})
    await api.call("POST", "/api/models/route", headers=user, json={"prompt": "Say hi"})
    await api.call("GET", "/api/ai/models", headers=user)
    await api.call("GET", "/api/models/available", headers=user)
    await api.call("GET", "/api/analytics/costs", headers=user)


def test_error_answers_and_streams_are_declared_as_they_are_sent() -> None:
    """Each operation declares the errors it answers, in the body it sends them with
    (the envelope; partio's error object on /v1.0), and event streams by event."""
    from api.envelope import error_body
    from api.openapi import PARTICULAR

    schemas = Schemas(create_app(Settings()))
    operations = {
        f"{method.upper()} {template}": operation
        for template, by_method in schemas.spec["paths"].items()
        for method, operation in by_method.items()
    }
    assert set(PARTICULAR) <= set(operations)
    for name, operation in operations.items():
        declared = set(operation["responses"])
        assert {"429", "503"} <= declared, name
        if operation.get("security"):
            assert {"401", "403"} <= declared, name
        if "{" in name:
            assert "404" in declared, name
        if "requestBody" in operation:
            assert {"400", "413"} <= declared, name
        if name.split(" ")[1].startswith("/v1.0"):
            assert "422" not in declared, name  # partio answers 400
        elif operation.get("parameters") or "requestBody" in operation:
            assert "422" in declared, name
        assert "HTTPValidationError" not in str(operation), name
        for response in operation["responses"].values():
            stream = response.get("content", {}).get("text/event-stream")
            assert stream is None or stream["schema"]["$ref"].endswith("/ServerSentEvent")

    def sent(path: str, status: int, code: str) -> Any:
        return error_body(
            path=path, status_code=status, code=code, message="m", details={"a": 1},
            request_id="req_1",
        )  # fmt: skip

    agent = ("GET", "/api/v1/agents/{agent_id}")
    assert schemas.errors(*agent, 404, sent("/api/v1/agents/x", 404, "AGENT_NOT_FOUND")) == []
    assert schemas.errors(*agent, 401, sent("/api/v1/agents/x", 401, "UNAUTHORIZED")) == []
    partio = ("GET", "/v1.0/users/{object_id}")
    assert schemas.errors(*partio, 404, sent("/v1.0/users/x", 404, "NOT_FOUND")) == []
    assert schemas.errors(*partio, 404, sent("/api/v1/agents/x", 404, "NOT_FOUND"))  # not partio's
