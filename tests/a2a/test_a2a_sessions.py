"""z2's A2A sessions end to end: the API served by uvicorn on loopback, a real
worker running each session's ``A2AExchangeWorkflow``, agents answering through
a fake Ollama (``Echo: <the last user message>``, priced, so turns cost money),
and a second A2A agent of the test's own (``tests/a2a/remote_agent.py``) whose
loopback port the operator opened to tenants."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from engine.db.connection import create_engine, create_sessionmaker
from engine.db.tables import A2ASession
from tests.a2a.remote_agent import RemoteAgent, remote_app
from tests.a2a.support import Stack, a2a_stack
from tests.fake_providers import serve_app

pytestmark = pytest.mark.asyncio(loop_scope="session")


@dataclass
class World:
    stack: Stack
    source_id: str  # the tenant's agents
    target_id: str
    remote: RemoteAgent  # on a loopback port the operator opened
    remote_url: str
    closed: RemoteAgent  # on a loopback port nobody opened
    closed_url: str

    async def call(self, method: str, path: str, body: Any = None) -> httpx.Response:
        return await self.stack.http.request(method, f"{self.stack.url}{path}", json=body)

    async def ok(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        response = await self.call(method, path, body)
        assert response.status_code < 300, response.text
        data: dict[str, Any] = response.json()["data"]
        return data

    async def open_session(self, **target: Any) -> dict[str, Any]:
        body = {
            "source_agent_id": self.source_id,
            **(target or {"target_agent_id": self.target_id}),
        }
        response = await self.call("POST", "/api/v1/a2a/handshake", body)
        assert response.status_code == 201, response.text
        data: dict[str, Any] = response.json()["data"]
        return data

    def chats(self) -> int:
        return self.stack.fake.count("/api/chat")


@pytest.fixture(scope="module")
async def world(
    tmp_path_factory: pytest.TempPathFactory,
    temporal_env: WorkflowEnvironment,
    temporal_address: str,
) -> AsyncIterator[World]:
    remote, closed = RemoteAgent(delay=0.05), RemoteAgent(delay=0.05)
    async with (
        serve_app(remote_app(remote)) as remote_url,
        serve_app(remote_app(closed)) as closed_url,
        a2a_stack(
            tmp_path_factory.mktemp("a2a-sessions"),
            temporal_env,
            temporal_address,
            allowed_hosts=[remote_url.removeprefix("http://")],
        ) as stack,
    ):
        agents = []
        for name, prompt, capabilities in (
            ("Asker", "You ask questions.", ["ask", "summarise"]),
            ("Echoer", "You repeat the question.", ["echo", "summarise"]),
        ):
            made = await stack.api(
                "POST",
                "/api/v1/agents",
                {"name": name, "type": "writer", "description": f"{name} agent",
                 "system_prompt": prompt, "capabilities": capabilities},
            )  # fmt: skip
            agents.append(made["data"]["id"])
        yield World(stack, agents[0], agents[1], remote, remote_url, closed, closed_url)


async def test_two_agents_shake_hands_negotiate_and_talk(world: World) -> None:
    opened = await world.open_session()
    session_id = opened["session_id"]
    assert session_id.startswith("a2s_")
    assert (opened["status"], opened["protocol_version"], opened["workflow_id"]) == (
        "handshake",
        "1.0",
        f"a2a-{session_id}",
    )
    assert (opened["source_agent"]["id"], opened["source_agent"]["name"]) == (
        world.source_id,
        "Asker",
    )
    assert (opened["target_agent"]["kind"], opened["target_agent"]["name"]) == ("agent", "Echoer")
    assert opened["capabilities"]["shared"] == ["summarise"]
    assert opened["capabilities"]["protocol_versions"] == ["1.0", "0.3"]

    agreed = await world.ok(
        "POST",
        "/api/v1/a2a/negotiate",
        {"session_id": session_id, "protocol_version": "0.3", "content_types": ["text/plain"],
         "max_message_size": 2000, "max_turns": 10, "budget_usd": 1.0},
    )  # fmt: skip
    assert agreed == {
        "session_id": session_id,
        "status": "negotiated",
        "protocol_version": "0.3",
        "content_types": ["text/plain"],
        "max_message_size": 2000,
        "max_turns": 10,
        "budget_usd": 1.0,
        "negotiated": True,
        "maxima": {"max_message_size": 32768, "max_turns": 200, "budget_usd": 10.0},
    }

    before = world.chats()
    first = await world.ok(
        "POST", "/api/v1/a2a/message", {"session_id": session_id, "content": "What is Q3 revenue?"}
    )
    assert first["reply"] == "Echo: What is Q3 revenue?"  # the target agent's model answered
    assert (first["turn"], first["turns"], first["max_turns"]) == (1, 1, 10)
    assert first["cost_usd"] > 0 and first["tokens_used"] > 0
    assert first["model"] == "llama-test"
    second = await world.ok(
        "POST", "/api/v1/a2a/message", {"session_id": session_id, "content": "And Q4?"}
    )
    assert (second["reply"], second["turn"]) == ("Echo: And Q4?", 2)
    assert world.chats() == before + 2
    chat = [r.body for r in world.stack.fake.requests if r.path == "/api/chat"][-1]
    assert [m["role"] for m in chat["messages"]] == [
        "system",
        "user",
        "assistant",
        "user",
    ]  # fmt: skip  (the target read the conversation so far, as itself)
    assert chat["messages"][0]["content"] == "You repeat the question."

    listed = await world.ok("GET", "/api/v1/a2a/sessions")
    (mine,) = [s for s in listed["sessions"] if s["session_id"] == session_id]
    assert (mine["status"], mine["turns"]) == ("active", 2)
    assert mine["cost_usd"] == pytest.approx(first["cost_usd"] + second["cost_usd"])
    assert mine["limits"]["max_turns"] == 10 and mine["limits"]["negotiated"] is True

    detail = await world.ok("GET", f"/api/v1/a2a/sessions/{session_id}")
    assert detail["live"] is True
    assert [(e["sender"], e["content"]) for e in detail["transcript"]] == [
        ("source", "What is Q3 revenue?"),
        ("target", "Echo: What is Q3 revenue?"),
        ("source", "And Q4?"),
        ("target", "Echo: And Q4?"),
    ]
    assert detail["tokens_used"] == first["tokens_used"] + second["tokens_used"]

    closed = await world.ok("DELETE", f"/api/v1/a2a/sessions/{session_id}")
    assert (closed["status"], closed["turns"]) == ("closed", 2)
    again = await world.ok("DELETE", f"/api/v1/a2a/sessions/{session_id}")
    assert again["status"] == "closed"  # closing twice changes nothing
    late = await world.call(
        "POST", "/api/v1/a2a/message", {"session_id": session_id, "content": "still there?"}
    )
    assert (late.status_code, late.json()["error"]["code"]) == (409, "A2A_SESSION_CLOSED")
    active = await world.ok("GET", "/api/v1/a2a/sessions")
    assert session_id not in [s["session_id"] for s in active["sessions"]]
    everything = await world.ok("GET", "/api/v1/a2a/sessions?status=closed")
    assert session_id in [s["session_id"] for s in everything["sessions"]]
    assert world.chats() == before + 2


async def test_a_message_over_the_negotiated_size_is_refused_and_not_delivered(
    world: World,
) -> None:
    session_id = (await world.open_session())["session_id"]
    await world.ok(
        "POST", "/api/v1/a2a/negotiate", {"session_id": session_id, "max_message_size": 20}
    )
    before = world.chats()
    big = await world.call(
        "POST", "/api/v1/a2a/message", {"session_id": session_id, "content": "x" * 21}
    )
    assert big.status_code == 413, big.text
    error = big.json()["error"]
    assert error["code"] == "A2A_MESSAGE_TOO_LARGE"
    assert error["details"] == {"limit": "max_message_size", "max_message_size": 20, "size": 21}
    # Over the server's maximum: refused before it reaches the run.
    huge = await world.call(
        "POST", "/api/v1/a2a/message", {"session_id": session_id, "content": "y" * 40_000}
    )
    assert (huge.status_code, huge.json()["error"]["code"]) == (413, "A2A_MESSAGE_TOO_LARGE")
    assert world.chats() == before  # nothing was delivered
    (row,) = await session_rows(world, session_id)
    assert row.turns == 0
    fits = await world.ok(
        "POST", "/api/v1/a2a/message", {"session_id": session_id, "content": "x" * 20}
    )
    assert fits["turn"] == 1


async def test_max_turns_and_the_budget_are_enforced(world: World) -> None:
    session_id = (await world.open_session())["session_id"]
    await world.ok("POST", "/api/v1/a2a/negotiate", {"session_id": session_id, "max_turns": 2})
    for n in (1, 2):
        sent = await world.ok(
            "POST", "/api/v1/a2a/message", {"session_id": session_id, "content": f"turn {n}"}
        )
        assert sent["turn"] == n
    before = world.chats()
    third = await world.call(
        "POST", "/api/v1/a2a/message", {"session_id": session_id, "content": "turn 3"}
    )
    assert third.status_code == 422, third.text
    assert third.json()["error"]["code"] == "A2A_LIMIT_EXCEEDED"
    assert third.json()["error"]["details"] == {"limit": "max_turns", "max_turns": 2, "turns": 2}
    assert world.chats() == before
    # Lowering max_turns below the turns taken is refused too.
    lower = await world.call(
        "POST", "/api/v1/a2a/negotiate", {"session_id": session_id, "max_turns": 1}
    )
    assert (lower.status_code, lower.json()["error"]["details"]["field"]) == (422, "max_turns")

    # A budget smaller than one turn's cost: the first turn spends it, the next is refused.
    budgeted = (await world.open_session())["session_id"]
    await world.ok(
        "POST", "/api/v1/a2a/negotiate", {"session_id": budgeted, "budget_usd": 0.000001}
    )
    await world.ok("POST", "/api/v1/a2a/message", {"session_id": budgeted, "content": "spend"})
    broke = await world.call(
        "POST", "/api/v1/a2a/message", {"session_id": budgeted, "content": "more"}
    )
    assert broke.status_code == 422, broke.text
    assert broke.json()["error"]["details"]["limit"] == "budget_usd"
    (row,) = await session_rows(world, budgeted)
    assert row.turns == 1 and row.cost_usd > 0.000001


async def test_a_negotiation_the_server_cannot_agree_to_is_a_422(world: World) -> None:
    session_id = (await world.open_session())["session_id"]
    for body, field in (
        ({"protocol_version": "2.0"}, "protocol_version"),
        ({"content_types": ["image/png"]}, "content_types"),
        ({"max_turns": 201}, "max_turns"),
        ({"max_message_size": 10_000_000}, "max_message_size"),
        ({"budget_usd": 10.5}, "budget_usd"),
    ):
        refused = await world.call(
            "POST", "/api/v1/a2a/negotiate", {"session_id": session_id, **body}
        )
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert (error["code"], error["details"]["field"]) == ("VALIDATION_ERROR", field)
    version = await world.call(
        "POST", "/api/v1/a2a/negotiate", {"session_id": session_id, "protocol_version": "2.0"}
    )
    assert version.json()["error"]["details"]["supported"] == ["1.0", "0.3"]
    detail = await world.ok("GET", f"/api/v1/a2a/sessions/{session_id}")
    assert (detail["status"], detail["protocol_version"], detail["limits"]["negotiated"]) == (
        "handshake",
        "1.0",
        False,
    )
    # Bodies that are wrong before any session sees them.
    for body in (
        {"session_id": session_id, "max_turns": 0},
        {"session_id": session_id, "budget_usd": -1},
    ):
        invalid = await world.call("POST", "/api/v1/a2a/negotiate", body)
        assert invalid.status_code == 422
    neither = await world.call(
        "POST", "/api/v1/a2a/handshake", {"source_agent_id": world.source_id}
    )
    assert (neither.status_code, neither.json()["error"]["code"]) == (422, "VALIDATION_ERROR")


async def test_a_remote_agent_on_an_opened_loopback_port_takes_part(world: World) -> None:
    opened = await world.open_session(target_agent_url=world.remote_url)
    session_id = opened["session_id"]
    target = opened["target_agent"]
    assert (target["kind"], target["name"], target["url"]) == (
        "remote",
        "Remote test agent",
        world.remote_url,
    )
    assert opened["target_agent"]["capabilities"] == ["shout"]
    assert opened["capabilities"]["content_types"] == ["text/plain"]
    await world.ok(
        "POST", "/api/v1/a2a/negotiate", {"session_id": session_id, "protocol_version": "0.3"}
    )
    world.remote.methods.clear()
    first = await world.ok(
        "POST", "/api/v1/a2a/message", {"session_id": session_id, "content": "hello remote"}
    )
    assert (first["reply"], first["state"], first["cost_usd"]) == (
        "Remote answer: HELLO REMOTE",
        "completed",
        0.0,
    )
    second = await world.ok(
        "POST", "/api/v1/a2a/message", {"session_id": session_id, "content": "again"}
    )
    assert second["reply"] == "Remote answer: AGAIN"
    assert world.remote.methods[0] == "message/send"  # the agreed protocol, 0.3
    # Both messages belong to one conversation on the remote side (its context id).
    tasks = list(world.remote.tasks.values())
    assert len(tasks) == 2
    assert tasks[0].context_id and tasks[0].context_id == tasks[1].context_id
    json_body = await world.call(
        "POST", "/api/v1/a2a/message", {"session_id": session_id, "content": {"a": 1}}
    )
    assert (json_body.status_code, json_body.json()["error"]["code"]) == (
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    )  # the remote agent takes text only
    listed = await world.ok("GET", "/api/v1/a2a/sessions")
    (mine,) = [s for s in listed["sessions"] if s["session_id"] == session_id]
    assert (mine["turns"], mine["protocol_version"]) == (2, "0.3")
    await world.ok("DELETE", f"/api/v1/a2a/sessions/{session_id}")


async def test_a_loopback_agent_nobody_opened_is_refused_unconnected(world: World) -> None:
    refused = await world.call(
        "POST",
        "/api/v1/a2a/handshake",
        {"source_agent_id": world.source_id, "target_agent_url": world.closed_url},
    )
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["code"] == "EGRESS_DENIED"
    private = await world.call(
        "POST",
        "/api/v1/a2a/handshake",
        {"source_agent_id": world.source_id,
         "target_agent_url": "http://10.20.30.40/.well-known/agent-card.json"},
    )  # fmt: skip
    assert private.json()["error"]["code"] == "EGRESS_DENIED"
    assert world.closed.requests == []  # nothing reached it
    rows = await session_rows(world)
    assert world.closed_url not in {row.target_agent_url for row in rows}


async def test_another_tenant_finds_no_session_and_no_agent(world: World) -> None:
    session_id = (await world.open_session())["session_id"]
    async with httpx.AsyncClient(
        base_url=world.stack.url, headers={"X-API-Key": world.stack.other.key}
    ) as other:
        for method, path, body in (
            ("GET", f"/api/v1/a2a/sessions/{session_id}", None),
            ("DELETE", f"/api/v1/a2a/sessions/{session_id}", None),
            ("POST", "/api/v1/a2a/negotiate", {"session_id": session_id, "max_turns": 3}),
            ("POST", "/api/v1/a2a/message", {"session_id": session_id, "content": "hi"}),
        ):
            response = await other.request(method, path, json=body)
            assert response.status_code == 404, f"{method} {path}: {response.text}"
            assert response.json()["error"]["code"] == "A2A_SESSION_NOT_FOUND"
        listed = (await other.get("/api/v1/a2a/sessions")).json()["data"]
        assert listed == {"sessions": [], "total": 0}
        borrowed = await other.post(
            "/api/v1/a2a/handshake",
            json={"source_agent_id": world.source_id, "target_agent_id": world.target_id},
        )
        assert (borrowed.status_code, borrowed.json()["error"]["code"]) == (404, "AGENT_NOT_FOUND")
    # Still open for its own tenant.
    assert (await world.ok("GET", f"/api/v1/a2a/sessions/{session_id}"))["status"] == "handshake"


async def session_rows(world: World, session_id: str | None = None) -> list[A2ASession]:
    engine = create_engine(world.stack.settings)
    try:
        async with create_sessionmaker(engine)() as session:
            query = select(A2ASession)
            if session_id is not None:
                query = query.where(A2ASession.id == session_id)
            return list(await session.scalars(query))
    finally:
        await engine.dispose()
