"""Documents with configured providers: re-embedding via an Ollama endpoint, answers
written by a chat model, and /ai/embeddings on a provider's model (loopback fakes)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from api.app import create_app
from engine.db.connection import create_engine, create_sessionmaker
from engine.db.tables import ChunkVector
from engine.platform.settings import Settings
from tests.conftest import DocStack, api_client, worker_stack
from tests.documents_support import upload, wait_run
from tests.fake_providers import FakeProvider

pytestmark = pytest.mark.asyncio
TEXT = b"Owls hunt at night. Foxes sleep in dens. The forest is quiet in winter."


async def vectors_by_model(settings: Settings, file_id: str) -> dict[str, int]:
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            rows = await session.execute(
                select(ChunkVector.model, func.count())
                .where(ChunkVector.file_id == file_id)
                .group_by(ChunkVector.model)
            )
            return {model: int(count) for model, count in rows.all()}
    finally:
        await engine.dispose()


async def test_reembedding_with_an_ollama_endpoint_skips_extraction(
    settings: Settings,
    fake_ollama: FakeProvider,
    temporal_env,  # type: ignore[no-untyped-def]
) -> None:
    # A tenant's endpoint on loopback is called only when the operator opened it.
    opened = settings.model_copy(
        update={"tenant_egress_allowed_hosts": [urlsplit(fake_ollama.url).netloc]}
    )
    async with worker_stack(opened, temporal_env) as doc_stack:
        await _reembed_with_ollama(doc_stack, fake_ollama, temporal_env)


async def _reembed_with_ollama(
    doc_stack: DocStack,
    fake_ollama: FakeProvider,
    temporal_env,  # type: ignore[no-untyped-def]
) -> None:
    http, headers, tenant = doc_stack.http, doc_stack.headers, doc_stack.tenant
    response = await upload(http, headers, "notes.txt", TEXT)
    file_id = response.json()["data"]["file_id"]
    assert (await wait_run(http, headers, f"doc-{file_id}"))["status"] == "completed"

    login = await http.post(
        "/api/v1/auth/login", json={"email": tenant.email, "password": tenant.password}
    )
    admin = {"Authorization": f"Bearer {login.json()['data']['access_token']}"}
    endpoint = await http.put(
        "/v1.0/endpoints",
        headers=admin,
        json={"Model": "nomic-embed-text", "Endpoint": fake_ollama.url, "ApiFormat": "Ollama"},
    )
    assert endpoint.status_code == 201, endpoint.text
    fake_ollama.reset()

    trigger = await http.post("/api/v1/mcp/workflow", headers=headers, json={
        "workflow_name": "document_processor",
        "input_data": {"file_id": file_id,
                       "options": {"embedding": {"endpoint_id": endpoint.json()["Id"]}}},
    })  # fmt: skip
    assert trigger.status_code == 202, trigger.text
    run = await wait_run(http, headers, trigger.json()["data"]["execution_id"])
    assert run["status"] == "completed" and run["result"]["model"] == "nomic-embed-text"

    assert fake_ollama.count("/api/embed") >= 1
    sent = [
        text for r in fake_ollama.requests if r.path == "/api/embed" for text in r.body["input"]
    ]
    assert any("Owls hunt at night" in text for text in sent)
    handle = temporal_env.client.get_workflow_handle(f"doc-{file_id}")
    scheduled = [
        event.activity_task_scheduled_event_attributes.activity_type.name
        async for event in handle.fetch_history_events()
        if event.HasField("activity_task_scheduled_event_attributes")
    ]
    assert "extract_text" not in scheduled and "chunk_text" not in scheduled
    assert "embed_chunks" in scheduled
    counts = await vectors_by_model(doc_stack.settings, file_id)
    assert counts["nomic-embed-text"] == counts["all-MiniLM-L6-v2"] >= 1

    # Questions can search those vectors: the question is embedded by the same endpoint.
    fake_ollama.reset()
    answer = await http.post(
        "/api/v1/ai/rag/query",
        headers=headers,
        json={"query": "When do owls hunt?", "embedding_endpoint_id": endpoint.json()["Id"]},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"]["citations"][0]["file_id"] == file_id
    asked = [r.body["input"] for r in fake_ollama.requests if r.path == "/api/embed"]
    assert asked == [["When do owls hunt?"]]


async def test_rag_answer_is_written_by_the_configured_chat_model(
    doc_stack: DocStack, fake_openai: FakeProvider
) -> None:
    http, headers = doc_stack.http, doc_stack.headers
    response = await upload(http, headers, "notes.txt", TEXT)
    assert (await wait_run(http, headers, response.json()["data"]["execution_id"]))[
        "status"] == "completed"  # fmt: skip
    configured = doc_stack.settings.model_copy(update={
        "providers": {
            "fake": {"kind": "openai", "base_url": fake_openai.url, "api_key": "sk-fake"}
        },
        "default_chat_model": "gpt-fake",
    })  # fmt: skip
    async with api_client(create_app(configured)) as http2:
        answer = await http2.post("/api/v1/ai/rag/query", headers=headers,
                                  json={"query": "When do owls hunt?"})  # fmt: skip
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    assert data["model"] == "gpt-fake" and data["answer"].startswith("Echo:")
    asked = [r.body for r in fake_openai.requests if r.path == "/v1/chat/completions"]
    assert asked and "Owls hunt at night" in str(asked[-1]["messages"])
    assert data["citations"][0]["file_id"] == response.json()["data"]["file_id"]


async def test_embeddings_on_a_provider_model(
    doc_stack: DocStack, fake_ollama: FakeProvider
) -> None:
    configured = doc_stack.settings.model_copy(
        update={"providers": {"local-ollama": {"kind": "ollama", "base_url": fake_ollama.url}}}
    )
    async with api_client(create_app(configured)) as http:
        response = await http.post(
            "/api/v1/ai/embeddings",
            headers=doc_stack.headers,
            json={"input": ["a b c", "d e"], "model": "nomic-embed-text"},
        )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["model"] == "nomic-embed-text" and data["dimensions"] == 8
    assert data["usage"]["tokens"] == 5
