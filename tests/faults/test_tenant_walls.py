"""Tenant walls, generated from /openapi.json: the first tenant creates one
object of each main kind; then, for every route with a path parameter, the
second tenant is tried with each of those ids and with one nobody has. Where
the first tenant can read an object, the second gets 404 (or 403); no answer
to the second tenant is ever 2xx or 5xx. A new route is covered without
touching this file."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from engine.platform.settings import Settings
from tests.conftest import DocStack, make_tenant, worker_stack
from tests.pipelines.support import SQLITE_ONLY, finish

pytestmark = [pytest.mark.faults, pytest.mark.asyncio, SQLITE_ONLY]

METHODS = ("get", "head", "post", "put", "patch", "delete")
PARAM = re.compile(r"\{([^}]+)\}")
ANSWER_SECONDS = 15  # a stream the caller may read is cut here


async def populate(a: DocStack, hook_url: str) -> dict[str, str]:
    """One object of each main kind, made by the first tenant; kind -> id."""
    http, headers = a.http, a.headers
    ids: dict[str, str] = {}

    async def make(kind: str, path: str, body: dict[str, Any], *keys: str) -> None:
        response = await http.post(path, json=body, headers=headers)
        assert response.status_code in (200, 201, 202), f"{kind}: {response.text}"
        found: Any = response.json()
        for key in keys:
            found = found[key]
        ids[kind] = str(found)

    mail = {"to": "a@example.com", "subject": "hi"}
    definition = {"name": "walled", "steps": [{"id": "mail", "type": "email", "config": mail}]}
    await make("workflow", "/api/workflows", definition, "id")
    await make(
        "execution", f"/api/workflows/{ids['workflow']}/execute", {"input_data": {}},
        "execution_id",
    )  # fmt: skip
    await finish(a, ids["execution"])
    await make(
        "webhook", "/api/v1/webhooks",
        {"url": hook_url, "events": ["workflow.completed"]}, "data", "id",
    )  # fmt: skip
    await make("agent", "/api/v1/agents", {"name": "Walled", "type": "writer"}, "data", "id")
    await make(
        "api_key", "/api/v1/api-keys", {"name": "walled", "scopes": ["files:read"]}, "data", "id"
    )
    await make(
        "schedule", "/api/v1/schedules",
        {"workflow_id": ids["workflow"], "interval_seconds": 3600}, "data", "id",
    )  # fmt: skip
    await make("task", "/api/v1/tasks", {"task_type": ids["workflow"]}, "data", "task_id")
    await make("command", "/api/v1/mcp/command", {"command": "list my workflows"}, "data",
               "command_id")  # fmt: skip
    uploaded = await http.post(
        "/api/v1/mcp/upload",
        headers=headers,
        files={"file": ("walled.txt", b"Walled text about gardens.", "text/plain")},
    )
    assert uploaded.status_code == 201, uploaded.text
    ids["file"] = uploaded.json()["data"]["file_id"]
    ids["document_run"] = uploaded.json()["data"]["execution_id"]
    return ids


def routes(spec: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(path, method, whether it takes the caller's key or token: a callback URL
    is signed with its own secret instead)."""
    found = [
        (path, method, any({"ApiKey", "Bearer"} & set(r) for r in operation.get("security", [])))
        for path, operations in spec["paths"].items()
        if PARAM.search(path)
        for method, operation in operations.items()
        if method in METHODS
    ]
    # Reads first: a broken wall must not let a write change what later reads see.
    return sorted(found, key=lambda route: (route[1] not in ("get", "head"), route))


def fill(path: str, value: str) -> str:
    """Every path parameter takes ``value`` (an approval's step id, a tool name …
    get it too: the first tenant's id is no more valid there than elsewhere)."""
    return PARAM.sub(value, path)


async def call(
    http: httpx.AsyncClient, method: str, url: str, headers: dict[str, str]
) -> int | None:
    """The status, or None when no answer came within the bound (a stream)."""
    try:
        async with asyncio.timeout(ANSWER_SECONDS):
            body = {} if method in ("post", "put", "patch") else None
            response = await http.request(method.upper(), url, json=body, headers=headers)
    except TimeoutError:
        return None
    return response.status_code


async def test_second_tenant_gets_404_for_every_route_with_an_id(
    settings: Settings, temporal_env: WorkflowEnvironment
) -> None:
    port = 9  # a loopback port webhooks may name; nothing is delivered in this test
    hook_url = f"http://127.0.0.1:{port}/hook"
    walled = settings.model_copy(update={"tenant_egress_allowed_hosts": [f"127.0.0.1:{port}"]})
    async with worker_stack(walled, temporal_env, "wall-a") as a:
        ids = await populate(a, hook_url)
        b = await make_tenant(a.settings, "wall-b")
        b_headers = {"X-API-Key": b.key, "Authorization": f"Bearer {b.key}"}
        spec = (await a.http.get("/openapi.json")).json()
        nobody = f"nobody_{uuid.uuid4().hex[:16]}"
        own_list = await a.http.get("/api/workflows", headers=b_headers)
        assert own_list.status_code == 200, own_list.text  # the second tenant is signed in
        failures: list[str] = []
        seen: Counter[int | None] = Counter()
        walls = 0
        for path, method, secured in routes(spec):
            for kind, value in [*ids.items(), ("random", nobody)]:
                url = fill(path, value)
                status = await call(a.http, method, url, b_headers)
                seen[status] += 1
                # A route with its own credentials (a callback's token) may say 401.
                refused = status == 401 and secured
                if status is None or status >= 500 or 200 <= status < 300 or refused:
                    failures.append(f"{method.upper()} {path} with {kind}: {status}")
                    continue
                if method == "get" and kind != "random":
                    own = await call(a.http, method, url, a.headers)
                    if own is None or 200 <= own < 300:  # the first tenant may read it
                        walls += 1
                        if status not in (403, 404):
                            failures.append(f"GET {path} with {kind}: {status} (want 404)")
    assert not failures, "\n".join(failures)
    # Each kind was readable by its owner through at least one route.
    assert walls >= len(ids), (walls, seen)
