"""Seed-document details a client notices (issue #12): provider states on
``/health`` (z2, sutazai), absolute file URLs (zentoria) and model metadata
in every listing (zentoria, z2, sutazai)."""

from __future__ import annotations

import pytest

from api.app import create_app
from engine.platform.settings import Settings
from tests.conftest import api_client, free_port, make_tenant
from tests.fake_providers import FakeProvider
from tests.models_support import model_api, model_settings, ollama_config, openai_config

pytestmark = pytest.mark.asyncio


async def test_health_lists_providers_with_their_state(
    settings: Settings, fake_ollama: FakeProvider, fake_openai: FakeProvider
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    configured = model_settings(
        settings,
        {
            # The provider named "ollama" is the one sutazai's services.ollama reports.
            "ollama": {"kind": "ollama", "base_url": dead, "priority": 1},
            "spare": ollama_config(fake_ollama, priority=2),
            "hosted": openai_config(fake_openai, priority=3),
        },
    )
    async with api_client(create_app(configured)) as http:
        first = await http.get("/health")
        second = await http.get("/health")
    assert first.status_code == 200, first.text
    body = second.json()
    # sutazai: services.ollama and performance.
    assert body["services"]["ollama"] == "unhealthy"
    assert body["performance"]["response_time_ms"] >= 0
    assert 0.0 <= body["performance"]["cache_hit_rate"] <= 1.0
    # z2: components.llm_providers, every provider by name (the local one too).
    assert body["components"]["llm_providers"] == {
        "ollama": "unhealthy",
        "spare": "healthy",
        "hosted": "healthy",
        "local": "healthy",
    }
    providers = {p["name"]: p for p in body["providers"]}
    assert providers["ollama"]["status"] == "unhealthy" and providers["ollama"]["error"]
    assert providers["spare"] == {
        "name": "spare",
        "kind": "ollama",
        "source": "settings",
        "status": "healthy",
        "circuit_breaker": "closed",
        "error": None,
    }
    assert providers["local"]["kind"] == "local"
    # Unauthenticated, so nothing secret: no base URL, no key.
    for text in (first.text, second.text):
        assert fake_ollama.url not in text and fake_openai.url not in text
        assert dead not in text and "sk-fake" not in text
    # The registry's cache bounds the probing: two health calls, one listing each.
    assert fake_ollama.count("/api/tags") == 1
    assert fake_openai.count("/v1/models") == 1


async def test_health_without_ollama_says_not_configured(settings: Settings) -> None:
    async with api_client(create_app(model_settings(settings, {}))) as http:
        body = (await http.get("/health")).json()
    assert body["services"]["ollama"] == "not_configured"
    assert body["components"]["llm_providers"] == {"local": "healthy"}


async def test_model_listings_carry_size_date_and_digest(
    settings: Settings, fake_ollama: FakeProvider
) -> None:
    configured = model_settings(settings, {"ollama": ollama_config(fake_ollama)})
    expected = {"size": 1000, "modified_at": "2026-01-15T10:00:00Z", "digest": "sha256:0"}
    async with model_api(configured) as api:
        installed = (await api.get("/api/v1/ai/models")).json()["data"]["models"]
        catalog = (await api.get("/api/v1/models")).json()["data"]
        info = await api.get("/api/v1/models/llama-test/info")
        unknown = await api.get("/api/v1/models/no-such-model/info")

    def fields(item: dict[str, object]) -> dict[str, object]:
        return {key: item[key] for key in expected}

    # zentoria /ai/models, z2 providers[].models, sutazai's flat models and info.
    assert fields(next(m for m in installed if m["name"] == "llama-test")) == expected
    ollama = next(p for p in catalog["providers"] if p["name"] == "ollama")
    assert fields(next(m for m in ollama["models"] if m["id"] == "llama-test")) == expected
    assert fields(next(m for m in catalog["models"] if m["name"] == "llama-test")) == expected
    assert info.status_code == 200, info.text
    assert fields(info.json()["data"]) == expected
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "MODEL_NOT_AVAILABLE"


async def test_file_urls_are_absolute(settings: Settings) -> None:
    tenant = await make_tenant(settings, "files")
    headers = {"X-API-Key": tenant.key}
    upload = {"file": ("notes.txt", b"absolute links please", "text/plain")}
    async with api_client(create_app(settings)) as http:
        created = await http.post(
            "/api/v1/mcp/upload", headers=headers, files=upload, data={"process": "false"}
        )
        assert created.status_code == 201, created.text
        file_id = created.json()["data"]["file_id"]
        link = f"http://weft.test/api/v1/mcp/files/{file_id}/download"
        assert created.json()["data"]["url"] == link
        read = (await http.get(f"/api/v1/mcp/files/{file_id}", headers=headers)).json()
        assert read["data"]["url"] == link
        listed = (await http.get("/api/v1/mcp/files", headers=headers)).json()["data"]
        assert [item["url"] for item in listed["files"]] == [link]
        downloaded = await http.get(link, headers=headers)
        assert downloaded.status_code == 200 and downloaded.content == b"absolute links please"
    public = settings.model_copy(update={"public_base_url": "https://api.example.com/"})
    async with api_client(create_app(public)) as http:
        read = await http.get(f"/api/v1/mcp/files/{file_id}", headers=headers)
    assert read.json()["data"]["url"] == (
        f"https://api.example.com/api/v1/mcp/files/{file_id}/download"
    )
