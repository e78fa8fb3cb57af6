"""A second A2A agent for the client tests: a small a2a-sdk server of its own.

It is what another vendor's agent would be: the SDK's JSON-RPC dispatcher with a
request handler that keeps tasks in memory. A message becomes a task that works
for ``delay`` seconds and completes with ``Remote answer: <TEXT>`` as its
artifact; a message whose text is ``ask me`` waits for input, and a follow-up
on that task completes it. The card names the agent's own URL (as the request
reached it) unless ``rpc_url`` overrides it, and offers 1.0 and 0.3 (or 0.3
only). Every request is recorded.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from a2a.helpers import new_text_part
from a2a.server.context import ServerCallContext
from a2a.server.events.event_queue import Event
from a2a.server.request_handlers import RequestHandler
from a2a.server.request_handlers.response_helpers import agent_card_to_dict
from a2a.server.routes.jsonrpc_dispatcher import JsonRpcDispatcher
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    Artifact,
    Message,
    Role,
    Task,
    TaskState,
    TaskStatus,
)
from a2a.utils.errors import TaskNotFoundError, UnsupportedOperationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass
class RemoteAgent:
    delay: float = 0.3
    only_v03: bool = False
    rpc_url: str | None = None  # what the card names (default: this server)
    tasks: dict[str, Task] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)

    def card(self, base: str) -> AgentCard:
        rpc = self.rpc_url or f"{base}/rpc"
        interfaces = [AgentInterface(url=rpc, protocol_binding="JSONRPC", protocol_version="0.3")]
        if not self.only_v03:
            interfaces.insert(
                0, AgentInterface(url=rpc, protocol_binding="JSONRPC", protocol_version="1.0")
            )
        return AgentCard(
            name="Remote test agent",
            description="Answers in capitals",
            version="0.1.0",
            supported_interfaces=interfaces,
            capabilities=AgentCapabilities(streaming=True),
            default_input_modes=["text/plain"],
            default_output_modes=["text/plain"],
            skills=[AgentSkill(id="shout", name="Shout", description="Capitals", tags=["x"])],
        )


class _Handler(RequestHandler):
    def __init__(self, agent: RemoteAgent) -> None:
        self.agent = agent

    def _status(self, state: int, text: str | None, task: Task) -> TaskStatus:
        status = TaskStatus(state=state)  # type: ignore[arg-type]
        if text:
            status.message.CopyFrom(
                Message(
                    role=Role.ROLE_AGENT,
                    message_id=str(uuid.uuid4()),
                    task_id=task.id,
                    context_id=task.context_id,
                    parts=[new_text_part(text)],
                )
            )
        return status

    async def _finish(self, task: Task, text: str) -> None:
        await asyncio.sleep(self.agent.delay)
        answer = new_text_part(f"Remote answer: {text}")
        task.artifacts.append(Artifact(artifact_id="a1", name="answer", parts=[answer]))
        task.status.CopyFrom(self._status(TaskState.TASK_STATE_COMPLETED, "done", task))

    async def on_message_send(self, params: Any, context: ServerCallContext) -> Task | Message:
        message = params.message
        text = " ".join(p.text for p in message.parts if p.text).upper()
        if message.task_id:
            task = self.agent.tasks.get(message.task_id)
            if task is None:
                raise TaskNotFoundError
            task.history.append(message)
            task.status.CopyFrom(self._status(TaskState.TASK_STATE_WORKING, None, task))
            asyncio.get_running_loop().create_task(self._finish(task, text))
            return task
        task = Task(id=str(uuid.uuid4()), context_id=message.context_id or str(uuid.uuid4()))
        message.task_id, message.context_id = task.id, task.context_id
        task.history.append(message)
        self.agent.tasks[task.id] = task
        if text == "ASK ME":
            task.status.CopyFrom(
                self._status(TaskState.TASK_STATE_INPUT_REQUIRED, "What shall I shout?", task)
            )
            return task
        task.status.CopyFrom(self._status(TaskState.TASK_STATE_WORKING, None, task))
        asyncio.get_running_loop().create_task(self._finish(task, text))
        return task

    async def on_get_task(self, params: Any, context: ServerCallContext) -> Task | None:
        task = self.agent.tasks.get(params.id)
        if task is None:
            raise TaskNotFoundError
        return task

    async def on_message_send_stream(
        self, params: Any, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        raise UnsupportedOperationError
        yield

    async def on_subscribe_to_task(
        self, params: Any, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        raise UnsupportedOperationError
        yield

    async def on_list_tasks(self, params: Any, context: ServerCallContext) -> Any:
        raise UnsupportedOperationError

    async def on_cancel_task(self, params: Any, context: ServerCallContext) -> Any:
        raise UnsupportedOperationError

    async def on_create_task_push_notification_config(self, params: Any, context: Any) -> Any:
        raise UnsupportedOperationError

    async def on_get_task_push_notification_config(self, params: Any, context: Any) -> Any:
        raise UnsupportedOperationError

    async def on_list_task_push_notification_configs(self, params: Any, context: Any) -> Any:
        raise UnsupportedOperationError

    async def on_delete_task_push_notification_config(self, params: Any, context: Any) -> Any:
        raise UnsupportedOperationError

    async def on_get_extended_agent_card(self, params: Any, context: Any) -> Any:
        raise UnsupportedOperationError


def remote_app(agent: RemoteAgent) -> Starlette:
    dispatcher = JsonRpcDispatcher(_Handler(agent), enable_v0_3_compat=True)

    async def card(request: Request) -> Response:
        agent.requests.append(("GET", request.url.path, dict(request.headers)))
        base = str(request.base_url).rstrip("/")
        return JSONResponse(agent_card_to_dict(agent.card(base)))

    async def rpc(request: Request) -> Response:
        body = await request.json()
        agent.requests.append(("POST", request.url.path, dict(request.headers)))
        agent.methods.append(str(body.get("method")))
        return await dispatcher.handle_requests(request)

    return Starlette(
        routes=[
            Route("/.well-known/agent-card.json", card, methods=["GET"]),
            Route("/rpc", rpc, methods=["POST"]),
        ]
    )
