"""The egress guard: every address checked before any connection, pinned,
no redirects, size and time caps."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from engine.ai.providers.base import ChatMessage, ChatRequest, ProviderError
from engine.ai.providers.factory import embedding_provider
from engine.ai.providers.ollama import OllamaProvider
from engine.platform.egress import (
    EgressDenied,
    address_category,
    guarded_request,
    new_http_client,
    resolve_target,
)
from engine.platform.settings import Settings
from tests.fake_providers import FakeProvider

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with new_http_client(Settings()) as client:
        yield client


def chat(model: str = "llama-test") -> ChatRequest:
    return ChatRequest(model=model, messages=[ChatMessage(role="user", content="hello")])


@pytest.mark.parametrize(
    ("address", "category"),
    [
        ("8.8.8.8", "public"),
        ("2606:4700:4700::1111", "public"),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "private"),
        ("fd12::1", "private"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
    ],
)
async def test_address_categories(address: str, category: str) -> None:
    assert address_category(ipaddress.ip_address(address)) == category


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]:11434/",
        "http://10.0.0.5:11434/",
        "http://192.168.1.10/",
        "http://[fd00:ec2::254]/",
        "http://0.0.0.0:8080/",
        "file:///etc/passwd",
        "ftp://example.com/",
        "http://user:secret@127.0.0.1/",
    ],
)
async def test_forbidden_urls_are_refused_before_resolution_or_connection(url: str) -> None:
    with pytest.raises(EgressDenied) as refused:
        await resolve_target(url, Settings())
    assert refused.value.code == "EGRESS_DENIED"


async def test_policy_switches_and_allowlist() -> None:
    private = "http://10.0.0.5:11434/"
    assert (await resolve_target(private, Settings(egress_allow_private=True))).host == "10.0.0.5"
    allowed = Settings(egress_allowed_hosts="10.0.0.0/8,ollama.internal")
    assert (await resolve_target(private, allowed)).address == ipaddress.ip_address("10.0.0.5")
    with pytest.raises(EgressDenied):
        await resolve_target("http://127.0.0.1:1/", Settings(egress_allow_loopback=False))
    # An allowlist never opens the always-forbidden ranges.
    metadata = Settings(egress_allowed_hosts="169.254.0.0/16", egress_allow_private=True)
    with pytest.raises(EgressDenied):
        await resolve_target("http://169.254.169.254/", metadata)


async def test_every_resolved_address_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """A name with one public and one private answer is refused as a whole."""
    loop = asyncio.get_running_loop()

    async def two_answers(host: str, port: Any, **kwargs: Any) -> list[Any]:
        assert host == "mixed.example"
        stream = socket.SOCK_STREAM
        return [
            (socket.AF_INET, stream, 6, "", ("93.184.216.34", port)),
            (socket.AF_INET, stream, 6, "", ("10.0.0.7", port)),
        ]

    monkeypatch.setattr(loop, "getaddrinfo", two_answers)
    with pytest.raises(EgressDenied) as refused:
        await resolve_target("https://mixed.example/v1", Settings())
    assert refused.value.details["reason"] == "private"
    # What a name resolves to stays out of the answer (no mapping of internal DNS).
    assert "10.0.0.7" not in refused.value.message
    assert "10.0.0.7" not in str(refused.value.details)


async def test_a_forbidden_provider_url_never_reaches_the_server(
    fake_ollama: FakeProvider, http: httpx.AsyncClient
) -> None:
    """The fake is on loopback; with loopback forbidden it sees no request at all."""
    strict = Settings(egress_allow_loopback=False)
    provider = OllamaProvider("fake", fake_ollama.url, http=http, settings=strict)
    with pytest.raises(EgressDenied):
        await provider.chat(chat())
    embedder = embedding_provider("Ollama", fake_ollama.url, None, http=http, settings=strict)
    with pytest.raises(EgressDenied):
        await embedder.embed(["text"], "nomic-embed-text")
    assert fake_ollama.requests == []
    # The same URL under the default policy goes through.
    allowed = OllamaProvider("fake", fake_ollama.url, http=http, settings=Settings())
    assert (await allowed.chat(chat())).content == "Echo: hello"
    assert fake_ollama.paths() == ["/api/chat"]


async def test_connection_is_pinned_to_the_checked_address_with_the_name_kept(
    fake_ollama: FakeProvider, http: httpx.AsyncClient
) -> None:
    port = fake_ollama.url.rsplit(":", 1)[1]
    target = await resolve_target(f"http://localhost:{port}/api/tags", Settings())
    assert target.address.is_loopback
    assert target.pinned_url.host == str(target.address)
    response = await guarded_request(
        http, "GET", f"http://localhost:{port}/api/tags", settings=Settings()
    )
    assert response.status_code == 200
    assert fake_ollama.requests[-1].headers["host"] == f"localhost:{port}"


async def test_redirects_are_not_followed(
    fake_ollama: FakeProvider, http: httpx.AsyncClient
) -> None:
    provider = OllamaProvider("fake", fake_ollama.url, http=http, settings=Settings())
    with pytest.raises(ProviderError) as failed:
        await provider.chat(chat("fail-redirect"))
    assert "redirect" in failed.value.message
    assert fake_ollama.paths() == ["/api/chat"]


async def test_response_size_is_capped(fake_ollama: FakeProvider, http: httpx.AsyncClient) -> None:
    tiny = Settings(provider_max_response_bytes=64)
    provider = OllamaProvider("fake", fake_ollama.url, http=http, settings=tiny)
    with pytest.raises(Exception) as too_big:
        await provider.list_models()
    assert getattr(too_big.value, "code", None) == "UPSTREAM_RESPONSE_TOO_LARGE"
