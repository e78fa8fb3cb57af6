"""Agents through the real app: z2's CRUD and metrics, sutazai's list and health on
the same paths, and tenant isolation. Every success body is checked against the
schema the app declares for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from api.app import create_app
from engine.db.connection import create_engine, create_sessionmaker, transaction
from engine.db.tables import Agent, Execution, UsageRecord
from engine.platform.settings import Settings
from tests.api.test_response_schemas import Checked, Schemas, TwoTenants
from tests.conftest import api_client, make_tenant
from tests.fake_providers import FakeProvider
from tests.models_support import ledger, model_settings, ollama_config

pytestmark = pytest.mark.asyncio

# z2's POST /agents request body, with its placeholders filled in.
RESEARCHER: dict[str, Any] = {
    "name": "Research Assistant",
    "description": "Finds and summarises sources",
    "type": "researcher",
    "capabilities": ["web_search", "document_analysis"],
    "system_prompt": "You are a careful researcher.",
    "config": {
        "model_preferences": {
            "primary_model": "gpt-4o",
            "fallback_model": "gpt-4o-mini",
            "temperature": 0.7,
            "max_tokens": 4096,
        },
        "tools": ["web_search", "code_execution"],
        "memory_size": 1000,
    },
}


class AgentApi(TwoTenants):
    async def create(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        made = await self.api.call(
            "POST", "/api/v1/agents", 201, json=body, headers=headers or self.a
        )
        return made["data"]


@asynccontextmanager
async def open_api(settings: Settings) -> AsyncIterator[AgentApi]:
    first = await make_tenant(settings, "agents-a")
    second = await make_tenant(settings, "agents-b")
    app = create_app(settings)
    async with api_client(app) as http:
        yield AgentApi(Checked(http, Schemas(app)), settings, first, second)


@pytest.fixture
async def agents(settings: Settings) -> AsyncIterator[AgentApi]:
    async with open_api(model_settings(settings, {})) as api:
        yield api


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["data"] is None
    return dict(body["error"])


async def test_z2_crud_round_trip(agents: AgentApi) -> None:
    api = agents.api
    made = await agents.create(RESEARCHER)
    assert made["id"]
    for key in ("name", "description", "type", "capabilities", "system_prompt", "config"):
        assert made[key] == RESEARCHER[key], key
    assert made["status"] == "active"
    assert made["port"] is None  # sutazai's field: these agents have no port of their own
    assert made["metrics"] == {
        "total_executions": 0,
        "success_rate": 0.0,
        "avg_duration_ms": 0,
        "total_cost_usd": 0.0,
    }
    path = f"/api/v1/agents/{made['id']}"

    read = (await api.call("GET", path, headers=agents.a))["data"]
    assert read == made

    listed = (await api.call("GET", "/api/v1/agents", headers=agents.a))["data"]
    assert (listed["total"], listed["page"], listed["pages"]) == (1, 1, 1)
    item = listed["agents"][0]
    assert item["id"] == made["id"] and item["config"] == RESEARCHER["config"]
    assert "system_prompt" not in item and "metrics" not in item  # z2's list item

    # Only what is sent changes, config keys included.
    changed = (
        await api.call(
            "PUT",
            path,
            headers=agents.a,
            json={
                "description": "Now also writes",
                "status": "inactive",
                "config": {"tools": ["web_search"], "model_preferences": {"temperature": 0.2}},
            },
        )
    )["data"]
    assert changed["description"] == "Now also writes"
    assert changed["status"] == "inactive"
    assert changed["name"] == RESEARCHER["name"]
    assert changed["config"] == {
        "model_preferences": {
            "primary_model": "gpt-4o",
            "fallback_model": "gpt-4o-mini",
            "temperature": 0.2,
            "max_tokens": 4096,
        },
        "tools": ["web_search"],
        "memory_size": 1000,
    }
    assert (await api.call("GET", path, headers=agents.a))["data"] == changed

    deleted = await agents.http.delete(path, headers=agents.a)
    assert deleted.status_code == 204 and not deleted.content
    assert error_of(await agents.http.get(path, headers=agents.a), 404)["code"] == (
        "AGENT_NOT_FOUND"
    )
    assert error_of(await agents.http.delete(path, headers=agents.a), 404)["code"] == (
        "AGENT_NOT_FOUND"
    )


async def test_z2_curl_example_and_the_engine_shape_of_config(agents: AgentApi) -> None:
    # z2's "Create Agent" cURL body, verbatim.
    analyst = await agents.create(
        {
            "name": "Data Analyst",
            "type": "analyst",
            "capabilities": ["data_analysis", "visualization"],
        }
    )
    assert (analyst["type"], analyst["description"], analyst["system_prompt"]) == (
        "analyst",
        "",
        "",
    )
    assert analyst["config"] == {
        "model_preferences": {
            "primary_model": None,
            "fallback_model": None,
            "temperature": None,
            "max_tokens": None,
        },
        "tools": [],
        "memory_size": None,
    }

    # The engine's own shape is accepted too; either way it is stored as a run reads it.
    writer = await agents.create(
        {
            "name": "Writer",
            "type": "writer",
            "config": {
                "model_preferences": {"primary": "llama-test", "fallback": "gpt-4o-mini"},
                "temperature": 0.3,
                "max_tokens": 800,
            },
        }
    )
    assert writer["config"]["model_preferences"] == {
        "primary_model": "llama-test",
        "fallback_model": "gpt-4o-mini",
        "temperature": 0.3,
        "max_tokens": 800,
    }
    researcher = await agents.create(RESEARCHER)
    stored = await _stored_configs(agents.settings, [writer["id"], researcher["id"]])
    assert stored[writer["id"]] == {
        "model_preferences": {"primary": "llama-test", "fallback": "gpt-4o-mini"},
        "temperature": 0.3,
        "max_tokens": 800,
        "tools": [],
        "memory_size": None,
    }
    assert stored[researcher["id"]]["model_preferences"] == {
        "primary": "gpt-4o",
        "fallback": "gpt-4o-mini",
    }
    assert stored[researcher["id"]]["temperature"] == 0.7


async def _stored_configs(settings: Settings, ids: list[str]) -> dict[str, dict[str, Any]]:
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            rows = await session.scalars(select(Agent).where(Agent.id.in_(ids)))
            return {row.id: row.config for row in rows}
    finally:
        await engine.dispose()


async def test_invalid_agents_are_422_naming_the_field(agents: AgentApi) -> None:
    cases = [
        ({"name": "x", "type": "poet"}, "type"),
        ({"type": "writer"}, "name"),
        ({"name": "x", "type": "coder", "config": {"colour": "red"}}, "config.colour"),
        (
            {"name": "x", "type": "coder", "config": {"model_preferences": {"temperature": 3}}},
            "config.model_preferences.temperature",
        ),
    ]
    for body, field in cases:
        response = await agents.http.post("/api/v1/agents", json=body, headers=agents.a)
        error = error_of(response, 422)
        assert error["code"] == "VALIDATION_ERROR"
        assert error["details"]["field"] == field, (body, error)


async def test_list_filters_and_pages(agents: AgentApi) -> None:
    api = agents.api
    made = [
        await agents.create({"name": f"R{n}", "type": "researcher", "capabilities": ["search"]})
        for n in range(3)
    ]
    await agents.create({"name": "W", "type": "writer", "capabilities": ["editing"]})
    await agents.create({"name": "V", "type": "validator", "status": "inactive"})

    async def listed(**params: Any) -> dict[str, Any]:
        return dict(
            (await api.call("GET", "/api/v1/agents", headers=agents.a, params=params))["data"]
        )

    everyone = await listed()
    assert (everyone["total"], everyone["pages"]) == (5, 1)
    assert everyone["agents"][0]["name"] == "V"  # newest first

    first = await listed(type="researcher", limit=2)
    assert (first["total"], first["page"], first["pages"], len(first["agents"])) == (3, 1, 2, 2)
    second = await listed(type="researcher", limit=2, page=2)
    assert len(second["agents"]) == 1
    ids = {a["id"] for a in first["agents"] + second["agents"]}
    assert ids == {a["id"] for a in made}

    assert [a["name"] for a in (await listed(capability="editing"))["agents"]] == ["W"]
    by_capability = await listed(capability="search", limit=2, page=2)
    assert (by_capability["total"], by_capability["pages"], len(by_capability["agents"])) == (
        3,
        2,
        1,
    )
    assert [a["name"] for a in (await listed(status="inactive"))["agents"]] == ["V"]
    assert (await listed(type="coder"))["agents"] == []
    bad = await agents.http.get("/api/v1/agents", params={"type": "poet"}, headers=agents.a)
    assert error_of(bad, 422)["code"] == "VALIDATION_ERROR"


async def test_another_tenant_cannot_see_change_or_delete_an_agent(agents: AgentApi) -> None:
    made = await agents.create(RESEARCHER)
    path = f"/api/v1/agents/{made['id']}"
    for method, suffix, body in (
        ("GET", "", None),
        ("PUT", "", {"name": "Taken over"}),
        ("DELETE", "", None),
        ("GET", "/metrics", None),
        ("GET", "/health", None),
        ("POST", "/test", {"input": "x"}),
        ("POST", "/invoke", {"input": "x"}),
    ):
        response = await agents.http.request(method, path + suffix, json=body, headers=agents.b)
        assert error_of(response, 404)["code"] == "AGENT_NOT_FOUND", (method, suffix)
    listed = await agents.api.call("GET", "/api/v1/agents", headers=agents.b)
    assert listed["data"]["agents"] == [] and listed["data"]["total"] == 0
    still = (await agents.api.call("GET", path, headers=agents.a))["data"]
    assert still["name"] == RESEARCHER["name"]


async def test_metrics_come_from_executions_and_the_ledger(agents: AgentApi) -> None:
    api = agents.api
    researcher = await agents.create(RESEARCHER)
    other = await agents.create({"name": "Other", "type": "writer"})
    graph = {
        "name": "Research",
        "definition": {
            "nodes": [{"id": "research", "type": "agent", "agent_id": researcher["id"]}],
            "edges": [],
        },
    }
    workflow = (await api.call("POST", "/api/v1/workflows", 201, json=graph, headers=agents.a))[
        "data"
    ]
    unrelated = {
        "name": "Elsewhere",
        "definition": {"nodes": [{"id": "w", "type": "agent", "agent_id": other["id"]}]},
    }
    elsewhere = (
        await api.call("POST", "/api/v1/workflows", 201, json=unrelated, headers=agents.a)
    )["data"]

    start = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    runs = [
        ("completed", 2000),
        ("completed", 4000),
        ("completed", 3000),
        ("failed", 1000),
        ("cancelled", 500),  # the caller's choice: no outcome for the agent
        ("running", None),
    ]
    engine = create_engine(agents.settings)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            ids = []
            for number, (status, duration) in enumerate(runs):
                execution_id = f"exe_metrics_{number}"
                ids.append(execution_id)
                session.add(
                    Execution(
                        id=execution_id,
                        tenant_id=agents.first.tenant_id,
                        definition_id=workflow["id"],
                        workflow_id=f"run-{execution_id}",
                        status=status,
                        started_at=start,
                        completed_at=start + timedelta(milliseconds=duration)
                        if duration is not None
                        else None,
                    )
                )
            session.add(
                Execution(
                    id="exe_metrics_other",
                    tenant_id=agents.first.tenant_id,
                    definition_id=elsewhere["id"],
                    workflow_id="run-exe_metrics_other",
                    status="failed",
                )
            )
            ledger = [
                (ids[0], "agent", 0.25),
                (ids[1], "agent", 0.5),
                (ids[3], "agent", 0.125),
                (ids[1], "chat", 9.0),  # not an agent call
                ("exe_metrics_other", "agent", 7.0),  # another agent's run
            ]
            for execution_id, kind, cost in ledger:
                session.add(
                    UsageRecord(
                        tenant_id=agents.first.tenant_id,
                        kind=kind,
                        provider="fake",
                        model="gpt-4o",
                        prompt_tokens=100,
                        completion_tokens=50,
                        cost_usd=cost,
                        workflow_id=f"run-{execution_id}",
                    )
                )
    finally:
        await engine.dispose()

    path = f"/api/v1/agents/{researcher['id']}"
    figures = (await api.call("GET", f"{path}/metrics", headers=agents.a))["data"]
    assert figures == {
        "agent_id": researcher["id"],
        "total_executions": 6,
        "success_rate": 0.75,  # 3 of the 4 runs with an outcome
        "avg_duration_ms": 2500,  # over completed and failed runs
        "total_cost_usd": 0.875,
        "completed_executions": 3,
        "failed_executions": 1,
        "running_executions": 1,
        "total_tokens": 450,
        "model_calls": 3,
        "last_execution_at": figures["last_execution_at"],
    }
    assert figures["last_execution_at"]
    detail = (await api.call("GET", path, headers=agents.a))["data"]
    assert detail["metrics"] == {
        "total_executions": 6,
        "success_rate": 0.75,
        "avg_duration_ms": 2500,
        "total_cost_usd": 0.875,
    }
    unused = (await api.call("GET", f"/api/v1/agents/{other['id']}/metrics", headers=agents.a))[
        "data"
    ]
    assert (unused["total_executions"], unused["total_cost_usd"]) == (1, 7.0)

    # A deleted workflow's executions still count: they happened.
    deleted = await agents.http.delete(f"/api/v1/workflows/{workflow['id']}", headers=agents.a)
    assert deleted.status_code == 204
    again = (await api.call("GET", f"{path}/metrics", headers=agents.a))["data"]
    assert again["total_executions"] == 6


async def test_health_says_whether_the_agents_models_are_served(
    settings: Settings, fake_ollama: FakeProvider
) -> None:
    configured = model_settings(
        settings, {"ollama": ollama_config(fake_ollama, models=["llama-test"])}
    )
    async with open_api(configured) as agents:
        served = await _health(agents, {"model_preferences": {"primary_model": "llama-test"}})
        assert (served["status"], served["healthy"]) == ("healthy", True)
        assert served["checks"] == [
            {
                "role": "primary",
                "model": "llama-test",
                "resolved_model": "llama-test",
                "provider": "ollama",
                "provider_status": "healthy",
                "available": True,
                "error": None,
            }
        ]

        # A fallback covers a failing provider, not a model nobody offers: a call
        # to this agent fails, so it is unhealthy.
        unoffered = await _health(
            agents,
            {"model_preferences": {"primary_model": "gpt-4o", "fallback_model": "llama-test"}},
        )
        assert unoffered["status"] == "unhealthy"
        assert [c["available"] for c in unoffered["checks"]] == [False, True]
        assert "gpt-4o" in unoffered["checks"][0]["error"]

        missing = await _health(agents, {"model_preferences": {"primary_model": "gpt-4o"}})
        assert (missing["status"], missing["healthy"]) == ("unhealthy", False)

        off = await _health(
            agents, {"model_preferences": {"primary_model": "llama-test"}}, "inactive"
        )
        assert off["status"] == "inactive"

    # A primary on a provider that does not answer, with a fallback that is served.
    dead = {"kind": "ollama", "base_url": "http://127.0.0.1:9"}
    with_dead = model_settings(
        settings,
        {"ollama": ollama_config(fake_ollama, models=["llama-test"]), "dead": dead},
    )
    async with open_api(with_dead) as agents:
        degraded = await _health(
            agents,
            {"model_preferences": {"primary_model": "ghost", "fallback_model": "llama-test"}},
        )
        assert degraded["status"] == "degraded"
        primary, fallback = degraded["checks"]
        assert (primary["provider"], primary["provider_status"], primary["available"]) == (
            "dead",
            "unhealthy",
            False,
        )
        assert fallback["available"] is True


async def _health(agents: AgentApi, config: dict[str, Any], status: str = "active") -> Any:
    made = await agents.create({"name": "H", "type": "coder", "config": config, "status": status})
    path = f"/api/v1/agents/{made['id']}/health"
    return (await agents.api.call("GET", path, headers=agents.a))["data"]


async def test_test_and_invoke_ask_the_agents_model(
    settings: Settings, fake_ollama: FakeProvider
) -> None:
    configured = model_settings(
        settings, {"ollama": ollama_config(fake_ollama, models=["llama-test", "fail-500"])}
    )
    async with open_api(configured) as agents:
        api = agents.api
        terse = await agents.create(
            {
                "name": "Terse",
                "type": "writer",
                "system_prompt": "You answer in one line.",
                "config": {
                    "model_preferences": {
                        "primary_model": "llama-test",
                        "temperature": 0.2,
                        "max_tokens": 100,
                    }
                },
            }
        )
        path = f"/api/v1/agents/{terse['id']}"
        body = {"input": "hello", "context": {"topic": "kettles"}}
        tested = (await api.call("POST", f"{path}/test", json=body, headers=agents.a))["data"]
        assert (tested["output"], tested["success"], tested["model"], tested["provider"]) == (
            "Echo: hello",
            True,
            "llama-test",
            "ollama",
        )
        assert tested["tokens_used"] > 0 and tested["cost_usd"] > 0
        assert tested["execution_time_ms"] >= 0 and tested["fallback_from"] is None
        sent = [r.body for r in fake_ollama.requests if r.path == "/api/chat"][-1]
        assert sent["model"] == "llama-test"
        assert sent["options"] == {"temperature": 0.2, "num_predict": 100}
        system, user = sent["messages"]
        assert system["role"] == "system" and "You answer in one line." in system["content"]
        assert "kettles" in system["content"]
        assert user == {"role": "user", "content": "hello"}

        # sutazai's invoke: the same call, the reply also as chat's "response".
        invoked = (
            await api.call("POST", f"{path}/invoke", json={"message": "hi"}, headers=agents.a)
        )["data"]
        assert (invoked["agent_id"], invoked["output"], invoked["response"]) == (
            terse["id"],
            "Echo: hi",
            "Echo: hi",
        )
        rows = await ledger(agents.settings, agents.first.tenant_id)
        assert [(r.kind, r.model, r.success) for r in rows] == [
            ("test", "llama-test", True),
            ("agent", "llama-test", True),
        ]

        # The agent's fallback answers when its primary's provider fails.
        shaky = await agents.create(
            {
                "name": "Shaky",
                "type": "coder",
                "config": {
                    "model_preferences": {
                        "primary_model": "fail-500",
                        "fallback_model": "llama-test",
                    }
                },
            }
        )
        rescued = await api.call(
            "POST", f"/api/v1/agents/{shaky['id']}/test", json={"input": "x"}, headers=agents.a
        )
        assert (rescued["data"]["model"], rescued["data"]["fallback_from"]) == (
            "llama-test",
            "ollama/fail-500",
        )

        unoffered = await agents.create(
            {
                "name": "U",
                "type": "coder",
                "config": {"model_preferences": {"primary_model": "gpt-4o"}},
            }
        )
        response = await agents.http.post(
            f"/api/v1/agents/{unoffered['id']}/test", json={"input": "x"}, headers=agents.a
        )
        assert error_of(response, 404)["code"] == "MODEL_NOT_AVAILABLE"
        empty = await agents.http.post(f"{path}/test", json={"input": ""}, headers=agents.a)
        assert error_of(empty, 422)["details"]["field"] == "input"


async def test_a_named_model_is_never_stood_in_for(agents: AgentApi) -> None:
    """With no generative provider at all, only an agent that names no model is
    answered (extractively, and says so)."""
    named = await agents.create(
        {"name": "N", "type": "coder", "config": {"model_preferences": {"primary_model": "gpt-4o"}}}
    )
    response = await agents.http.post(
        f"/api/v1/agents/{named['id']}/invoke", json={"input": "x"}, headers=agents.a
    )
    error = error_of(response, 404)
    assert error["code"] == "MODEL_NOT_AVAILABLE" and error["details"]["model"] == "gpt-4o"

    plain = await agents.create(
        {"name": "P", "type": "coder", "system_prompt": "Kettles are copper."}
    )
    answered = await agents.api.call(
        "POST", f"/api/v1/agents/{plain['id']}/test", json={"input": "kettles?"}, headers=agents.a
    )
    assert answered["data"]["provider"] == "local"
    assert "extractive" in answered["data"]["model"]
