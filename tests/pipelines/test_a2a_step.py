"""The ``a2a`` pipeline step end to end: the API, a real worker and the Temporal dev
server run a pipeline whose step calls a second A2A agent — an a2a-sdk server of
the test's own on loopback (``tests.a2a.remote_agent``) — through the tenant
egress guard, waits for its task, and hands the answer to the next step."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from engine.platform.settings import Settings
from tests.a2a.remote_agent import RemoteAgent, remote_app
from tests.conftest import DocStack, worker_stack
from tests.fake_providers import serve_app
from tests.pipelines.support import SQLITE_ONLY, create_workflow, execute, finish

pytestmark = pytest.mark.asyncio


@dataclass
class A2AStack:
    api: DocStack
    agent: RemoteAgent
    url: str  # the remote agent's base URL (its port is open to tenants)
    closed: RemoteAgent  # an agent on a loopback port nobody opened
    closed_url: str


@pytest.fixture
async def stack(settings: Settings, temporal_env: WorkflowEnvironment) -> AsyncIterator[A2AStack]:
    agent, closed = RemoteAgent(delay=0.2), RemoteAgent()
    async with serve_app(remote_app(agent)) as url, serve_app(remote_app(closed)) as closed_url:
        configured = settings.model_copy(
            update={"tenant_egress_allowed_hosts": [url.removeprefix("http://")]}
        )
        async with worker_stack(configured, temporal_env, "a2a-step") as api:
            yield A2AStack(api, agent, url, closed, closed_url)


def a2a_step(step_id: str, url: str, message: str, **config: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "a2a", "config": {"agent_url": url, "message": message,
                                                     **config}}  # fmt: skip


async def run(stack: A2AStack, steps: list[dict[str, Any]], **input_data: Any) -> dict[str, Any]:
    workflow_id = await create_workflow(stack.api, {"name": "Ask another agent", "steps": steps})
    return await finish(stack.api, await execute(stack.api, workflow_id, input_data))


async def test_a_step_asks_a_remote_agent_and_the_next_step_uses_its_answer(
    stack: A2AStack,
) -> None:
    done = await run(
        stack,
        [
            a2a_step("ask", f"{stack.url}/.well-known/agent-card.json", "ship {{order}}"),
            {
                "id": "use",
                "type": "transform",
                "dependencies": ["ask"],
                "config": {"output": {"heard": "{{steps.ask.output.text}}"}},
            },
        ],  # fmt: skip
        order="order 7",
    )
    assert done["status"] == "completed", done
    ask = done["results"]["ask"]
    assert ask["output"]["state"] == "completed"
    assert ask["output"]["text"] == "Remote answer: SHIP ORDER 7"
    assert ask["output"]["task_id"] in stack.agent.tasks
    assert done["results"]["use"]["output"] == {"heard": "Remote answer: SHIP ORDER 7"}
    # The exchange is in the execution's trace: what was sent and what came back.
    transcript = ask["detail"]["transcript"]
    assert [m["role"] for m in transcript] == ["ROLE_USER", "ROLE_AGENT"]
    assert transcript[0]["parts"][0]["text"] == "ship order 7"
    assert ask["detail"]["protocol"] == "1.0"
    # One message for the step, its id naming execution and step; then polls.
    assert stack.agent.methods[0] == "SendMessage"
    assert stack.agent.methods.count("SendMessage") == 1
    (task,) = stack.agent.tasks.values()
    assert task.history[0].message_id == f"{done['id']}:ask"


@SQLITE_ONLY
async def test_input_required_is_answered_by_a_later_step(stack: A2AStack) -> None:
    done = await run(
        stack,
        [
            a2a_step("open", stack.url, "ask me"),
            {
                **a2a_step(
                    "answer",
                    stack.url,
                    "louder",
                    protocol="0.3",
                    task_id="{{steps.open.output.task_id}}",
                    context_id="{{steps.open.output.context_id}}",
                ),
                "dependencies": ["open"],
            },
        ],  # fmt: skip
    )
    assert done["status"] == "completed", done
    opened, answered = done["results"]["open"]["output"], done["results"]["answer"]["output"]
    assert (opened["state"], opened["text"]) == ("input-required", "What shall I shout?")
    assert (answered["state"], answered["text"]) == ("completed", "Remote answer: LOUDER")
    assert answered["task_id"] == opened["task_id"]  # the same remote task, continued
    assert len(stack.agent.tasks) == 1
    assert done["results"]["answer"]["detail"]["protocol"] == "0.3"


@SQLITE_ONLY
async def test_a_loopback_agent_the_operator_did_not_open_is_never_called(
    stack: A2AStack,
) -> None:
    done = await run(
        stack,
        [a2a_step("ask", stack.closed_url, "hello"),
         {"id": "after", "type": "transform", "dependencies": ["ask"], "config": {"output": 1}}],
    )  # fmt: skip
    assert done["status"] == "failed"
    assert done["results"]["ask"]["error_code"] == "EGRESS_DENIED"
    assert done["results"]["after"]["status"] == "pending"
    assert stack.closed.requests == []  # refused before any connection
    # Refused once: a forbidden address is not retried.
    logs = [entry["message"] for entry in done["logs"] if entry.get("step_id") == "ask"]
    assert sum("failed" in message for message in logs) == 1


@SQLITE_ONLY
async def test_an_a2a_step_without_an_agent_url_is_rejected_when_saved(stack: A2AStack) -> None:
    response = await stack.api.http.post(
        "/api/workflows",
        json={"name": "No agent", "steps": [{"type": "a2a", "config": {"message": "hi"}}]},
        headers=stack.api.headers,
    )
    assert response.status_code == 422, response.text
    assert "config.agent_url" in response.text
