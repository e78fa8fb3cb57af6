"""The A2A client library (``engine.a2a.client``) against a second A2A agent: a
small a2a-sdk server of the test's own on loopback, reached through the egress
guard. Nothing here needs a database or Temporal."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from temporalio.testing import ActivityEnvironment

from engine.a2a.client import call_remote_agent, card_location
from engine.platform.egress import EgressDenied
from engine.platform.settings import Settings
from tests.a2a.remote_agent import RemoteAgent, remote_app
from tests.conftest import make_settings
from tests.fake_providers import serve_app
from workers.activities.a2a import A2AActivities
from workflows.a2a_payloads import RemoteAgentCall

pytestmark = pytest.mark.asyncio(loop_scope="session")


@dataclasses.dataclass
class Remote:
    agent: RemoteAgent
    url: str
    settings: Settings  # whose tenant rules open this agent's port (only)


@pytest.fixture
async def remote(tmp_path: Path) -> AsyncIterator[Remote]:
    agent = RemoteAgent()
    async with serve_app(remote_app(agent)) as url:
        opened = make_settings(tmp_path, tenant_egress_allowed_hosts=[url.removeprefix("http://")])
        yield Remote(agent, url, opened)


async def test_the_client_sends_a_message_and_waits_for_the_answer(remote: Remote) -> None:
    result = await call_remote_agent(
        remote.settings, f"{remote.url}/.well-known/agent-card.json", "hello there"
    )
    assert (result.state, result.text, result.protocol) == (
        "completed",
        "Remote answer: HELLO THERE",
        "1.0",
    )
    assert result.task_id and result.context_id
    assert result.artifacts[0]["name"] == "answer"
    assert [m["role"] for m in result.transcript] == ["ROLE_USER", "ROLE_AGENT"]
    assert remote.agent.methods[0] == "SendMessage"
    assert set(remote.agent.methods[1:]) == {"GetTask"}  # polled until it completed
    # Every request went to the address the guard checked, under the agent's own name.
    assert {headers["host"] for _, _, headers in remote.agent.requests} == {
        remote.url.removeprefix("http://")
    }


async def test_a_base_url_finds_the_card_at_the_well_known_path(remote: Remote) -> None:
    assert card_location(remote.url) == (remote.url, "/.well-known/agent-card.json")
    result = await call_remote_agent(remote.settings, remote.url, "base")
    assert result.text == "Remote answer: BASE"


async def test_the_client_speaks_0_3_when_asked_or_when_that_is_all_there_is(
    remote: Remote,
) -> None:
    forced = await call_remote_agent(remote.settings, remote.url, "old", protocol="0.3")
    assert (forced.state, forced.text) == ("completed", "Remote answer: OLD")
    assert forced.protocol == "0.3"
    assert remote.agent.methods[0] == "message/send" and "tasks/get" in remote.agent.methods
    remote.agent.only_v03 = True
    remote.agent.methods.clear()
    only = await call_remote_agent(remote.settings, remote.url, "only")
    assert (only.text, only.protocol, remote.agent.methods[0]) == (
        "Remote answer: ONLY",
        "0.3",
        "message/send",
    )


async def test_input_required_comes_back_and_the_conversation_continues(remote: Remote) -> None:
    asked = await call_remote_agent(remote.settings, remote.url, "ask me")
    assert (asked.state, asked.text) == ("input-required", "What shall I shout?")
    answered = await call_remote_agent(
        remote.settings,
        remote.url,
        "kettles",
        task_id=asked.task_id,
        context_id=asked.context_id,
    )
    assert (answered.state, answered.text, answered.task_id) == (
        "completed",
        "Remote answer: KETTLES",
        asked.task_id,
    )


async def test_a_loopback_card_the_operator_did_not_open_is_refused_unconnected(
    remote: Remote, tmp_path: Path
) -> None:
    closed = make_settings(tmp_path)  # no tenant_egress_allowed_hosts
    with pytest.raises(EgressDenied, match="loopback"):
        await call_remote_agent(closed, remote.url, "hello")
    private = make_settings(tmp_path)
    with pytest.raises(EgressDenied, match="private"):
        await call_remote_agent(private, "http://10.20.30.40/.well-known/agent-card.json", "x")
    assert remote.agent.requests == []  # nothing reached the agent


async def test_a_card_that_points_elsewhere_cannot_steer_the_client(remote: Remote) -> None:
    remote.agent.rpc_url = "http://169.254.169.254/latest/meta-data"
    with pytest.raises(EgressDenied, match="link-local|metadata"):
        await call_remote_agent(remote.settings, remote.url, "steal")
    assert [path for _, path, _ in remote.agent.requests] == ["/.well-known/agent-card.json"]


async def test_the_activity_resumes_the_remote_task_a_first_attempt_started(
    remote: Remote,
) -> None:
    async with httpx.AsyncClient() as http:
        activities = A2AActivities(remote.settings, None, http, None)  # type: ignore[arg-type]
        env = ActivityEnvironment()
        beats: list[tuple[object, ...]] = []
        env.on_heartbeat = lambda *details: beats.append(details)
        call = RemoteAgentCall(
            tenant_id="ten_x",
            card_url=remote.url,
            text="first",
            idempotency_key="exe_1:step_a",
        )
        first = await env.run(activities.call_remote_agent, call)
        assert first.text == "Remote answer: FIRST"
        assert (first.task_id,) in beats  # the remote task's id, for a later attempt
        sent = [m for m in first.transcript if m["role"] == "ROLE_USER"]
        assert sent[0]["messageId"] == "exe_1:step_a"
        # A retried attempt finds the id in its heartbeat: it follows that task.
        remote.agent.methods.clear()
        env.info = dataclasses.replace(env.info, heartbeat_details=[first.task_id], attempt=2)
        again = await env.run(activities.call_remote_agent, call)
        assert (again.task_id, again.text) == (first.task_id, "Remote answer: FIRST")
        assert remote.agent.methods == ["GetTask"]  # nothing sent twice
