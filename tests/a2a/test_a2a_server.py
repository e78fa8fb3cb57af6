"""The A2A server end to end: the a2a-sdk's own client talks to the API served by
uvicorn on loopback, and a real worker runs each task's ``A2ATaskWorkflow``.

Agents answer through a fake Ollama (``Echo: <the last user message>``), so
every answer is a real model call through the model layer.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from a2a.client.errors import A2AClientError
from a2a.helpers import get_artifact_text, new_data_part
from a2a.types import (
    AgentCard,
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetExtendedAgentCardRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTasksRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    SubscribeToTaskRequest,
    Task,
    TaskPushNotificationConfig,
    TaskState,
)
from a2a.utils.errors import (
    InvalidParamsError,
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from engine.a2a.client import RemoteAgentError, call_remote_agent
from engine.db.connection import create_engine, create_sessionmaker
from engine.db.tables import A2ATask, Event, Execution
from engine.events.signing import verify
from tests.a2a.support import Stack, a2a_stack, eventually, user_message

pytestmark = pytest.mark.asyncio(loop_scope="session")

TERMINAL = {
    TaskState.TASK_STATE_COMPLETED,
    TaskState.TASK_STATE_FAILED,
    TaskState.TASK_STATE_CANCELED,
    TaskState.TASK_STATE_REJECTED,
}


@pytest.fixture(scope="module")
async def stack(
    tmp_path_factory: pytest.TempPathFactory,
    temporal_env: WorkflowEnvironment,
    temporal_address: str,
) -> AsyncIterator[Stack]:
    async with a2a_stack(tmp_path_factory.mktemp("a2a"), temporal_env, temporal_address) as made:
        agent = await made.api(
            "POST",
            "/api/v1/agents",
            {"name": "Echoer", "type": "writer", "description": "Repeats what it hears",
             "system_prompt": "You repeat the question.", "capabilities": ["echo"]},
        )  # fmt: skip
        made.fake.requests.clear()
        made.agent_id = agent["data"]["id"]
        yield made


async def until_state(stack: Stack, task_id: str, states: set[int], seconds: float = 30) -> Task:
    client = stack.client()
    async with asyncio.timeout(seconds):
        while True:
            task = await client.get_task(GetTaskRequest(id=task_id))
            if task.status.state in states:
                return task
            await asyncio.sleep(0.1)


async def rows(stack: Stack, model: Any, **where: Any) -> list[Any]:
    engine = create_engine(stack.settings)
    try:
        async with create_sessionmaker(engine)() as session:
            query = select(model)
            for key, value in where.items():
                query = query.where(getattr(model, key) == value)
            return list(await session.scalars(query))
    finally:
        await engine.dispose()


async def row_in_state(stack: Stack, task_id: str, state: str, seconds: float = 15) -> Any:
    """The task's index row once it reads ``state`` (or as it is after ``seconds``)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        (row,) = await rows(stack, A2ATask, id=task_id)
        if row.state == state or asyncio.get_running_loop().time() > deadline:
            return row
        await asyncio.sleep(0.2)


def v03_card(card: AgentCard) -> AgentCard:
    only = AgentCard()
    only.CopyFrom(card)
    del only.supported_interfaces[:]
    only.supported_interfaces.extend(
        i for i in card.supported_interfaces if i.protocol_version == "0.3"
    )
    return only


