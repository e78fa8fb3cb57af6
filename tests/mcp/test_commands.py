"""zentoria natural-language commands end to end: the real API on uvicorn, a real
worker and Temporal, the local embedding model; a fake Ollama where a model is
configured. A command is read into an intent and entities, its CommandWorkflow
does the work, and its events reach ``/api/v1/mcp/stream``."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from temporalio.testing import WorkflowEnvironment
from websockets.asyncio.client import connect

from engine.platform.settings import Settings
from tests.fake_providers import FakeProvider, serve_app
from tests.mcp.support import (
    WAIT,
    McpStack,
    conforms,
    create_pipeline,
    intent_ollama,
    mcp_stack,
    upload_processed,
    wait_command,
)
from tests.models_support import PRICES
from tests.pipelines.support import SQLITE_ONLY


async def command(stack: McpStack, text: str, **context: Any) -> dict[str, Any]:
    response = await stack.http.post(
        "/api/v1/mcp/command", headers=stack.ha, json={"command": text, "context": context}
    )
    body = conforms(response, 202)
    assert body["success"] is True
    data: dict[str, Any] = body["data"]
    return data


async def test_commands_read_by_rules_run_to_their_results(
    settings: Settings, temporal_env: WorkflowEnvironment
) -> None:
    async with mcp_stack(settings, temporal_env) as stack:
        file_id = await upload_processed(stack.http, stack.ha, "kettle-report.txt")
        definition_id = await create_pipeline(stack, "Kettle digest", stack.ha)

        search = await command(stack, "Search my documents for copper kettles", workspace="w1")
        upload = await command(stack, "Upload document.pdf to project X", project_id="proj_123")
        summary = await command(stack, "Summarize the latest report")
        run = await command(stack, 'Run the workflow "Kettle digest" with count=3')
        unknown = await command(stack, "Frobnicate the widgets")
        done = {
            name: await wait_command(stack.http, stack.ha, accepted["command_id"])
            for name, accepted in (("search", search), ("upload", upload), ("summary", summary),
                                   ("run", run), ("unknown", unknown))
        }  # fmt: skip
        execution_id = done["run"]["result"]["execution_id"]
        status = await command(stack, f"What is the status of {execution_id}?")
        status_done = await wait_command(stack.http, stack.ha, status["command_id"])

        empty = await stack.http.post("/api/v1/mcp/command", headers=stack.ha, json={"command": ""})
        missing = await stack.http.post("/api/v1/mcp/command", headers=stack.ha, json={})
        anonymous = await stack.http.post("/api/v1/mcp/command", json={"command": "hi"})
        unknown_id = await stack.http.get("/api/v1/mcp/command/cmd_nope", headers=stack.ha)
        other_tenant = await stack.http.get(
            f"/api/v1/mcp/command/{search['command_id']}", headers=stack.hb
        )

    # The answer is the contract's, key for key.
    assert set(search) == {"command_id", "status", "intent", "entities", "workflow_id"}
    assert search["status"] == "processing" and search["intent"] == "file.search"
    assert search["entities"] == {"query": "copper kettles"}
    assert search["workflow_id"] == f"cmd-{search['command_id']}"
    assert upload["intent"] == "file.upload"
    assert upload["entities"] == {"filename": "document.pdf", "project": "project X"}

    found = done["search"]
    assert found["status"] == "completed" and found["interpreted_by"] == "rules"
    assert found["context"] == {"workspace": "w1"}
    assert found["result"]["count"] >= 1
    assert {p["file_id"] for p in found["result"]["passages"]} == {file_id}
    assert "copper kettles" in found["result"]["passages"][0]["text"]

    # No file was invented: the command says where to send one.
    told = done["upload"]
    assert told["status"] == "completed" and told["result"]["uploaded"] is False
    assert told["result"]["upload"]["path"] == "/api/v1/mcp/upload"
    assert told["result"]["upload"]["fields"]["project_id"] == "proj_123"
    assert "/api/v1/mcp/upload" in told["result"]["message"]

    summarized = done["summary"]
    assert summarized["status"] == "completed", summarized
    assert summarized["result"]["file_id"] == file_id
    assert summarized["result"]["model"].startswith("local/extractive")  # no model pretended
    assert "kettles" in summarized["result"]["summary"]

    started = done["run"]
    assert started["status"] == "completed", started
    assert started["result"]["workflow_id"] == definition_id
    assert started["result"]["input_data"] == {"count": 3}
    assert status_done["intent"] == "workflow.status"
    assert status_done["result"]["execution_id"] == execution_id
    assert status_done["result"]["kind"] == "pipeline"

    not_understood = done["unknown"]
    assert not_understood["intent"] == "unknown" and not_understood["status"] == "failed"
    assert not_understood["error"]["code"] == "UNKNOWN_INTENT"
    assert "not understood" in not_understood["error"]["message"]

    for bad in (empty, missing):
        assert bad.status_code == 422, bad.text
        assert bad.json()["error"]["code"] == "VALIDATION_ERROR"
    assert anonymous.status_code == 401
    assert unknown_id.status_code == 404
    assert unknown_id.json()["error"]["code"] == "COMMAND_NOT_FOUND"
    assert other_tenant.status_code == 404


@SQLITE_ONLY
async def test_a_configured_model_reads_the_commands(
    settings: Settings, temporal_env: WorkflowEnvironment
) -> None:
    def read(text: str) -> str:
        if "gibberish" in text:
            return "I think you would like to search something."
        return json.dumps({"intent": "ai.chat", "entities": {"message": text.upper()}})

    fake = FakeProvider("ollama")
    async with serve_app(intent_ollama(fake, read)) as url:
        fake.url = url
        configured = {
            "providers": {"ollama": {"kind": "ollama", "base_url": url}},
            "model_prices": PRICES,
            "default_chat_model": "llama-test",
        }
        async with mcp_stack(settings, temporal_env, **configured) as stack:
            by_model = await command(stack, "say hello to the team")
            fallback = await command(stack, "gibberish: list my workflows")
            chatted = await wait_command(stack.http, stack.ha, by_model["command_id"])
            ruled = await wait_command(stack.http, stack.ha, fallback["command_id"])

    assert by_model["intent"] == "ai.chat"
    assert by_model["entities"] == {"message": "SAY HELLO TO THE TEAM"}
    assert chatted["interpreted_by"] == "llama-test"
    assert chatted["status"] == "completed", chatted
    # The chat itself went to the model too (the fake echoes the message).
    assert chatted["result"]["model"] == "llama-test"
    assert chatted["result"]["answer"] == "Echo: SAY HELLO TO THE TEAM"
    # A reply without a usable intent is not passed off as the model's reading.
    assert ruled["interpreted_by"] == "rules"
    assert ruled["intent"] == "workflow.list" and ruled["status"] == "completed"
    assert (
        "llama-test answered without a usable JSON intent"
        in (ruled["result"]["interpretation_note"])
    )
    intent_calls = [
        r for r in fake.requests if r.path == "/api/chat" and "intent" in json.dumps(r.body)
    ]
    assert len(intent_calls) == 2


@SQLITE_ONLY
async def test_a_command_on_the_stream_is_accepted_and_streams_its_progress(
    settings: Settings, temporal_env: WorkflowEnvironment
) -> None:
    async with (
        mcp_stack(settings, temporal_env) as stack,
        connect(stack.ws("/api/v1/mcp/stream")) as ws,
    ):
        first = {"type": "command", "command": "list my workflows", "token": stack.a.key}
        await ws.send(json.dumps(first))
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + WAIT
        while not seen or seen[-1]["type"] not in ("workflow.completed", "workflow.failed"):
            left = max(0.1, deadline - time.monotonic())
            seen.append(json.loads(await asyncio.wait_for(ws.recv(), left)))
        await ws.send(json.dumps({"type": "command", "command": "  "}))
        refused = json.loads(await asyncio.wait_for(ws.recv(), WAIT))

    kinds = [message["type"] for message in seen]
    assert kinds[:2] == ["connected", "command.accepted"], kinds
    accepted = seen[1]["data"]
    command_id = accepted["command_id"]
    assert accepted["intent"] == "workflow.list" and accepted["status"] == "processing"
    assert accepted["workflow_id"] == f"cmd-{command_id}"
    assert kinds[2:] == ["workflow.started", "workflow.progress", "workflow.completed"], kinds
    assert all(m["subject"] == command_id for m in seen[2:])
    assert all(m["data"]["command_id"] == command_id for m in seen[2:])
    assert seen[3]["data"]["message"] == "Listing your workflows"
    assert seen[-1]["data"]["result"] == {"workflows": [], "total": 0}
    assert refused["type"] == "error" and refused["error"]["code"] == "VALIDATION_ERROR"
