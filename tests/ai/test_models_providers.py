"""The Ollama and OpenAI clients against real HTTP servers speaking their wire formats."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest

from engine.ai.providers.base import (
    ChatMessage,
    ChatRequest,
    ModelNotAvailable,
    ProviderError,
    ProviderRateLimited,
)
from engine.ai.providers.factory import embedding_provider
from engine.ai.providers.http import ProviderTimeout
from engine.ai.providers.ollama import OllamaProvider
from engine.ai.providers.openai import OpenAIProvider
from engine.platform.egress import EgressDenied, new_http_client
from engine.platform.errors import InvalidInput
from engine.platform.settings import Settings
from tests.fake_providers import TROUBLE_MODELS, FakeProvider, fake_vector

pytestmark = pytest.mark.asyncio
SETTINGS = Settings(provider_timeout_seconds=0.5)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with new_http_client(SETTINGS) as client:
        yield client


def chat(model: str, text: str = "hello there") -> ChatRequest:
    return ChatRequest(
        model=model,
        messages=[ChatMessage(role="user", content=text)],
        temperature=0.2,
        max_tokens=50,
    )


async def test_ollama_chat_stream_generate_and_options(
    fake_ollama: FakeProvider, http: httpx.AsyncClient
) -> None:
    ollama = OllamaProvider("ollama", fake_ollama.url, http=http, settings=SETTINGS)
    result = await ollama.chat(chat("llama-test"))
    assert (result.content, result.prompt_tokens, result.completion_tokens) == (
        "Echo: hello there",
        2,
        3,
    )
    sent = fake_ollama.requests[-1].body
    assert sent["stream"] is False and sent["options"] == {"temperature": 0.2, "num_predict": 50}

    chunks = [chunk async for chunk in ollama.stream_chat(chat("llama-test"))]
    assert "".join(c.delta for c in chunks) == "Echo: hello there"
    assert chunks[-1].done and chunks[-1].prompt_tokens == 2
    assert fake_ollama.requests[-1].body["stream"] is True
    assert fake_ollama.streams_completed == 1

    generated = await ollama.generate("llama-test", "why")
    assert generated.content == "Echo: why" and fake_ollama.paths()[-1] == "/api/generate"


async def test_ollama_models_pull_delete_and_embed(
    fake_ollama: FakeProvider, http: httpx.AsyncClient
) -> None:
    ollama = OllamaProvider("ollama", f"{fake_ollama.url}/api/", http=http, settings=SETTINGS)
    listed = [m.name for m in await ollama.list_models()]
    assert listed == ["llama-test", "nomic-embed-text", *TROUBLE_MODELS]
    progress = [p async for p in ollama.pull("qwen:0.5b")]
    assert progress[0].status == "pulling manifest" and progress[-1].status == "success"
    assert any(p.total == 3000 and p.completed == 1500 for p in progress)
    assert "qwen:0.5b" in [m.name for m in await ollama.list_models()]
    with pytest.raises(ModelNotAvailable):
        _ = [p async for p in ollama.pull("does-not-exist")]
    await ollama.delete("qwen:0.5b")
    with pytest.raises(ModelNotAvailable):
        await ollama.delete("qwen:0.5b")
    embedded = await ollama.embed(["one", "two"], "nomic-embed-text")
    assert embedded.vectors == [fake_vector("one"), fake_vector("two")] and embedded.tokens == 2


async def test_openai_chat_streaming_usage_models_and_key(
    fake_openai: FakeProvider, http: httpx.AsyncClient
) -> None:
    openai = OpenAIProvider(
        "openai", f"{fake_openai.url}/v1", "sk-fake", http=http, settings=SETTINGS
    )
    result = await openai.chat(chat("gpt-fake"))
    assert result.content == "Echo: hello there" and result.total_tokens == 5
    assert fake_openai.requests[-1].headers["authorization"] == "Bearer sk-fake"

    chunks = [chunk async for chunk in openai.stream_chat(chat("gpt-fake"))]
    assert "".join(c.delta for c in chunks) == "Echo: hello there"
    assert chunks[-1].done and (chunks[-1].prompt_tokens, chunks[-1].completion_tokens) == (2, 3)
    assert fake_openai.requests[-1].body["stream_options"] == {"include_usage": True}

    assert "gpt-fake" in [m.name for m in await openai.list_models()]
    vectors = await openai.embed(["a"], "text-embedding-fake")
    assert vectors.vectors == [fake_vector("a")]
    # The base URL works without its /v1 too; a wrong key is the provider's refusal.
    no_key = OpenAIProvider("openai", fake_openai.url, None, http=http, settings=SETTINGS)
    with pytest.raises(ProviderError) as refused:
        await no_key.chat(chat("gpt-fake"))
    assert refused.value.details["status"] == 401 and not refused.value.retryable


@pytest.mark.parametrize("kind", ["ollama", "openai"])
async def test_upstream_failures_map_to_provider_errors(
    kind: str, fake_ollama: FakeProvider, fake_openai: FakeProvider, http: httpx.AsyncClient
) -> None:
    if kind == "ollama":
        provider: OllamaProvider | OpenAIProvider = OllamaProvider(
            "p", fake_ollama.url, http=http, settings=SETTINGS
        )
    else:
        provider = OpenAIProvider("p", fake_openai.url, "sk-fake", http=http, settings=SETTINGS)

    with pytest.raises(ProviderRateLimited) as limited:
        await provider.chat(chat("fail-429"))
    assert limited.value.retry_after == 7.0
    with pytest.raises(ProviderError) as broken:
        await provider.chat(chat("fail-500"))
    assert broken.value.code == "MODEL_API_ERROR" and broken.value.retryable
    with pytest.raises(ProviderError) as garbled:
        await provider.chat(chat("fail-malformed"))
    assert garbled.value.code == "MODEL_API_ERROR"
    with pytest.raises(ProviderTimeout) as slow:
        await provider.chat(chat("fail-hang"))
    assert slow.value.code == "GATEWAY_TIMEOUT"
    with pytest.raises(ModelNotAvailable):
        await provider.chat(chat("fail-404"))
    with pytest.raises(ProviderRateLimited):
        _ = [c async for c in provider.stream_chat(chat("fail-429"))]


async def test_unreachable_provider_is_unavailable(http: httpx.AsyncClient) -> None:
    from tests.conftest import free_port

    ollama = OllamaProvider("gone", f"http://127.0.0.1:{free_port()}", http=http, settings=SETTINGS)
    with pytest.raises(ProviderError) as failed:
        await ollama.chat(chat("llama-test"))
    assert failed.value.code == "SERVICE_UNAVAILABLE"


async def test_embedding_provider_factory(
    fake_ollama: FakeProvider, fake_openai: FakeProvider, http: httpx.AsyncClient
) -> None:
    # A partio endpoint is a tenant's URL: loopback only where the operator opened it.
    closed = embedding_provider("Ollama", fake_ollama.url, None, http=http, settings=SETTINGS)
    with pytest.raises(EgressDenied):
        await closed.embed(["x"], "nomic-embed-text")
    opened = SETTINGS.model_copy(
        update={
            "tenant_egress_allowed_hosts": [
                urlsplit(fake.url).netloc for fake in (fake_ollama, fake_openai)
            ]
        }
    )
    ollama = embedding_provider("Ollama", fake_ollama.url, None, http=http, settings=opened)
    assert (await ollama.embed(["x"], "nomic-embed-text")).vectors == [fake_vector("x")]
    openai = embedding_provider("OpenAI", fake_openai.url, "sk-fake", http=http, settings=opened)
    assert (await openai.embed(["y"], "text-embedding-fake")).vectors == [fake_vector("y")]
    assert fake_openai.requests[-1].body == {"model": "text-embedding-fake", "input": ["y"]}
    local = embedding_provider("Local", None, None, http=http, settings=SETTINGS)
    assert local.name == "local"
    with pytest.raises(InvalidInput):
        embedding_provider("Cohere", "http://127.0.0.1:1", None, http=http, settings=SETTINGS)