async def test_the_public_card_describes_the_deployment_and_the_extended_card_the_tenant(
    stack: Stack,
) -> None:
    async with httpx.AsyncClient() as anonymous:
        raw = (await anonymous.get(f"{stack.url}/.well-known/agent-card.json")).json()
    assert [(i["protocolVersion"], i["url"]) for i in raw["supportedInterfaces"]] == [
        ("1.0", f"{stack.url}/a2a"),
        ("0.3", f"{stack.url}/a2a"),
    ]
    assert (raw["protocolVersion"], raw["url"], raw["preferredTransport"]) == (
        "0.3",
        f"{stack.url}/a2a",
        "JSONRPC",
    )  # the 0.3 fields, merged in for 0.3 clients
    assert sorted(raw["securitySchemes"]) == ["apiKey", "bearer"]
    assert raw["securitySchemes"]["apiKey"]["apiKeySecurityScheme"]["name"] == "X-API-Key"
    assert [s["id"] for s in raw["skills"]] == ["agent", "pipeline"]  # no tenant's data
    assert raw["capabilities"] == {
        "streaming": True,
        "pushNotifications": True,
        "extendedAgentCard": True,
    }
    assert stack.card.name == "Weftworks"

    pipeline = await stack.api(
        "POST",
        "/api/workflows",
        {"name": "Shouter", "description": "Says it back",
         "steps": [{"id": "say", "type": "transform", "config": {"output": "{{message}}"}}]},
    )  # fmt: skip
    extended = await stack.client().get_extended_agent_card(GetExtendedAgentCardRequest())
    skills = {skill.id: skill for skill in extended.skills}
    agent_skill = skills[f"agent:{stack.agent_id}"]
    assert (agent_skill.name, list(agent_skill.tags)) == ("Echoer", ["agent", "writer", "echo"])
    assert skills[f"pipeline:{pipeline['id']}"].name == "Shouter"
    enveloped = await stack.api("GET", "/api/v1/a2a/agent-card")
    assert {s["id"] for s in enveloped["data"]["skills"]} == set(skills)
    # Another tenant sees its own (empty) list.
    async with httpx.AsyncClient(headers={"X-API-Key": stack.other.key}) as other:
        theirs = (await other.get(f"{stack.url}/api/v1/a2a/agent-card")).json()
    assert theirs["data"]["skills"] == []


async def test_a_task_is_answered_by_the_agent_and_polled_to_completion(stack: Stack) -> None:
    client = stack.client()
    request = user_message("hello there")
    request.configuration.return_immediately = True
    sent = [event async for event in client.send_message(request)]
    task = sent[-1].task
    assert task.status.state == TaskState.TASK_STATE_SUBMITTED
    assert task.id.startswith("a2t_") and task.context_id
    done = await until_state(stack, task.id, TERMINAL)
    assert done.status.state == TaskState.TASK_STATE_COMPLETED
    assert get_artifact_text(done.artifacts[0]) == "Echo: hello there"
    assert [m.role for m in done.history] == [Role.ROLE_USER, Role.ROLE_AGENT]
    chat = [r.body for r in stack.fake.requests if r.path == "/api/chat"][-1]
    assert chat["messages"][0] == {"role": "system", "content": "You repeat the question."}
    # The index row keeps the outcome (written by the activity that follows the
    # change, so a moment after the workflow shows it); every change was announced.
    row = await row_in_state(stack, task.id, "completed")
    assert (row.state, row.target_kind, row.target_id) == (
        "completed",
        "agent",
        stack.agent_id,
    )
    events = await rows(stack, Event, subject=task.id)
    assert [e.data["state"] for e in sorted(events, key=lambda e: e.data["version"])] == [
        "submitted",
        "working",
        "completed",
    ]
    listed = await client.list_tasks(ListTasksRequest(include_artifacts=True))
    assert task.id in [t.id for t in listed.tasks]
    completed = await client.list_tasks(
        ListTasksRequest(status=TaskState.TASK_STATE_COMPLETED, context_id=task.context_id)
    )
    assert [t.id for t in completed.tasks] == [task.id]
    assert not completed.tasks[0].artifacts  # only with include_artifacts


async def test_a_blocking_send_returns_the_finished_task(stack: Stack) -> None:
    sent = [e async for e in stack.client().send_message(user_message("block please"))]
    task = sent[-1].task
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    assert get_artifact_text(task.artifacts[0]) == "Echo: block please"


async def test_a_multi_turn_task_waits_for_input_continues_and_is_cancelled(stack: Stack) -> None:
    client = stack.client()
    first = [e async for e in client.send_message(user_message("first question", multi_turn=True))]
    task = first[-1].task
    assert task.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
    assert task.status.message.parts[0].text == "Echo: first question"
    # The next message names the task: the same run continues with the conversation.
    follow = SendMessageRequest(
        message=Message(
            role=Role.ROLE_USER,
            message_id="m-2",
            task_id=task.id,
            context_id=task.context_id,
            parts=[Part(text="second question")],
        )
    )
    second = [e async for e in client.send_message(follow)]
    again = second[-1].task
    assert (again.id, again.status.state) == (task.id, TaskState.TASK_STATE_INPUT_REQUIRED)
    assert again.status.message.parts[0].text == "Echo: second question"
    assert len(again.history) == 4
    chat = [r.body for r in stack.fake.requests if r.path == "/api/chat"][-1]
    assert [m["role"] for m in chat["messages"]] == [
        "system",
        "user",
        "assistant",
        "user",
    ]
    cancelled = await client.cancel_task(CancelTaskRequest(id=task.id))
    assert cancelled.status.state == TaskState.TASK_STATE_CANCELED
    with pytest.raises(TaskNotCancelableError):
        await client.cancel_task(CancelTaskRequest(id=task.id))
    with pytest.raises(UnsupportedOperationError):  # it takes no more messages
        follow.message.message_id = "m-3"
        [e async for e in client.send_message(follow)]
    (row,) = await rows(stack, A2ATask, id=task.id)
    assert row.state == "canceled"


