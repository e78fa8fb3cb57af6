"""MCP tools end to end: z2's REST sessions and tools, and the real MCP server at
``/mcp`` driven by the ``mcp`` SDK's own client over streamable HTTP (uvicorn on
loopback, a real worker and Temporal). Both run the same tool definitions in the
caller's tenant."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from temporalio.testing import WorkflowEnvironment

from engine.platform.settings import Settings
from tests.mcp.support import (
    WAIT,
    McpStack,
    conforms,
    create_pipeline,
    mcp_stack,
    upload_processed,
)
from tests.pipelines.support import SQLITE_ONLY

TOOLS = {"start_workflow", "get_workflow_status", "search_documents", "rag_query",
         "list_workflows"}  # fmt: skip


async def call(stack: McpStack, tool: str, body: Any, headers: dict[str, str]) -> Any:
    return await stack.http.post(f"/api/v1/mcp/tools/{tool}", json=body, headers=headers)


async def restricted_key(stack: McpStack, scopes: list[str]) -> dict[str, str]:
    made = await stack.http.post(
        "/api/v1/api-keys", headers=stack.ha, json={"name": "narrow", "scopes": scopes}
    )
    assert made.status_code == 201, made.text
    return {"X-API-Key": made.json()["data"]["key"]}


@SQLITE_ONLY
async def test_sessions_and_tools_over_rest(
    settings: Settings, temporal_env: WorkflowEnvironment
) -> None:
    async with mcp_stack(settings, temporal_env) as stack:
        listed = await stack.http.get("/api/v1/mcp/tools", headers=stack.ha)
        made = await stack.http.post(
            "/api/v1/mcp/sessions", headers=stack.ha, json={"name": "triage", "context": {"k": 1}}
        )
        session_id = made.json()["data"]["id"]
        definition_id = await create_pipeline(stack, "Kettle digest", stack.ha)
        workflows = await call(stack, "list_workflows", {"session_id": session_id}, stack.ha)
        started = await call(
            stack,
            "start_workflow",
            {"arguments": {"workflow_id": definition_id, "input_data": {"count": 2}}},
            stack.ha,
        )
        execution_id = started.json()["data"]["result"]["execution_id"]
        deadline = time.monotonic() + WAIT
        while True:
            status = await call(
                stack, "get_workflow_status", {"execution_id": execution_id}, stack.ha
            )
            if status.json()["data"]["result"]["status"] != "running":
                break
            assert time.monotonic() < deadline, status.text
            await asyncio.sleep(0.2)
        sessions = await stack.http.get("/api/v1/mcp/sessions", headers=stack.ha)
        b_sessions = await stack.http.get("/api/v1/mcp/sessions", headers=stack.hb)

        no_tool = await call(stack, "delete_everything", {}, stack.ha)
        bad = await call(stack, "search_documents", {"query": "", "top_k": 500}, stack.ha)
        typo = await call(stack, "list_workflows", {"limt": 3}, stack.ha)
        other_tenant = await call(
            stack, "get_workflow_status", {"execution_id": execution_id}, stack.hb
        )
        b_in_a_session = await call(stack, "list_workflows", {"session_id": session_id}, stack.hb)
        reader = await restricted_key(stack, ["files:read"])
        forbidden = await call(stack, "start_workflow", {"workflow_id": definition_id}, reader)
        anonymous = await stack.http.get("/api/v1/mcp/tools")

    for response, code in (
        (listed, 200),
        (made, 201),
        (workflows, 200),
        (started, 200),
        (status, 200),
        (sessions, 200),
        (b_sessions, 200),
    ):
        conforms(response, code)
    tools = {t["name"]: t for t in listed.json()["data"]["tools"]}
    assert set(tools) == TOOLS
    schema = tools["search_documents"]["input_schema"]
    assert schema["required"] == ["query"] and schema["properties"]["top_k"]["maximum"] == 50
    assert tools["start_workflow"]["required_scope"] == "workflows:execute"

    assert made.json()["data"]["name"] == "triage" and made.json()["data"]["tools_used"] == 0
    assert workflows.status_code == 200, workflows.text
    assert workflows.json()["data"]["session_id"] == session_id
    assert [w["id"] for w in workflows.json()["data"]["result"]["workflows"]] == [definition_id]
    assert started.status_code == 200, started.text
    assert started.json()["data"]["result"]["workflow_name"] == "Kettle digest"
    final = status.json()["data"]["result"]
    assert final["status"] == "completed" and final["kind"] == "pipeline"
    assert final["outputs"] == {"echo": "2 kettles"}
    [listed_session] = sessions.json()["data"]["sessions"]
    assert listed_session["id"] == session_id and listed_session["tools_used"] == 1
    assert listed_session["last_active_at"] is not None
    assert b_sessions.json()["data"] == {"sessions": [], "total": 0}

    assert no_tool.status_code == 404 and no_tool.json()["error"]["code"] == "TOOL_NOT_FOUND"
    for refused in (bad, typo):
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["code"] == "VALIDATION_ERROR"
    assert {e["field"] for e in bad.json()["error"]["details"]["errors"]} == {"query", "top_k"}
    # Another tenant's execution and session are simply not there.
    assert other_tenant.status_code == 404
    assert other_tenant.json()["error"]["code"] == "EXECUTION_NOT_FOUND"
    assert b_in_a_session.status_code == 404
    assert b_in_a_session.json()["error"]["code"] == "SESSION_NOT_FOUND"
    assert forbidden.status_code == 403
    assert anonymous.status_code == 401


@SQLITE_ONLY
async def test_the_mcp_server_lists_and_runs_the_tools(
    settings: Settings, temporal_env: WorkflowEnvironment
) -> None:
    async with mcp_stack(settings, temporal_env) as stack:
        file_id = await upload_processed(stack.http, stack.ha, "kettles.txt")
        definition_id = await create_pipeline(stack, "Kettle digest", stack.ha)
        url = f"{stack.base}/mcp"
        async with (
            httpx2.AsyncClient(headers=stack.ha, timeout=30) as http,
            Client(streamable_http_client(url, http_client=http), mode="legacy") as client,
        ):
            listed = await client.list_tools()
            started = await client.call_tool(
                "start_workflow", {"workflow_id": definition_id, "input_data": {"count": 5}}
            )
            execution_id = (started.structured_content or {})["execution_id"]
            deadline = time.monotonic() + WAIT
            while True:
                status = await client.call_tool(
                    "get_workflow_status", {"execution_id": execution_id}
                )
                if (status.structured_content or {}).get("status") != "running":
                    break
                assert time.monotonic() < deadline, status
                await asyncio.sleep(0.2)
            answered = await client.call_tool(
                "rag_query", {"query": "How many copper kettles are there?", "top_k": 2}
            )
            bad = await client.call_tool("search_documents", {"top_k": 3})
        # The other tenant, by bearer token, in the SDK's default (auto) mode.
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {stack.b.key}"}) as other,
            Client(streamable_http_client(url, http_client=other)) as b_client,
        ):
            not_theirs = await b_client.call_tool(
                "get_workflow_status", {"execution_id": execution_id}
            )
            b_search = await b_client.call_tool("search_documents", {"query": "copper kettles"})
        async with httpx2.AsyncClient(timeout=10) as anonymous:
            refused = await anonymous.post(
                url,
                json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                headers={"Accept": "application/json, text/event-stream"},
            )
            wrong_key = await anonymous.post(
                url,
                json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                headers={"Accept": "application/json, text/event-stream", "X-API-Key": "znt_no"},
            )

    by_name = {tool.name: tool for tool in listed.tools}
    assert set(by_name) == TOOLS
    assert by_name["rag_query"].input_schema["required"] == ["query"]
    assert started.is_error is False, started
    final = status.structured_content or {}
    assert final["status"] == "completed" and final["outputs"] == {"echo": "5 kettles"}
    rag = answered.structured_content or {}
    assert answered.is_error is False, answered
    assert rag["model"].startswith("local/extractive")
    assert "7,300" in rag["answer"]
    assert {c["file_id"] for c in rag["citations"]} == {file_id}
    assert bad.is_error is True
    assert not_theirs.is_error is True
    assert "EXECUTION_NOT_FOUND" in not_theirs.content[0].text  # type: ignore[union-attr]
    assert (b_search.structured_content or {})["passages"] == []
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "UNAUTHORIZED"
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert wrong_key.status_code == 401
