"""Stored workflow definitions through the real app: z2's ``/api/v1/workflows`` (graph,
enveloped) and auterity's ``/api/workflows`` (steps, bare), each reading back its own
shape; every invalid definition is a 422 with its reason; soft delete; tenants."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from api.app import create_app
from engine.db.connection import create_engine, create_sessionmaker
from engine.db.tables import PipelineDefinitionRow
from engine.platform.settings import Settings
from tests.api.test_response_schemas import Checked, Schemas, TwoTenants
from tests.conftest import api_client, make_tenant
from tests.pipelines.support import ONBOARDING

pytestmark = pytest.mark.asyncio

# auterity's POST /api/workflows example, verbatim: the second step depends on
# "step-1", the id the first (id-less) step gets by its position.
AUTERITY_EXAMPLE: dict[str, Any] = {
    "name": "New Workflow",
    "description": "Description of the workflow",
    "category": "automation",
    "steps": [
        {
            "type": "ai_prompt",
            "name": "Generate Response",
            "config": {
                "prompt": "Analyze the following customer feedback:",
                "model": "gpt-4",
                "max_tokens": 500,
            },
            "position": {"x": 100, "y": 100},
        },
        {
            "type": "email",
            "name": "Send Summary",
            "config": {"template": "summary-template", "to": "manager@company.com"},
            "position": {"x": 300, "y": 100},
            "dependencies": ["step-1"],
        },
    ],
}


# z2's POST /workflows example, verbatim: its edge names "node2", which it never defines.
Z2_EXAMPLE: dict[str, Any] = {
    "name": "string",
    "description": "string",
    "definition": {
        "nodes": [
            {"id": "node1", "type": "agent", "agent_id": "string", "position": {"x": 100, "y": 100}}
        ],
        "edges": [{"source": "node1", "target": "node2", "type": "data_flow"}],
    },
}


class Api(TwoTenants):
    async def agent(self, name: str, headers: dict[str, str] | None = None) -> str:
        body = {"name": name, "type": "researcher"}
        made = await self.api.call(
            "POST", "/api/v1/agents", 201, json=body, headers=headers or self.a
        )
        return str(made["data"]["id"])

    async def z2(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        made = await self.api.call(
            "POST", "/api/v1/workflows", 201, json=body, headers=headers or self.a
        )
        assert made["success"] is True
        return made["data"]

    async def auterity(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        return await self.api.call(
            "POST", "/api/workflows", 201, json=body, headers=headers or self.a
        )


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    configured = settings.model_copy(
        update={"rate_limits_enabled": False, "request_history_enabled": False}
    )
    first = await make_tenant(configured, "definitions-a")
    second = await make_tenant(configured, "definitions-b")
    app = create_app(configured)
    async with api_client(app) as http:
        yield Api(Checked(http, Schemas(app)), configured, first, second)


def invalid(response: httpx.Response, reason: str) -> dict[str, Any]:
    """A 422 in the envelope whose details name ``reason``."""
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert error["details"]["reason"] == reason, error
    return dict(error["details"])


def graph(*nodes: dict[str, Any], edges: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    return {
        "name": "g",
        "definition": {
            "nodes": list(nodes),
            "edges": [{"source": s, "target": t, "type": "data_flow"} for s, t in edges or []],
        },
    }


def prompt(step_id: str, text: str = "Say hi", **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "ai_prompt", "config": {"prompt": text}, **extra}


async def test_auterity_example_gets_step_ids_by_position(api: Api) -> None:
    made = await api.auterity(AUTERITY_EXAMPLE)
    assert made["id"] and "success" not in made  # auterity's bare object
    assert (made["name"], made["description"], made["category"], made["status"]) == (
        "New Workflow",
        "Description of the workflow",
        "automation",
        "active",
    )
    assert made["created_by"]
    first, second = made["steps"]
    assert (first["id"], first["dependencies"]) == ("step-1", [])
    assert (second["id"], second["dependencies"]) == ("step-2", ["step-1"])
    for sent, read in zip(AUTERITY_EXAMPLE["steps"], made["steps"], strict=True):
        assert (read["type"], read["name"], read["config"]) == (
            sent["type"],
            sent["name"],
            sent["config"],
        )
        assert read["position"] == sent["position"]
    assert await api.api.call("GET", f"/api/workflows/{made['id']}", headers=api.a) == made


async def test_auterity_onboarding_example_keeps_its_ids(api: Api) -> None:
    made = await api.auterity(ONBOARDING)
    assert [(s["id"], s["dependencies"]) for s in made["steps"]] == [
        ("welcome-email", []),
        ("setup-account", ["welcome-email"]),
        ("ai-personalization", ["setup-account"]),
    ]
    assert [s["config"] for s in made["steps"]] == [s["config"] for s in ONBOARDING["steps"]]
    assert made["category"] == "customer_service"

    # A z2 client reads the same workflow as a graph.
    as_graph = (await api.api.call("GET", f"/api/v1/workflows/{made['id']}", headers=api.a))["data"]
    assert [n["id"] for n in as_graph["definition"]["nodes"]] == [
        "welcome-email",
        "setup-account",
        "ai-personalization",
    ]
    assert as_graph["definition"]["nodes"][1]["position"] == {"x": 300, "y": 100}
    assert as_graph["definition"]["edges"] == [
        {
            "source": "welcome-email",
            "target": "setup-account",
            "type": "data_flow",
            "condition": None,
        },
        {
            "source": "setup-account",
            "target": "ai-personalization",
            "type": "data_flow",
            "condition": None,
        },
    ]
    assert as_graph["agents"] == [] and as_graph["version"] == 1


async def test_z2_crud_round_trip(api: Api) -> None:
    researcher, writer = await api.agent("Researcher"), await api.agent("Writer")
    body = {
        "name": "Research and write",
        "description": "Two agents in a row",
        "definition": {
            "nodes": [
                {
                    "id": "node1",
                    "type": "agent",
                    "agent_id": researcher,
                    "position": {"x": 100, "y": 100},
                },
                {
                    "id": "node2",
                    "type": "agent",
                    "agent_id": writer,
                    "position": {"x": 300, "y": 100},
                },
            ],
            "edges": [{"source": "node1", "target": "node2", "type": "data_flow"}],
        },
    }
    made = await api.z2(body)
    assert (made["name"], made["description"], made["status"], made["version"]) == (
        "Research and write",
        "Two agents in a row",
        "active",
        1,
    )
    assert made["agents"] == [researcher, writer]
    nodes = made["definition"]["nodes"]
    assert [(n["id"], n["type"], n["agent_id"], n["position"]) for n in nodes] == [
        (n["id"], n["type"], n["agent_id"], n["position"]) for n in body["definition"]["nodes"]
    ]
    assert made["definition"]["edges"] == [
        {"source": "node1", "target": "node2", "type": "data_flow", "condition": None}
    ]
    path = f"/api/v1/workflows/{made['id']}"
    assert (await api.api.call("GET", path, headers=api.a))["data"] == made

    listed = (await api.api.call("GET", "/api/v1/workflows", headers=api.a))["data"]
    assert listed["total"] == 1
    assert listed["workflows"][0] == {
        key: made[key]
        for key in ("id", "name", "description", "agents", "status", "created_at", "updated_at")
    }

    # An auterity client reads the same workflow as steps.
    steps = (await api.api.call("GET", f"/api/workflows/{made['id']}", headers=api.a))["steps"]
    assert [(s["id"], s["type"], s["agent_id"], s["dependencies"]) for s in steps] == [
        ("node1", "agent", researcher, []),
        ("node2", "agent", writer, ["node1"]),
    ]

    # A new definition is validated again, and every update is a new version.
    reversed_graph = copy.deepcopy(body["definition"])
    reversed_graph["edges"] = [{"source": "node2", "target": "node1"}]
    changed = (
        await api.api.call(
            "PUT",
            path,
            headers=api.a,
            json={
                "name": "Write then research",
                "status": "archived",
                "definition": reversed_graph,
            },
        )
    )["data"]
    assert (changed["name"], changed["status"], changed["version"]) == (
        "Write then research",
        "archived",
        2,
    )
    assert changed["definition"]["edges"] == [
        {"source": "node2", "target": "node1", "type": "data_flow", "condition": None}
    ]
    renamed = (await api.api.call("PUT", path, headers=api.a, json={"description": "d"}))["data"]
    assert (renamed["description"], renamed["version"], renamed["name"]) == (
        "d",
        3,
        "Write then research",
    )
    assert renamed["definition"] == changed["definition"]
    archived = await api.api.call(
        "GET", "/api/v1/workflows", headers=api.a, params={"status": "archived"}
    )
    assert [w["id"] for w in archived["data"]["workflows"]] == [made["id"]]

    deleted = await api.http.delete(path, headers=api.a)
    assert deleted.status_code == 204 and not deleted.content
    gone = await api.http.get(path, headers=api.a)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "WORKFLOW_NOT_FOUND"


async def test_auterity_crud_and_soft_delete(api: Api) -> None:
    made = await api.auterity(ONBOARDING)
    path = f"/api/workflows/{made['id']}"
    steps = copy.deepcopy(ONBOARDING["steps"][:2])
    changed = await api.api.call(
        "PUT",
        path,
        headers=api.a,
        json={"name": "Shorter onboarding", "status": "inactive", "steps": steps},
    )
    assert (changed["name"], changed["status"], changed["category"]) == (
        "Shorter onboarding",
        "inactive",
        "customer_service",
    )
    assert [s["id"] for s in changed["steps"]] == ["welcome-email", "setup-account"]
    assert await api.api.call("GET", path, headers=api.a) == changed

    deleted = await api.http.delete(path, headers=api.a)
    assert deleted.status_code == 204
    for method in ("GET", "PUT", "DELETE"):
        response = await api.http.request(
            method, path, headers=api.a, json={"name": "x"} if method == "PUT" else None
        )
        assert response.status_code == 404, (method, response.text)
        assert response.json()["error"]["code"] == "NOT_FOUND"  # auterity's only not-found code
    z2 = await api.http.get(f"/api/v1/workflows/{made['id']}", headers=api.a)
    assert z2.status_code == 404
    listed = await api.api.call("GET", "/api/workflows", headers=api.a)
    assert (listed["workflows"], listed["total"]) == ([], 0)

    # Soft: the row stays (its executions may point at it), marked deleted.
    engine = create_engine(api.settings)
    try:
        async with create_sessionmaker(engine)() as session:
            row = await session.scalar(
                select(PipelineDefinitionRow).where(PipelineDefinitionRow.id == made["id"])
            )
    finally:
        await engine.dispose()
    assert row is not None and row.deleted_at is not None
    assert row.raw == {"steps": steps}  # what the client sent


async def test_auterity_list_pages_and_filters(api: Api) -> None:
    for number in range(3):
        await api.auterity({**AUTERITY_EXAMPLE, "name": f"W{number}"})
    await api.auterity({**ONBOARDING, "status": "inactive"})

    async def page(**params: Any) -> dict[str, Any]:
        return dict(await api.api.call("GET", "/api/workflows", headers=api.a, params=params))

    first = await page(category="automation", limit=2)
    assert (first["total"], first["page"], first["limit"], first["has_next"]) == (3, 1, 2, True)
    assert [w["name"] for w in first["workflows"]] == ["W2", "W1"]  # newest first
    second = await page(category="automation", limit=2, page=2)
    assert (second["has_next"], [w["name"] for w in second["workflows"]]) == (False, ["W0"])
    everything = await page()
    assert (everything["total"], everything["limit"], everything["has_next"]) == (4, 20, False)
    inactive = await page(status="inactive")
    assert [w["name"] for w in inactive["workflows"]] == [ONBOARDING["name"]]
    assert (await page(category="none"))["workflows"] == []
    bad = await api.http.get("/api/workflows", params={"status": "draft"}, headers=api.a)
    assert bad.status_code == 422

    z2 = (await api.api.call("GET", "/api/v1/workflows", headers=api.a))["data"]
    assert z2["total"] == 4 and len(z2["workflows"]) == 4


async def test_every_invalid_definition_is_a_422_with_its_reason(api: Api) -> None:
    # z2's own example names a node it never defines.
    details = invalid(
        await api.http.post("/api/v1/workflows", json=Z2_EXAMPLE, headers=api.a), "UNKNOWN_NODE"
    )
    assert details["node"] == "node2"

    async def steps(*items: dict[str, Any]) -> httpx.Response:
        body = {"name": "bad", "steps": list(items)}
        return await api.http.post("/api/workflows", json=body, headers=api.a)

    cycle = invalid(
        await steps(
            prompt("a", dependencies=["c"]),
            prompt("b", dependencies=["a"]),
            prompt("c", dependencies=["b"]),
        ),
        "CYCLE",
    )
    assert cycle["cycle"] in (["a", "b", "c", "a"], ["c", "a", "b", "c"], ["b", "c", "a", "b"])
    assert cycle["cycle"][0] == cycle["cycle"][-1] and len(cycle["cycle"]) == 4

    # A cycle in a z2 graph, with its path too.
    two = graph(
        {"id": "x", "type": "ai_prompt", "config": {"prompt": "p"}},
        {"id": "y", "type": "ai_prompt", "config": {"prompt": "p"}},
        edges=[("x", "y"), ("y", "x")],
    )
    z2_cycle = invalid(await api.http.post("/api/v1/workflows", json=two, headers=api.a), "CYCLE")
    assert sorted(z2_cycle["cycle"][:-1]) == ["x", "y"]

    unknown_type = invalid(await steps({"type": "teleport", "config": {}}), "UNKNOWN_STEP_TYPE")
    assert unknown_type["field"] == "steps[0].type"
    assert "ai_prompt" in unknown_type["allowed"]

    duplicate = invalid(await steps(prompt("same"), prompt("same")), "DUPLICATE_STEP_ID")
    assert duplicate["step"] == "same"
    # An explicit id that takes a generated one is a duplicate too.
    invalid(
        await steps(prompt("step-2"), {"type": "ai_prompt", "config": {"prompt": "p"}}),
        "DUPLICATE_STEP_ID",
    )

    agent = invalid(
        await api.http.post(
            "/api/v1/workflows",
            json=graph({"id": "n", "type": "agent", "agent_id": "agt_nobody"}),
            headers=api.a,
        ),
        "UNKNOWN_AGENT",
    )
    assert agent["agent_id"] == "agt_nobody"

    # {{steps.x.output}} only of a step it (transitively) depends on.
    not_a_dependency = invalid(
        await steps(prompt("x"), prompt("y", "Summarise {{steps.x.output}}")), "UNKNOWN_VARIABLE"
    )
    assert (not_a_dependency["step"], not_a_dependency["variable"]) == ("y", "steps.x.output")
    invalid(await steps(prompt("y", "Use {{steps.z.output}}"), prompt("z")), "UNKNOWN_VARIABLE")
    invalid(await steps(prompt("y", "Use {{steps.nowhere.output}}")), "UNKNOWN_VARIABLE")
    transitively = await steps(
        prompt("x"),
        prompt("y", dependencies=["x"]),
        prompt("z", "From {{steps.x.output}}", dependencies=["y"]),
    )
    assert transitively.status_code == 201, transitively.text

    invalid(await steps(prompt("t", "Broken {{ not a path }}")), "INVALID_TEMPLATE")
    invalid(await steps(prompt("u", dependencies=["ghost"])), "UNKNOWN_DEPENDENCY")
    invalid(await steps({"id": "v", "type": "email", "config": {}}), "MISSING_CONFIG")
    invalid(await steps(), "NO_STEPS")
    invalid(await steps(prompt("w", timeout_seconds=-1)), "INVALID_STEP")

    # Nothing invalid was stored.
    listed = await api.api.call("GET", "/api/workflows", headers=api.a)
    assert listed["total"] == 1


async def test_an_invalid_update_leaves_the_definition_as_it_was(api: Api) -> None:
    made = await api.auterity(ONBOARDING)
    path = f"/api/workflows/{made['id']}"
    looped = copy.deepcopy(ONBOARDING["steps"])
    looped[0]["dependencies"] = ["ai-personalization"]
    invalid(await api.http.put(path, json={"steps": looped}, headers=api.a), "CYCLE")
    z2_path = f"/api/v1/workflows/{made['id']}"
    bad_graph = {"definition": {"nodes": [{"id": "a", "type": "agent"}]}}
    invalid(await api.http.put(z2_path, json=bad_graph, headers=api.a), "MISSING_AGENT")
    assert await api.api.call("GET", path, headers=api.a) == made
    version = (await api.api.call("GET", z2_path, headers=api.a))["data"]["version"]
    assert version == 1


async def test_another_tenant_cannot_see_change_or_delete_a_definition(api: Api) -> None:
    made = await api.auterity(ONBOARDING)
    for base, code in ((f"/api/workflows/{made['id']}", "NOT_FOUND"),
                       (f"/api/v1/workflows/{made['id']}", "WORKFLOW_NOT_FOUND")):  # fmt: skip
        for method in ("GET", "PUT", "DELETE"):
            response = await api.http.request(
                method, base, headers=api.b, json={"name": "mine"} if method == "PUT" else None
            )
            assert response.status_code == 404, (method, base, response.text)
            assert response.json()["error"]["code"] == code
    assert (await api.api.call("GET", "/api/workflows", headers=api.b))["total"] == 0
    assert (await api.api.call("GET", "/api/v1/workflows", headers=api.b))["data"]["total"] == 0
    assert await api.api.call("GET", f"/api/workflows/{made['id']}", headers=api.a) == made

    # Nor use the first tenant's agents.
    theirs = await api.agent("Theirs")
    stolen = graph({"id": "n", "type": "agent", "agent_id": theirs})
    invalid(await api.http.post("/api/v1/workflows", json=stolen, headers=api.b), "UNKNOWN_AGENT")
    assert (await api.z2(stolen))["agents"] == [theirs]


async def test_routes_need_their_scopes(api: Api) -> None:
    anonymous = await api.http.get("/api/workflows")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "UNAUTHORIZED"
    schema = (await api.http.get("/openapi.json")).json()["paths"]
    for path, method, scope in (
        ("/api/v1/workflows", "get", "workflows:read"),
        ("/api/v1/workflows", "post", "workflows:write"),
        ("/api/workflows/{workflow_id}", "delete", "workflows:write"),
        ("/api/v1/agents/{agent_id}", "put", "agents:write"),
        ("/api/v1/agents/{agent_id}/health", "get", "agents:read"),
    ):
        declared = {
            s for item in schema[path][method]["security"] for v in item.values() for s in v
        }
        assert declared == {scope}, (path, method, declared)