async def test_a_streamed_task_reports_each_change(stack: Stack) -> None:
    kinds = []
    async for event in stack.client(streaming=True).send_message(user_message("stream me")):
        kind = event.WhichOneof("payload")
        if kind == "task":
            kinds.append(("task", TaskState.Name(event.task.status.state)))
        elif kind == "status_update":
            kinds.append(("status", TaskState.Name(event.status_update.status.state)))
        elif kind == "artifact_update":
            kinds.append(("artifact", get_artifact_text(event.artifact_update.artifact)))
    # The stream follows the run: a "working" state shorter than one look at the run
    # (the local model answers at once) may not be seen; the rest always is.
    seen = [k for k in kinds if k != ("status", "TASK_STATE_WORKING")]
    assert seen == [
        ("task", "TASK_STATE_SUBMITTED"),
        ("artifact", "Echo: stream me"),
        ("status", "TASK_STATE_COMPLETED"),
    ], kinds
    assert kinds.count(("status", "TASK_STATE_WORKING")) <= 1, kinds


async def test_subscribing_follows_an_open_task(stack: Stack) -> None:
    client = stack.client(streaming=True)
    request = user_message("wait for me", multi_turn=True)
    request.configuration.return_immediately = True
    first = [e async for e in stack.client().send_message(request)][-1].task
    states = [
        TaskState.Name(e.task.status.state if e.HasField("task") else e.status_update.status.state)
        async for e in client.subscribe(SubscribeToTaskRequest(id=first.id))
        if e.HasField("task") or e.HasField("status_update")
    ]
    assert states[-1] == "TASK_STATE_INPUT_REQUIRED"
    await client.cancel_task(CancelTaskRequest(id=first.id))
    # The cancel reaches the run asynchronously; once the task has ended:
    await until_state(stack, first.id, {TaskState.TASK_STATE_CANCELED})
    with pytest.raises(UnsupportedOperationError):  # a finished task has nothing to follow
        [e async for e in client.subscribe(SubscribeToTaskRequest(id=first.id))]


async def test_the_0_3_methods_work_on_the_same_endpoint(stack: Stack) -> None:
    card03 = v03_card(stack.card)
    client = stack.client(card=card03)
    assert type(client._transport).__name__ == "CompatJsonRpcTransport"
    sent = [e async for e in client.send_message(user_message("old protocol"))]
    task = sent[-1].task
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    assert get_artifact_text(task.artifacts[0]) == "Echo: old protocol"
    assert (await client.get_task(GetTaskRequest(id=task.id))).id == task.id
    open_task = [e async for e in client.send_message(user_message("keep open", multi_turn=True))][
        -1
    ].task
    assert open_task.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
    cancelled = await client.cancel_task(CancelTaskRequest(id=open_task.id))
    assert cancelled.status.state == TaskState.TASK_STATE_CANCELED
    streamed = [
        e.WhichOneof("payload")
        async for e in stack.client(card=card03, streaming=True).send_message(
            user_message("old stream")
        )
    ]
    assert streamed[0] == "task" and streamed[-1] == "status_update"
    # The wire: 0.3's names and shapes, no version header.
    raw = await stack.http.post(
        f"{stack.url}/a2a",
        headers={"A2A-Version": ""},
        json={"jsonrpc": "2.0", "id": "r1", "method": "tasks/get", "params": {"id": task.id}},
    )
    result = raw.json()["result"]
    assert (result["kind"], result["status"]["state"]) == ("task", "completed")
    # And 1.0's, as the README shows them; a 1.0 method needs the version header.
    body = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "SendMessage",
        "params": {
            "message": {"role": "ROLE_USER", "messageId": "m1", "parts": [{"text": "raw"}]},
            "metadata": {"agent_id": stack.agent_id},
            "configuration": {"returnImmediately": True},
        },
    }
    answered = await stack.http.post(f"{stack.url}/a2a", headers={"A2A-Version": "1.0"}, json=body)
    assert answered.json()["result"]["task"]["status"]["state"] == "TASK_STATE_SUBMITTED"
    unversioned = await stack.http.post(f"{stack.url}/a2a", headers={"A2A-Version": ""}, json=body)
    assert unversioned.json()["error"]["code"] == -32009


