"""The A2A stack the tests share: the real API served by uvicorn on loopback, a
real worker on task queues of its own (stoppable, to restart it mid-task), a
fake Ollama the agents answer with, and a receiver for push notifications.

One stack serves a whole test module (SQLite: the database does not matter
to A2A; the pipeline and webhook tests cover PostgreSQL).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.client.client import Client as A2AClient
from a2a.types import AgentCard, Message, Part, Role, SendMessageRequest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api.app import create_app
from engine.db import migrate
from engine.platform.queues import ALL_QUEUES
from engine.platform.settings import Settings
from tests.conftest import TenantFixture, make_settings, make_tenant
from tests.fake_providers import FakeProvider, serve, serve_app
from tests.models_support import model_settings, ollama_config
from workers.main import WorkerResources, build_workers


@dataclass
class Receiver:
    """Records every POST (a push notification's body and headers)."""

    url: str = ""
    received: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)


@asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()

    async def record(request: Request) -> JSONResponse:
        found.received.append((await request.body(), dict(request.headers)))
        found.arrived.set()
        return JSONResponse({"ok": True})

    async with serve_app(Starlette(routes=[Route("/push", record, methods=["POST"])])) as url:
        found.url = url
        yield found


class Workers:
    """The worker of the stack's task queues; ``stop`` and ``start`` restart it."""

    def __init__(self, env: WorkflowEnvironment, settings: Settings) -> None:
        self.env, self.settings = env, settings
        self._stack: AsyncExitStack | None = None
        self._resources: WorkerResources | None = None

    async def start(self) -> None:
        self._resources = WorkerResources.open(self.settings)
        stack = AsyncExitStack()
        workers: list[Worker] = build_workers(
            self.env.client, ALL_QUEUES, self._resources, prefix=self.settings.task_queue_prefix
        )
        for worker in workers:
            await stack.enter_async_context(worker)
        self._stack = stack

    async def stop(self) -> None:
        if self._stack is not None:
            await self._stack.aclose()
            self._stack = None
        if self._resources is not None:
            await self._resources.close()
            self._resources = None


@dataclass
class Stack:
    url: str  # the API on loopback
    settings: Settings
    tenant: TenantFixture
    other: TenantFixture
    http: httpx.AsyncClient  # the tenant's credential on every request
    fake: FakeProvider
    workers: Workers
    push: Receiver
    card: AgentCard
    agent_id: str = ""  # the tenant's agent, once a test module made one

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.tenant.key}

    def client(self, *, streaming: bool = False, http: httpx.AsyncClient | None = None,
               card: AgentCard | None = None) -> A2AClient:  # fmt: skip
        config = ClientConfig(httpx_client=http or self.http, streaming=streaming)
        return ClientFactory(config).create(card or self.card)

    async def api(self, method: str, path: str, body: Any = None) -> Any:
        response = await self.http.request(method, f"{self.url}{path}", json=body)
        assert response.status_code < 300, response.text
        return response.json()


async def eventually(check: Callable[[], bool], seconds: float = 30) -> None:
    """Wait until ``check()`` holds (a timeout fails the test)."""
    async with asyncio.timeout(seconds):
        while True:
            if check():
                return
            await asyncio.sleep(0.05)


def user_message(text: str, **metadata: Any) -> SendMessageRequest:
    request = SendMessageRequest(
        message=Message(role=Role.ROLE_USER, message_id=str(uuid.uuid4()), parts=[Part(text=text)])
    )
    if metadata:
        request.metadata.update(metadata)
    return request


@asynccontextmanager
async def a2a_stack(
    tmp: Path,
    temporal_env: WorkflowEnvironment,
    temporal_address: str,
    allowed_hosts: Sequence[str] = (),
) -> AsyncIterator[Stack]:
    """The stack; ``allowed_hosts`` (``host:port``) are opened to the tenants too."""
    async with AsyncExitStack() as stack:
        fake = await stack.enter_async_context(serve(FakeProvider("ollama")))
        push = await stack.enter_async_context(receiver())
        base = make_settings(
            tmp,
            database_url=f"sqlite:///{tmp / 'weft.db'}",
            temporal_address=temporal_address,
        )
        await asyncio.to_thread(migrate.upgrade, base)
        settings = model_settings(
            base,
            {"ollama": ollama_config(fake, models=["llama-test"])},
            task_queue_prefix=f"a2a{uuid.uuid4().hex[:8]}-",
            tenant_egress_allowed_hosts=[push.url.removeprefix("http://"), *allowed_hosts],
            webhook_retry_schedule_seconds=[0, 1],
        )
        tenant = await make_tenant(settings, "a2a")
        other = await make_tenant(settings, "a2a-other")
        workers = Workers(temporal_env, settings)
        await workers.start()
        stack.push_async_callback(workers.stop)
        url = await stack.enter_async_context(serve_app(create_app(settings), lifespan="on"))
        http = await stack.enter_async_context(
            httpx.AsyncClient(headers={"X-API-Key": tenant.key}, timeout=60)
        )
        card = await A2ACardResolver(http, url).get_agent_card()
        yield Stack(url, settings, tenant, other, http, fake, workers, push, card)
