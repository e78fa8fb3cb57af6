"""Routing by cost, capabilities, context and budget; circuit breakers; fallbacks."""

from __future__ import annotations

from typing import Any

import pytest

from engine.ai.breakers import BreakerState, CircuitBreaker
from engine.ai.chat import counts_against_provider
from engine.ai.providers.base import ModelNotAvailable, ProviderError
from engine.ai.providers.registry import ProviderEntry, Resolved
from engine.ai.routing import Candidate, rank
from engine.platform.settings import Settings
from tests.fake_providers import FakeProvider
from tests.models_support import ledger, model_api, model_settings, ollama_config, openai_config

pytestmark = pytest.mark.asyncio

GPT = {
    "id": "gpt-fake",
    "capabilities": ["text", "code"],
    "context_window": 8000,
    "cost_per_1k_input": 0.01,
    "cost_per_1k_output": 0.03,
    "quality_score": 0.95,
}
MINI = {
    "id": "gpt-fake-mini",
    "capabilities": ["text"],
    "context_window": 1000,
    "cost_per_1k_input": 0.0005,
    "cost_per_1k_output": 0.0015,
    "quality_score": 0.8,
}
LLAMA = {
    "id": "llama-test",
    "capabilities": ["text"],
    "context_window": 4000,
    "cost_per_1k_input": 0.001,
    "cost_per_1k_output": 0.002,
    "quality_score": 0.7,
}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_breaker_opens_recovers_half_open_and_closes() -> None:
    clock = Clock()
    breaker = CircuitBreaker("p", failure_threshold=3, recovery_seconds=30, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure("MODEL_API_ERROR")
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure("MODEL_API_ERROR")
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    clock.now = 29.0
    assert not breaker.allow() and breaker.retry_after() == 1.0
    clock.now = 30.0
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()  # the one probe
    assert not breaker.allow()  # nobody else while it is out
    breaker.record_failure("GATEWAY_TIMEOUT")
    assert breaker.state is BreakerState.OPEN and breaker.times_opened == 2
    clock.now = 61.0
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED and breaker.failures == 0
    assert breaker.snapshot()["total_failures"] == 4
    # A model the provider lacks is the caller's mistake, not the provider's failure.
    assert not counts_against_provider(ModelNotAvailable("no such model"))
    assert counts_against_provider(ProviderError("HTTP 500"))


def candidate(model: str, cost: float, latency: float, quality: float, errors: float = 0) -> Any:
    entry = ProviderEntry("p", "ollama", None, 1, "settings", (), None)  # type: ignore[arg-type]
    return Candidate(Resolved(entry, model), cost, latency, 10, errors, quality, None, ("text",))


async def test_ranking_by_priority() -> None:
    cheap_slow = candidate("cheap-slow", 0.001, 3000, 0.6)
    dear_fast = candidate("dear-fast", 0.05, 200, 0.9)
    middle = candidate("middle", 0.005, 600, 0.85)
    flaky_fast = candidate("flaky-fast", 0.004, 150, 0.85, errors=0.5)
    found = [cheap_slow, dear_fast, middle, flaky_fast]
    assert rank(found, "cost")[0].model == "cheap-slow"
    assert rank(found, "performance")[0].model == "dear-fast"  # flaky-fast pays for its errors
    assert rank(found, "balanced")[0].model == "middle"


def routing_settings(settings: Settings, ollama: FakeProvider, openai: FakeProvider) -> Settings:
    return model_settings(
        settings,
        {
            "ollama": ollama_config(ollama, models=[LLAMA]),
            "openai": openai_config(openai, models=[GPT, MINI]),
        },
        model_prices={},
    )


async def test_routing_picks_the_cheapest_model_meeting_the_constraints(
    settings: Settings, fake_ollama: FakeProvider, fake_openai: FakeProvider
) -> None:
    async with model_api(routing_settings(settings, fake_ollama, fake_openai)) as api:

        async def pick(**body: Any) -> dict[str, Any]:
            response = await api.http.post(
                "/api/models/route",
                json={"prompt": "Analyze this feedback", "priority": "cost", **body},
                headers=api.headers,
            )
            assert response.status_code == 200, response.text
            return dict(response.json())

        assert (await pick(max_tokens=100))["model"] == "gpt-fake-mini"
        too_long = await pick(max_tokens=2000)  # mini holds 1000 tokens
        assert too_long["model"] == "llama-test"
        assert too_long["excluded"]["openai/gpt-fake-mini"] == "context_too_small"
        assert (await pick(max_tokens=100, task_type="code"))["model"] == "gpt-fake"
        assert (await pick(max_tokens=100, providers=["ollama"]))["model"] == "llama-test"
        chosen = await pick(max_tokens=100, budget_limit=0.01)
        assert chosen["estimated_cost"] <= 0.01 and chosen["routing_reason"] == "cost_optimized"
        none = await api.http.post(
            "/api/models/route",
            json={"prompt": "x", "task_type": "code", "max_tokens": 100, "budget_limit": 1e-6},
            headers=api.headers,
        )
        assert none.status_code == 404
        assert none.json()["error"]["details"]["excluded"]["openai/gpt-fake"] == (
            "over_budget_limit"
        )
        assert fake_openai.count("/v1/chat/completions") == 0  # choosing calls nothing

        routed = await api.http.post(
            "/api/ai/route",
            json={
                "prompt": "Analyze this customer feedback for sentiment",
                "max_tokens": 200,
                "routing_preferences": {"cost_optimization": True, "budget_limit": 0.5},
            },
            headers=api.headers,
        )
        assert routed.status_code == 200, routed.text
        data = routed.json()
        assert (data["model_used"], data["provider"]) == ("gpt-fake-mini", "openai")
        assert data["routing_reason"] == "cost_optimized"
        assert data["response"].startswith("Echo: Analyze")
        assert data["tokens_used"] > 0 and data["response_time"] >= 0
        (row,) = await ledger(api.settings, api.tenant.tenant_id)
        assert row.kind == "route" and row.cost_usd == pytest.approx(data["cost"])


async def test_fallback_model_is_used_when_the_primary_fails_or_its_breaker_is_open(
    settings: Settings, fake_ollama: FakeProvider, fake_openai: FakeProvider
) -> None:
    configured = routing_settings(settings, fake_ollama, fake_openai)
    fake_ollama.behaviour = "500"
    body = {"messages": [{"role": "user", "content": "help"}], "model": "llama-test"}
    async with model_api(configured) as api:
        # The call fails: the fallback answers (the primary was asked).
        saved = await api.post("/api/v1/ai/chat", {**body, "fallback_model": "gpt-fake-mini"})
        assert saved.status_code == 200, saved.text
        assert saved.json()["data"]["provider"] == "openai"
        assert saved.json()["data"]["fallback_from"] == "ollama/llama-test"
        assert fake_ollama.count("/api/chat") == 1
        for _ in range(2):
            failed = await api.post("/api/v1/ai/chat", body)
            assert failed.json()["error"]["code"] == "MODEL_API_ERROR"
        # Three failures: the breaker is open, and the primary is no longer called.
        refused = await api.post("/api/v1/ai/chat", body)
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "CIRCUIT_OPEN"
        assert int(refused.headers["retry-after"]) > 0
        for stream in (False, True):
            rescued = await api.post(
                "/api/v1/ai/chat", {**body, "fallback_model": "gpt-fake-mini", "stream": stream}
            )
            assert rescued.status_code == 200, rescued.text
        assert "gpt-fake-mini" in rescued.text
        simple = await api.post(
            "/api/v1/chat", {"message": "hi", "model": "llama-test", "fallback_model": "gpt-fake"}
        )
        assert simple.json()["data"]["model"] == "gpt-fake"
        assert fake_ollama.count("/api/chat") == 3  # nothing more reached the primary

        breakers = (await api.get("/api/v1/health/circuit-breakers")).json()["data"]
        assert breakers["open"] == ["ollama"]
        ollama = breakers["circuit_breakers"]["ollama"]
        assert (ollama["state"], ollama["failure_count"], ollama["last_failure"]) == (
            "open",
            3,
            "MODEL_API_ERROR",
        )
        assert breakers["circuit_breakers"]["openai"]["state"] == "closed"
        picked = await api.http.post(
            "/api/models/route",
            json={"prompt": "x", "priority": "cost", "max_tokens": 2000},
            headers=api.headers,
        )
        assert picked.json()["excluded"]["ollama/llama-test"] == "circuit_open"
        assert picked.json()["model"] == "gpt-fake"


async def test_measured_latency_is_shared_through_redis(
    settings: Settings, fake_ollama: FakeProvider, redis_url: str
) -> None:
    from redis.asyncio import Redis

    from engine.ai.stats import ModelStats

    configured = routing_settings(settings, fake_ollama, fake_ollama)
    configured = configured.model_copy(update={"redis_url": redis_url})
    client = Redis.from_url(redis_url)
    try:
        await client.delete("weft:mstats:ollama/llama-test")
        async with model_api(configured) as api:
            for _ in range(3):
                answered = await api.post("/api/v1/chat", {"message": "hi", "model": "llama-test"})
                assert answered.status_code == 200
        # Another replica (a fresh ModelStats on the same Redis) sees the measurements.
        shared = (await ModelStats(client).get(["ollama/llama-test"]))["ollama/llama-test"]
        assert shared.calls == 3 and shared.errors == 0 and shared.avg_latency_ms is not None
    finally:
        await client.delete("weft:mstats:ollama/llama-test")
        await client.aclose()


async def test_a_misconfigured_provider_is_left_out(
    settings: Settings, fake_ollama: FakeProvider
) -> None:
    providers = {
        "ollama": ollama_config(fake_ollama, models=[LLAMA]),
        "broken": {"kind": "cohere", "base_url": "http://127.0.0.1:1"},
        "ftp": {"kind": "openai", "base_url": "ftp://example.com"},
    }
    async with model_api(model_settings(settings, providers)) as api:
        answered = await api.post("/api/v1/chat", {"message": "hi"})
        assert answered.status_code == 200 and answered.json()["data"]["provider"] == "ollama"
        names = [p["name"] for p in (await api.get("/api/v1/models")).json()["data"]["providers"]]
        assert names == ["ollama", "local"]


async def test_routing_never_chooses_a_provider_the_request_excluded(settings: Settings) -> None:
    """With only the local provider configured, ``providers: ["openai"]`` finds nothing."""
    async with model_api(model_settings(settings, {})) as api:
        refused = await api.http.post(
            "/api/models/route",
            json={"prompt": "Analyze this feedback", "providers": ["openai"]},
            headers=api.headers,
        )
        assert refused.status_code == 404, refused.text
        assert refused.json()["error"]["code"] == "MODEL_NOT_AVAILABLE"
        allowed = await api.http.post(
            "/api/models/route", json={"prompt": "Analyze this feedback"}, headers=api.headers
        )
        assert allowed.status_code == 200 and allowed.json()["provider"] == "local"


async def test_auterity_reads_provider_failures_as_ai_service_errors(
    settings: Settings, fake_ollama: FakeProvider
) -> None:
    configured = model_settings(settings, {"ollama": ollama_config(fake_ollama)})
    async with model_api(configured) as api:
        fake_ollama.lists_trouble = False
        warm = await api.http.post(  # the provider lists its models, then breaks
            "/api/ai/route", json={"prompt": "Say hi", "max_tokens": 20}, headers=api.headers
        )
        assert warm.status_code == 200, warm.text
        fake_ollama.behaviour = "500"
        routed = await api.http.post(
            "/api/ai/route", json={"prompt": "Say hi", "max_tokens": 20}, headers=api.headers
        )
        assert routed.status_code == 502, routed.text
        error = routed.json()["error"]
        assert (error["code"], error["details"]["code"]) == ("AI_SERVICE_ERROR", "MODEL_API_ERROR")
        # The same failure on zentoria's path keeps zentoria's code.
        chat = await api.post("/api/v1/ai/chat", {"messages": [{"role": "user", "content": "hi"}]})
        assert chat.json()["error"]["code"] == "MODEL_API_ERROR"