async def test_without_a_credential_the_endpoint_answers_401(stack: Stack) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "a2t_x"}}
    async with httpx.AsyncClient() as anonymous:
        response = await anonymous.post(f"{stack.url}/a2a", json=body)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "UNAUTHORIZED"
        card = await anonymous.get(f"{stack.url}/.well-known/agent-card.json")
        assert card.status_code == 200
        client = stack.client(http=anonymous)
        with pytest.raises(A2AClientError, match="401"):
            await client.get_task(GetTaskRequest(id="a2t_x"))


async def test_another_tenants_task_is_not_found(stack: Stack) -> None:
    mine = [e async for e in stack.client().send_message(user_message("private"))][-1].task
    async with httpx.AsyncClient(headers={"X-API-Key": stack.other.key}, timeout=30) as other:
        theirs = stack.client(http=other)
        with pytest.raises(TaskNotFoundError):
            await theirs.get_task(GetTaskRequest(id=mine.id))
        with pytest.raises(TaskNotFoundError):
            await theirs.cancel_task(CancelTaskRequest(id=mine.id))
        assert mine.id not in [t.id for t in (await theirs.list_tasks(ListTasksRequest())).tasks]
        # The other tenant has no agent: its task is rejected, not run.
        rejected = [e async for e in theirs.send_message(user_message("anyone?"))][-1].task
        assert rejected.status.state == TaskState.TASK_STATE_REJECTED
    with pytest.raises(InvalidParamsError):  # a target the tenant does not have
        [e async for e in stack.client().send_message(user_message("x", agent_id="agt_nope"))]


async def test_a_pipeline_answers_a_task_for_its_skill(stack: Stack) -> None:
    pipeline = await stack.api(
        "POST",
        "/api/workflows",
        {"name": "Greeter", "steps": [
            {"id": "greet", "type": "transform", "config": {"output": "Hi {{name}}: {{message}}"}}
        ]},
    )  # fmt: skip
    request = user_message("welcome aboard", skill=f"pipeline:{pipeline['id']}")
    request.message.parts.append(new_data_part({"name": "Ada"}))  # variables
    task = [e async for e in stack.client().send_message(request)][-1].task
    assert task.status.state == TaskState.TASK_STATE_COMPLETED, task.status
    assert get_artifact_text(task.artifacts[0]) == "Hi Ada: welcome aboard"
    (execution,) = await rows(stack, Execution, idempotency_key=f"a2a:{task.id}:1")
    assert execution.status == "completed" and execution.definition_id == pipeline["id"]


