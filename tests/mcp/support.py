"""What the MCP tests share: the real API served by uvicorn (REST, the WebSocket
stream and the MCP server at /mcp) with a worker on task queues of its own, two
tenants, and a fake Ollama whose chat model reads commands as JSON intents."""

from __future__ import annotations

import asyncio
import functools
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from engine.platform.queues import ALL_QUEUES
from engine.platform.settings import Settings
from tests.api.test_response_schemas import Schemas
from tests.conftest import TenantFixture, make_tenant
from tests.fake_providers import FakeProvider, Recorded, ollama_app, serve_app
from workers.main import WorkerResources, build_workers

WAIT = 60.0
TEXT = (
    "The kettle inventory of the Zorblat company holds 7,300 copper kettles. "
    "Copper kettles are polished every spring in the Zorblat workshop. "
) * 3


@functools.cache
def schemas() -> Schemas:
    return Schemas(create_app(Settings()))


def conforms(response: httpx.Response, status: int = 200) -> Any:
    """The body, after checking it against the schema the app declares for the route."""
    assert response.status_code == status, response.text
    method, path = response.request.method, response.request.url.path
    template = schemas().operation(method, path)
    body = response.json()
    errors = schemas().errors(method, template, status, body)
    assert not errors, f"{method} {template} ({status}) drifted from its schema: {errors}"
    return body


@dataclass
class McpStack:
    base: str  # http://127.0.0.1:<port>
    http: httpx.AsyncClient
    settings: Settings
    a: TenantFixture
    b: TenantFixture

    @property
    def ha(self) -> dict[str, str]:
        return {"X-API-Key": self.a.key}

    @property
    def hb(self) -> dict[str, str]:
        return {"X-API-Key": self.b.key}

    def ws(self, path: str) -> str:
        return self.base.replace("http://", "ws://", 1) + path


@asynccontextmanager
async def mcp_stack(
    settings: Settings, temporal_env: WorkflowEnvironment, **overrides: Any
) -> AsyncIterator[McpStack]:
    isolated = settings.model_copy(
        update={
            "task_queue_prefix": f"m{uuid.uuid4().hex[:8]}-",
            "rate_limits_enabled": False,
            "request_history_enabled": False,
            "event_stream_poll_seconds": 0.1,
            **overrides,
        }
    )
    resources = WorkerResources.open(isolated)
    a, b = await make_tenant(isolated, "alpha"), await make_tenant(isolated, "beta")
    try:
        async with AsyncExitStack() as stack:
            for worker in build_workers(
                temporal_env.client, ALL_QUEUES, resources, prefix=isolated.task_queue_prefix
            ):
                await stack.enter_async_context(worker)
            base = await stack.enter_async_context(serve_app(create_app(isolated), lifespan="on"))
            http = await stack.enter_async_context(httpx.AsyncClient(base_url=base, timeout=30))
            yield McpStack(base, http, isolated, a, b)
    finally:
        await resources.close()


async def wait_command(
    http: httpx.AsyncClient, headers: dict[str, str], command_id: str
) -> dict[str, Any]:
    """The command once it has left ``processing``."""
    deadline = time.monotonic() + WAIT
    while True:
        response = await http.get(f"/api/v1/mcp/command/{command_id}", headers=headers)
        data: dict[str, Any] = conforms(response)["data"]
        if data["status"] != "processing":
            return data
        assert time.monotonic() < deadline, f"command {command_id} did not finish: {data}"
        await asyncio.sleep(0.2)


async def upload_processed(
    http: httpx.AsyncClient, headers: dict[str, str], name: str, text: str = TEXT
) -> str:
    """Upload a text file and wait until it is processed; its file id."""
    made = await http.post(
        "/api/v1/mcp/upload", headers=headers, files={"file": (name, text.encode(), "text/plain")}
    )
    assert made.status_code == 201, made.text
    execution_id = made.json()["data"]["execution_id"]
    deadline = time.monotonic() + WAIT
    while True:
        run = (await http.get(f"/api/v1/mcp/workflow/{execution_id}", headers=headers)).json()
        if run["data"]["status"] != "running":
            assert run["data"]["status"] == "completed", run
            return str(made.json()["data"]["file_id"])
        assert time.monotonic() < deadline, f"{name} was not processed: {run}"
        await asyncio.sleep(0.2)


async def create_pipeline(stack: McpStack, name: str, headers: dict[str, str]) -> str:
    """A one-step pipeline (a transform of its input): it runs without any provider."""
    body = {
        "name": name,
        "steps": [{"id": "echo", "type": "transform", "config": {"output": "{{count}} kettles"}}],
    }
    response = await stack.http.post("/api/workflows", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def intent_ollama(fake: FakeProvider, read: Callable[[str], str]) -> Starlette:
    """The fake Ollama, except that a chat whose system prompt asks for a command's
    intent is answered with ``read(command)`` (what a model would write)."""
    inner = ollama_app(fake)

    async def chat(request: Request) -> Response:
        body = json.loads(await request.body())
        messages = body.get("messages") or []
        system = next((m["content"] for m in messages if m.get("role") == "system"), "")
        if "intent" not in system or body.get("stream", True):
            return await _forward(inner, request, body)
        fake.requests.append(Recorded("POST", "/api/chat", body, dict(request.headers)))
        user = messages[-1]["content"]
        command = user.split("Command: ", 1)[-1]
        return JSONResponse(
            {
                "model": body["model"],
                "done": True,
                "done_reason": "stop",
                "message": {"role": "assistant", "content": read(command)},
                "prompt_eval_count": 40,
                "eval_count": 12,
            }
        )

    return Starlette(routes=[Route("/api/chat", chat, methods=["POST"]), Mount("/", app=inner)])


async def _forward(app: Starlette, request: Request, body: dict[str, Any]) -> Response:
    """Hand a chat the scripted reader does not answer to the plain fake."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://fake") as client:
        answer = await client.post("/api/chat", json=body)
    return Response(answer.content, answer.status_code, media_type="application/json")
