"""The response cache, in process and on a real Redis."""

from __future__ import annotations

from typing import Any

import pytest

from engine.platform.settings import Settings
from tests.fake_providers import FakeProvider
from tests.models_support import ledger, model_api, model_settings, ollama_config

pytestmark = pytest.mark.asyncio


@pytest.fixture(params=["memory", "redis"])
def cache_backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "memory":
        return {}
    return {"redis_url": request.getfixturevalue("redis_url")}


def ask(text: str, temperature: float = 0.0) -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": text}],
        "model": "llama-test",
        "temperature": temperature,
    }


async def test_a_repeated_deterministic_request_is_served_from_cache(
    settings: Settings, fake_ollama: FakeProvider, cache_backend: dict[str, Any]
) -> None:
    configured = model_settings(
        settings, {"ollama": ollama_config(fake_ollama, models=["llama-test"])}, **cache_backend
    )
    async with model_api(configured, "cache-a") as api:
        first = (await api.post("/api/v1/ai/chat", ask("cache me"))).json()["data"]
        second = (await api.post("/api/v1/ai/chat", ask("cache me"))).json()["data"]
        assert (first["cached"], second["cached"]) == (False, True)
        assert second["choices"] == first["choices"] and second["cost_usd"] == 0
        assert fake_ollama.count("/api/chat") == 1
        # Not deterministic, so not cached; a streamed repeat is served from cache too.
        await api.post("/api/v1/ai/chat", ask("cache me", temperature=0.7))
        streamed = await api.post("/api/v1/ai/chat", {**ask("cache me"), "stream": True})
        assert "Echo: cache me" in streamed.text.replace('"delta":"', "")
        assert fake_ollama.count("/api/chat") == 2

        rows = await ledger(configured, api.tenant.tenant_id)
        assert [(r.cached, r.cost_usd == 0) for r in rows] == [
            (False, False),
            (True, True),
            (False, False),
            (True, True),
        ]

        stats = (await api.get("/api/v1/cache/stats")).json()["data"]
        assert stats["backend"] == ("redis" if cache_backend else "memory")
        assert (stats["total_hits"], stats["total_misses"], stats["keys_count"]) == (2, 1, 1)
        assert stats["hit_rate"] == pytest.approx(2 / 3, abs=1e-3)
        assert stats["memory_used_mb"] > 0 and stats["ttl_average_seconds"] > 0

        keys = (await api.get("/api/v1/cache/keys", pattern="chat:ollama/llama-test:*")).json()
        assert keys["data"]["count"] == 1
        assert keys["data"]["keys"][0]["key"].startswith("chat:ollama/llama-test:")

        # Another tenant neither sees nor hits this tenant's entries.
        async with model_api(configured, "cache-b") as other:
            assert (await other.get("/api/v1/cache/stats")).json()["data"]["keys_count"] == 0
            again = (await other.post("/api/v1/ai/chat", ask("cache me"))).json()["data"]
            assert again["cached"] is False

        cleared = await api.post("/api/v1/cache/clear", {"pattern": "chat:*"})
        assert cleared.json()["data"]["cleared"] == 1
        assert (await api.get("/api/v1/cache/stats")).json()["data"]["keys_count"] == 0
        after = (await api.post("/api/v1/ai/chat", ask("cache me"))).json()["data"]
        assert after["cached"] is False


async def test_warming_fills_the_cache(
    settings: Settings, fake_ollama: FakeProvider, cache_backend: dict[str, Any]
) -> None:
    configured = model_settings(
        settings, {"ollama": ollama_config(fake_ollama, models=["llama-test"])}, **cache_backend
    )
    async with model_api(configured, "warm") as api:
        warmed = await api.post(
            "/api/v1/cache/warm",
            {"requests": [{"message": "w1", "model": "llama-test"}, {"message": "w2"}]},
        )
        assert warmed.json()["data"]["warmed"] == 2
        hit = await api.post("/api/v1/chat", {"message": "w1", "temperature": 0})
        assert hit.json()["data"]["cached"] is True
        assert fake_ollama.count("/api/chat") == 2