async def test_push_configs_are_kept_and_each_change_is_pushed_signed(stack: Stack) -> None:
    client = stack.client()
    request = user_message("notify me", multi_turn=True)
    request.configuration.return_immediately = True
    task = [e async for e in client.send_message(request)][-1].task
    await until_state(stack, task.id, {TaskState.TASK_STATE_INPUT_REQUIRED})
    stack.push.received.clear()
    config = TaskPushNotificationConfig(
        task_id=task.id, id="cfg1", url=f"{stack.push.url}/push", token="push-token-123"
    )
    saved = await client.create_task_push_notification_config(config)
    assert (saved.id, saved.url, saved.token) == ("cfg1", config.url, "push-token-123")
    got = await client.get_task_push_notification_config(
        GetTaskPushNotificationConfigRequest(task_id=task.id, id="cfg1")
    )
    assert got.url == config.url
    listed = await client.list_task_push_notification_configs(
        ListTaskPushNotificationConfigsRequest(task_id=task.id)
    )
    assert [c.id for c in listed.configs] == ["cfg1"]
    with pytest.raises(InvalidParamsError):  # a private address the operator did not open
        await client.create_task_push_notification_config(
            TaskPushNotificationConfig(task_id=task.id, id="bad", url="http://10.1.2.3/hook")
        )
    follow = user_message("that is all", final=True)
    follow.message.task_id = task.id
    done = [e async for e in client.send_message(follow)][-1].task
    assert done.status.state == TaskState.TASK_STATE_COMPLETED
    await eventually(lambda: any(b'"completed"' in body for body, _ in stack.push.received))
    pushed = []
    for body, headers in stack.push.received:
        verify("push-token-123", body, headers)  # signed with the config's token
        pushed.append(json.loads(body))
    assert {p["type"] for p in pushed} == {"a2a.task.status"}
    # Each change from the config's creation on, once: the input-required one may be
    # recorded a moment after the run reported it, so it can come first.
    states = [p["data"]["state"] for p in pushed]
    assert states[-2:] == ["working", "completed"], states
    assert states[:-2] in ([], ["input-required"]), states
    assert all(p["data"]["task"]["id"] == task.id for p in pushed)
    await client.delete_task_push_notification_config(
        DeleteTaskPushNotificationConfigRequest(task_id=task.id, id="cfg1")
    )
    empty = await client.list_task_push_notification_configs(
        ListTaskPushNotificationConfigsRequest(task_id=task.id)
    )
    assert list(empty.configs) == []


async def test_a_task_survives_a_worker_restart(stack: Stack) -> None:
    client = stack.client()
    stack.fake.behaviour = "hang"  # the model call never answers...
    before = len(stack.fake.requests)
    request = user_message("survive this")
    request.configuration.return_immediately = True
    task = [e async for e in client.send_message(request)][-1].task
    try:
        await eventually(lambda: any(r.path == "/api/chat" for r in stack.fake.requests[before:]))
        await stack.workers.stop()  # ...and its worker goes away mid-call
        stack.fake.behaviour = "ok"
        # With no worker the run cannot answer a query: the row answers.
        waiting = await client.get_task(GetTaskRequest(id=task.id))
        assert waiting.status.state == TaskState.TASK_STATE_WORKING
    finally:
        stack.fake.behaviour = "ok"
        await stack.workers.start()
    done = await until_state(stack, task.id, TERMINAL, seconds=60)
    assert done.status.state == TaskState.TASK_STATE_COMPLETED
    assert get_artifact_text(done.artifacts[0]) == "Echo: survive this"


async def test_the_client_library_talks_to_this_server_in_both_protocols(stack: Stack) -> None:
    opened = stack.settings.model_copy(
        update={"tenant_egress_allowed_hosts": [stack.url.removeprefix("http://")]}
    )
    credentials = {"X-API-Key": stack.tenant.key}
    for protocol in ("1.0", "0.3"):
        result = await call_remote_agent(
            opened, stack.url, f"round trip {protocol}", headers=credentials, protocol=protocol
        )
        assert (result.state, result.text, result.protocol) == (
            "completed",
            f"Echo: round trip {protocol}",
            protocol,
        )
    with pytest.raises(RemoteAgentError, match="401"):
        await call_remote_agent(opened, stack.url, "no key")


async def test_a_push_config_sent_with_the_message_gets_every_change(stack: Stack) -> None:
    request = user_message("push from the start")
    request.configuration.task_push_notification_config.CopyFrom(
        TaskPushNotificationConfig(url=f"{stack.push.url}/push", token="first-token-456")
    )
    task = [e async for e in stack.client().send_message(request)][-1].task
    assert task.status.state == TaskState.TASK_STATE_COMPLETED

    def mine() -> list[dict[str, Any]]:
        bodies = [json.loads(body) for body, _ in stack.push.received]
        return [b["data"] for b in bodies if b["data"]["task_id"] == task.id]

    await eventually(lambda: len(mine()) >= 2)
    assert sorted(d["state"] for d in mine()) == ["completed", "working"]
    (config,) = (
        await stack.client().list_task_push_notification_configs(
            ListTaskPushNotificationConfigsRequest(task_id=task.id)
        )
    ).configs
    assert (config.url, config.token) == (f"{stack.push.url}/push", "first-token-456")
    refused = user_message("push to a private address")
    refused.configuration.task_push_notification_config.CopyFrom(
        TaskPushNotificationConfig(url="http://192.168.7.7/hook")
    )
    with pytest.raises(InvalidParamsError):
        [e async for e in stack.client().send_message(refused)]
