"""Model listings, info, tests, provider CRUD, and pulls as a Temporal workflow."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from engine.db.connection import create_engine, create_sessionmaker
from engine.db.tables import ModelProvider
from engine.platform.queues import ALL_QUEUES
from engine.platform.settings import Settings
from tests.fake_providers import FakeProvider
from tests.models_support import (
    ModelApi,
    ledger,
    model_api,
    model_settings,
    ollama_config,
    openai_config,
)
from workers.main import WorkerResources, build_workers

pytestmark = pytest.mark.asyncio
WAIT = 60.0  # a bound so a broken build fails instead of hanging


async def test_listings_info_and_model_test(
    settings: Settings, fake_ollama: FakeProvider, fake_openai: FakeProvider
) -> None:
    gpt = {"id": "gpt-fake", "capabilities": ["text", "vision"], "context_window": 128000}
    configured = model_settings(
        settings,
        {"ollama": ollama_config(fake_ollama), "openai": openai_config(fake_openai, models=[gpt])},
        default_chat_model="llama-test",
    )
    async with model_api(configured) as api:
        installed = (await api.get("/api/v1/ai/models")).json()["data"]["models"]
        names = {(m["provider"], m["name"]) for m in installed}
        assert {
            ("ollama", "llama-test"),
            ("openai", "gpt-fake"),
            ("local", "all-MiniLM-L6-v2"),
        } <= names
        llama = next(m for m in installed if m["name"] == "llama-test")
        assert (llama["size"], llama["digest"]) == (1000, "sha256:0")

        tested = await api.post(
            "/api/v1/models/test",
            {"model": "gpt-fake", "prompt": "ping", "parameters": {"temperature": 0}},
        )
        assert tested.status_code == 200, tested.text
        assert (
            tested.json()["data"]["success"] and tested.json()["data"]["response"] == "Echo: ping"
        )
        (row,) = await ledger(configured, api.tenant.tenant_id)
        assert (row.kind, row.provider, row.model) == ("test", "openai", "gpt-fake")

        union = (await api.get("/api/v1/models")).json()["data"]
        assert union["default_model"] == "llama-test"
        providers = {p["name"]: p for p in union["providers"]}
        assert set(providers) == {"ollama", "openai", "local"}
        assert providers["openai"]["status"] == "healthy"
        declared = next(m for m in providers["openai"]["models"] if m["id"] == "gpt-fake")
        assert declared["capabilities"] == ["text", "vision"]
        assert declared["context_window"] == 128000
        assert declared["cost_per_1k_input"] == 0.01 and declared["avg_latency_ms"] is not None
        embedder = next(m for m in providers["ollama"]["models"] if m["id"] == "nomic-embed-text")
        assert embedder["type"] == "embedding"
        used = next(m for m in union["models"] if m["name"] == "gpt-fake")
        assert used["last_used"] is not None and used["status"] == "available"

        info = (await api.get("/api/v1/models/llama-test/info")).json()["data"]
        assert info["provider"] == "ollama" and info["details"]["details"]["family"] == "fake"
        openai_info = (await api.get("/api/v1/models/openai/gpt-fake/info")).json()["data"]
        assert openai_info["details"]["owned_by"] == "fake" and openai_info["calls_measured"] == 1
        missing = await api.get("/api/v1/models/openai/nope/info")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "MODEL_NOT_AVAILABLE"

        ai_models = (await api.http.get("/api/ai/models", headers=api.headers)).json()["models"]
        gpt_row = next(m for m in ai_models if m["id"] == "gpt-fake")
        assert gpt_row["cost_per_token"] == pytest.approx(0.01 / 1000)
        assert gpt_row["max_tokens"] == 128000 and gpt_row["provider"] == "openai"
        available = (await api.http.get("/api/models/available", headers=api.headers)).json()
        assert {m["status"] for m in available["models"]} == {"available"}


async def test_provider_crud_keeps_the_key_secret(
    settings: Settings, admin_key: str, fake_openai: FakeProvider
) -> None:
    async with model_api(model_settings(settings, {})) as api:
        admin = {"X-API-Key": admin_key}
        body = {
            "name": "hosted",
            "kind": "openai",
            "base_url": fake_openai.url,
            "api_key": "sk-fake",
            "models": ["gpt-fake"],
        }
        refused = await api.post("/api/v1/models/providers", body)
        assert refused.status_code == 403
        created = await api.http.post("/api/v1/models/providers", json=body, headers=admin)
        assert created.status_code == 201, created.text
        assert created.json()["data"]["has_api_key"] is True
        assert "sk-fake" not in created.text
        listed = await api.http.get("/api/v1/models/providers", headers=admin)
        assert (
            "sk-fake" not in listed.text
            and listed.json()["data"]["providers"][0]["name"] == "hosted"
        )
        duplicate = await api.http.post("/api/v1/models/providers", json=body, headers=admin)
        assert duplicate.status_code == 409

        engine = create_engine(api.settings)
        try:
            async with create_sessionmaker(engine)() as session:
                row = await session.scalar(select(ModelProvider))
                assert row is not None and row.api_key_encrypted
                assert "sk-fake" not in row.api_key_encrypted
        finally:
            await engine.dispose()

        # The stored key is decrypted for the call: the fake insists on it.
        answered = await api.post("/api/v1/chat", {"message": "hi", "model": "gpt-fake"})
        assert answered.status_code == 200, answered.text
        assert answered.json()["data"]["provider"] == "hosted"
        provider_id = created.json()["data"]["id"]
        cleared = await api.http.put(
            f"/api/v1/models/providers/{provider_id}", json={"api_key": ""}, headers=admin
        )
        assert cleared.json()["data"]["has_api_key"] is False
        unauthorised = await api.post("/api/v1/chat", {"message": "hi", "model": "gpt-fake"})
        assert unauthorised.status_code == 502

        metadata = {**body, "name": "metadata", "base_url": "http://169.254.169.254/v1"}
        denied = await api.http.post("/api/v1/models/providers", json=metadata, headers=admin)
        assert denied.status_code == 400 and denied.json()["error"]["code"] == "EGRESS_DENIED"

        deleted = await api.http.delete(f"/api/v1/models/providers/{provider_id}", headers=admin)
        assert deleted.status_code == 204
        gone = await api.post("/api/v1/chat", {"message": "hi", "model": "gpt-fake"})
        assert gone.status_code == 404  # nobody offers it now; no stand-in answers
        assert gone.json()["error"]["code"] == "MODEL_NOT_AVAILABLE"


@pytest.fixture
async def pull_stack(
    settings: Settings, fake_ollama: FakeProvider, temporal_env: WorkflowEnvironment, admin_key: str
) -> AsyncIterator[tuple[ModelApi, dict[str, str]]]:
    """API plus a worker on task queues of this test, both with the fake Ollama."""
    configured = model_settings(
        settings,
        {"ollama": ollama_config(fake_ollama)},
        task_queue_prefix=f"m{uuid.uuid4().hex[:8]}-",
    )
    resources = WorkerResources.open(configured)
    try:
        async with AsyncExitStack() as stack:
            for worker in build_workers(
                temporal_env.client, ALL_QUEUES, resources, prefix=configured.task_queue_prefix
            ):
                await stack.enter_async_context(worker)
            async with model_api(configured) as api:
                yield api, {"X-API-Key": admin_key}
    finally:
        await resources.close()


async def _progress(api: ModelApi, admin: dict[str, str], workflow_id: str) -> dict[str, Any]:
    response = await api.http.get(f"/api/v1/ai/models/pull/{workflow_id}", headers=admin)
    assert response.status_code == 200, response.text
    return dict(response.json()["data"])


async def _until(
    api: ModelApi, admin: dict[str, str], workflow_id: str, done: Any
) -> dict[str, Any]:
    async def poll() -> dict[str, Any]:
        while True:
            progress = await _progress(api, admin, workflow_id)
            if done(progress):
                return progress
            await asyncio.sleep(0.1)

    return await asyncio.wait_for(poll(), WAIT)


async def test_pull_runs_as_a_workflow_with_progress_then_delete(
    pull_stack: tuple[ModelApi, dict[str, str]], fake_ollama: FakeProvider
) -> None:
    api, admin = pull_stack
    fake_ollama.pull_gate = asyncio.Event()
    forbidden = await api.post("/api/v1/ai/models/pull", {"name": "qwen:0.5b"})
    assert forbidden.status_code == 403

    started = await api.http.post(
        "/api/v1/ai/models/pull", json={"name": "qwen:0.5b"}, headers=admin
    )
    assert started.status_code == 202, started.text
    workflow_id = started.json()["data"]["workflow_id"]
    assert workflow_id == "pull-ollama-qwen_0.5b"
    again = await api.http.post("/api/v1/models/pull", json={"model": "qwen:0.5b"}, headers=admin)
    assert again.json()["data"]["workflow_id"] == workflow_id  # the running pull, not a second

    # Held by the fake at 2,500 of 4,000 bytes: the query sees the pull mid-way.
    halfway = await _until(api, admin, workflow_id, lambda p: p["completed"] == 2500)
    assert (halfway["phase"], halfway["total"], halfway["percent"]) == ("pulling", 4000, 62.5)
    assert halfway["workflow_status"] == "running"
    fake_ollama.pull_gate.set()
    finished = await _until(api, admin, workflow_id, lambda p: p["phase"] != "pulling")
    assert (finished["phase"], finished["status"], finished["percent"]) == (
        "succeeded",
        "success",
        100.0,
    )
    models = (await api.get("/api/v1/ai/models")).json()["data"]["models"]
    assert "qwen:0.5b" in {m["name"] for m in models}

    assert (
        await api.http.delete("/api/v1/ai/models/qwen:0.5b", headers=api.headers)
    ).status_code == 403
    deleted = await api.http.delete("/api/v1/ai/models/qwen:0.5b", headers=admin)
    assert deleted.status_code == 200 and deleted.json()["data"]["deleted"] is True
    again_deleted = await api.http.delete("/api/v1/models/qwen:0.5b", headers=admin)
    assert again_deleted.status_code == 404
    assert again_deleted.json()["error"]["code"] == "MODEL_NOT_AVAILABLE"
    deletes = [r.body for r in fake_ollama.requests if r.method == "DELETE"]
    assert deletes == [{"model": "qwen:0.5b"}]  # the second was refused here: nobody has it


async def test_pull_of_an_unknown_model_fails_without_retrying(
    pull_stack: tuple[ModelApi, dict[str, str]], fake_ollama: FakeProvider
) -> None:
    api, admin = pull_stack
    started = await api.http.post(
        "/api/v1/ai/models/pull", json={"name": "does-not-exist"}, headers=admin
    )
    workflow_id = started.json()["data"]["workflow_id"]
    # The phase is the workflow's own; its run ends a moment later.
    failed = await _until(api, admin, workflow_id, lambda p: p["workflow_status"] != "running")
    assert failed["phase"] == "failed" and "does not exist" in failed["error"]
    assert failed["workflow_status"] == "failed"
    assert fake_ollama.count("/api/pull") == 1  # permanent: one attempt
    unknown = await api.http.get("/api/v1/ai/models/pull/pull-ollama-never", headers=admin)
    assert unknown.status_code == 404
    assert json.loads(unknown.text)["error"]["code"] == "NOT_FOUND"


async def test_model_delete_leaves_the_other_model_routes_alone(
    settings: Settings, admin_key: str, fake_ollama: FakeProvider
) -> None:
    """``DELETE /models/{name}`` took every path under ``/models/``: ``DELETE
    /models/usage`` deleted a model named "usage". Those paths answer 405 now,
    with an ``Allow`` header naming every method they serve."""
    configured = model_settings(settings, {"ollama": ollama_config(fake_ollama)})
    async with model_api(configured) as api:
        admin = {"X-API-Key": admin_key}
        for path, allowed in [
            ("/api/v1/models/usage", {"GET"}),
            ("/api/v1/models/test", {"POST"}),
            ("/api/v1/models/budget", {"GET", "PUT"}),
            ("/api/v1/models/providers", {"GET", "POST"}),
            ("/api/v1/models/pull", {"POST"}),
            ("/api/v1/models/llama-test/info", {"GET"}),
            ("/api/v1/models/library/llama-test:1b/info", {"GET"}),
            ("/api/v1/ai/models/pull", {"POST"}),
            ("/api/v1/ai/models/pull/pull-ollama-llama-test", {"GET"}),
        ]:
            response = await api.http.delete(path, headers=admin)
            assert response.status_code == 405, (path, response.text)
            assert response.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
            assert set(response.headers["allow"].split(", ")) - {"HEAD"} == allowed, path
        assert not [r for r in fake_ollama.requests if r.method == "DELETE"]

        deleted = await api.http.delete("/api/v1/models/llama-test", headers=admin)
        assert deleted.status_code == 200 and deleted.json()["data"]["deleted"] is True
        assert [r.body for r in fake_ollama.requests if r.method == "DELETE"] == [
            {"model": "llama-test"}
        ]
