"""Chat through the API against fake providers: shapes, SSE framing, validation,
error envelopes, the local provider, the ledger and budgets (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from engine.ai.providers.local import EXTRACTIVE_MODEL
from engine.platform.settings import Settings
from tests.conftest import free_port
from tests.events.support import events_of
from tests.fake_providers import FakeProvider
from tests.models_support import (
    PRICES,
    ledger,
    model_api,
    model_settings,
    ollama_config,
    sse_events,
    tenant_admin_key,
)

pytestmark = pytest.mark.asyncio


def ask(text: str = "hello there", **extra: object) -> dict[str, object]:
    return {"messages": [{"role": "user", "content": text}], **extra}


async def test_chat_shapes_batch_and_ledger_totals(
    settings: Settings, fake_ollama: FakeProvider
) -> None:
    configured = model_settings(settings, {"ollama": ollama_config(fake_ollama)})
    async with model_api(configured) as api:
        zentoria = await api.post("/api/v1/ai/chat", ask(model="llama-test", max_tokens=20))
        assert zentoria.status_code == 200, zentoria.text
        data = zentoria.json()["data"]
        assert data["model"] == "llama-test" and data["provider"] == "ollama"
        assert data["choices"][0]["message"] == {
            "role": "assistant",
            "content": "Echo: hello there",
        }
        assert data["choices"][0]["finish_reason"] == "stop"
        assert data["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
        assert data["cost_usd"] == pytest.approx(2 * 0.001 / 1000 + 3 * 0.002 / 1000)

        sutazai = await api.post("/api/v1/chat", {"message": "What is 2+2?", "model": "llama-test"})
        assert sutazai.status_code == 200, sutazai.text
        simple = sutazai.json()["data"]
        assert simple["response"] == "Echo: What is 2+2?" and simple["tokens_used"] == 7
        # sutazai's documented answer, read at the top level by its own clients.
        top = sutazai.json()
        assert (top["response"], top["model"], top["tokens_used"]) == (
            "Echo: What is 2+2?", "llama-test", 7)  # fmt: skip

        batch = await api.post(
            "/api/v1/chat/batch",
            {"requests": [{"message": "one"}, {"message": "two", "model": "fail-500"}]},
        )
        results = batch.json()["data"]
        assert (results["succeeded"], results["failed"]) == (1, 1)
        assert results["results"][1]["error"]["code"] == "MODEL_API_ERROR"

        rows = await ledger(configured, api.tenant.tenant_id)
        assert len(rows) == 4 and sum(1 for r in rows if not r.success) == 1
        # Each answer is announced once (ai.response, zentoria's payload), failures not.
        answered = await events_of(configured, api.tenant.tenant_id, "ai.response")
        assert sorted((e.data["query"], e.data["answer"]) for e in answered) == [
            ("What is 2+2?", "Echo: What is 2+2?"),
            ("hello there", "Echo: hello there"),
            ("one", "Echo: one"),
        ]
        assert {e.data["model"] for e in answered} == {"llama-test"}
        assert {r.kind for r in rows} == {"chat", "batch"}
        assert all(r.request_id and r.user_id for r in rows)
        total = sum(r.cost_usd for r in rows)
        answered = data["cost_usd"] + simple["cost_usd"]
        answered += results["results"][0]["data"]["cost_usd"]
        assert total == pytest.approx(answered)

        usage = (await api.get("/api/v1/models/usage", timeframe="1h")).json()["data"]
        assert usage["totals"]["requests"] == 4
        assert usage["totals"]["total_cost_usd"] == pytest.approx(total)
        by_model = {u["model"]: u for u in usage["usage"]}
        assert by_model["fail-500"]["errors"] == 1
        assert by_model["llama-test"]["total_tokens"] == sum(
            r.prompt_tokens + r.completion_tokens for r in rows if r.model == "llama-test"
        )
        by_user = (await api.get("/api/v1/models/usage", group_by="user")).json()["data"]
        assert [u["user_id"] for u in by_user["usage"]] == [rows[0].user_id]
        by_provider = (await api.get("/api/v1/models/usage", group_by="provider")).json()["data"]
        assert [u["provider"] for u in by_provider["usage"]] == ["ollama"]

        costs = (await api.http.get("/api/analytics/costs", headers=api.headers)).json()
        assert costs["current_month"]["total_spent"] == pytest.approx(total, abs=1e-6)
        assert sum(day["requests"] for day in costs["daily_usage"]) == 4
        assert set(costs["cost_breakdown"]) == {"llama-test", "fail-500"}
        bad = await api.get("/api/v1/models/usage", timeframe="2y")
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "VALIDATION_ERROR"
        # The other shapes a batch client sends: a bare list, and messages with defaults.
        for body in (
            ["one", {"message": "two"}],
            {"messages": ["one", "two"], "model": "llama-test", "max_tokens": 9},
        ):
            also = await api.post("/api/v1/chat/batch", body)
            assert also.status_code == 200, also.text
            answers = [r["data"]["response"] for r in also.json()["data"]["results"]]
            assert answers == ["Echo: one", "Echo: two"]  # fmt: skip


async def test_sse_framing_of_both_stream_shapes(
    settings: Settings, fake_ollama: FakeProvider
) -> None:
    configured = model_settings(settings, {"ollama": ollama_config(fake_ollama)})
    async with model_api(configured) as api:
        zentoria = await api.post("/api/v1/ai/chat", ask("tell me", stream=True))
        assert zentoria.status_code == 200
        assert zentoria.headers["content-type"].startswith("text/event-stream")
        events = sse_events(zentoria.text)
        assert "".join(e["delta"] for e in events[:-1]) == "Echo: tell me"
        assert all(set(e) == {"delta"} for e in events[:-1])
        assert events[-1]["done"] is True and events[-1]["model"] == "llama-test"
        assert events[-1]["usage"]["completion_tokens"] == 3

        sutazai = await api.post("/api/v1/chat/stream", {"message": "Once upon"})
        events = sse_events(sutazai.text)
        assert [e["token"] for e in events[:-1]] == ["Echo:", " Once", " upon"]
        assert all(e["finish"] is False for e in events[:-1])
        assert events[-1]["finish"] is True and events[-1]["tokens_used"] > 0

        rows = await ledger(configured, api.tenant.tenant_id)
        assert len(rows) == 2 and all(r.success for r in rows)
        assert fake_ollama.streams_completed == 2


async def test_validation_answers_422_envelopes(
    settings: Settings, fake_ollama: FakeProvider
) -> None:
    configured = model_settings(
        settings, {"ollama": ollama_config(fake_ollama)}, model_max_tokens=1000
    )
    async with model_api(configured) as api:
        cases = [
            ("/api/v1/ai/chat", ask("")),
            ("/api/v1/ai/chat", ask("   ")),
            ("/api/v1/ai/chat", {"messages": []}),
            ("/api/v1/ai/chat", {"messages": [{"role": "system", "content": "only"}]}),
            ("/api/v1/ai/chat", ask(temperature=2.5)),
            ("/api/v1/ai/chat", ask(max_tokens=0)),
            ("/api/v1/ai/chat", ask(max_tokens=5000)),
            ("/api/v1/ai/chat", {"messages": [{"role": "wizard", "content": "x"}]}),
            ("/api/v1/chat", {"message": ""}),
            ("/api/v1/chat", {"message": "  \n "}),
            ("/api/v1/chat/stream", {"message": "hi", "temperature": -1}),
        ]
        for path, body in cases:
            response = await api.post(path, body)
            assert response.status_code == 422, (path, body, response.text)
            assert response.json()["error"]["code"] == "VALIDATION_ERROR"
        assert fake_ollama.requests == []


@pytest.mark.parametrize(
    ("model", "status", "code"),
    [
        ("fail-429", 429, "RATE_LIMIT_EXCEEDED"),
        ("fail-500", 502, "MODEL_API_ERROR"),
        ("fail-malformed", 502, "MODEL_API_ERROR"),
        ("fail-hang", 504, "GATEWAY_TIMEOUT"),
        ("fail-404", 404, "MODEL_NOT_AVAILABLE"),
    ],
)
async def test_upstream_failures_answer_their_envelope(
    settings: Settings, fake_ollama: FakeProvider, model: str, status: int, code: str
) -> None:
    configured = model_settings(
        settings, {"ollama": ollama_config(fake_ollama)}, provider_timeout_seconds=0.5
    )
    async with model_api(configured) as api:
        for stream in (False, True):
            response = await api.post("/api/v1/ai/chat", ask(model=model, stream=stream))
            assert response.status_code == status, response.text
            assert response.json()["error"]["code"] == code
        if status == 429:
            assert response.headers["retry-after"] == "7"
        rows = await ledger(configured, api.tenant.tenant_id)
        if model == "fail-404":  # the provider does not list it: refused before any call
            assert rows == [] and "/api/chat" not in fake_ollama.paths()
            assert response.json()["error"]["details"]["model"] == "fail-404"
        else:
            assert [(r.success, r.error_code) for r in rows] == [(False, code)] * 2


async def test_unreachable_provider_is_503(settings: Settings) -> None:
    gone = {"kind": "ollama", "base_url": f"http://127.0.0.1:{free_port()}", "models": ["m"]}
    async with model_api(model_settings(settings, {"gone": gone})) as api:
        response = await api.post("/api/v1/chat", {"message": "hi"})
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "SERVICE_UNAVAILABLE"


async def test_local_provider_answers_and_says_what_it_is(settings: Settings) -> None:
    async with model_api(model_settings(settings, {})) as api:
        # A model that is named and not available is an error naming it, on every seed.
        for path, body in [
            ("/api/v1/ai/chat", ask("Hello!", model="llama3.2:latest")),
            ("/api/v1/ai/chat", ask("Hello!", model="totally-bogus-model")),
            ("/api/v1/chat", {"message": "Hello!", "model": "tinyllama"}),
        ]:
            refused = await api.post(path, body)
            assert refused.status_code == 404, refused.text
            error = refused.json()["error"]
            assert error["code"] == "MODEL_NOT_AVAILABLE"
            assert body.get("model") in error["message"]
        info = await api.get("/api/v1/models/made-up-model/info")
        assert info.status_code == 404
        embedded = await api.post(
            "/api/v1/ai/embeddings", {"input": "hi", "model": "nomic-embed-text"}
        )
        assert embedded.status_code == 404 and "nomic-embed-text" in embedded.text
        # No model named: the default, which here is the local extractive one.
        response = await api.post("/api/v1/ai/chat", ask("Hello!"))
        data = response.json()["data"]
        assert data["model"] == EXTRACTIVE_MODEL and data["provider"] == "local"
        assert "extractive" in data["choices"][0]["message"]["content"]
        streamed = sse_events((await api.post("/api/v1/ai/chat", ask(stream=True))).text)
        assert streamed[-1]["model"] == EXTRACTIVE_MODEL
        listed = (await api.get("/api/v1/models")).json()["data"]
        assert listed["default_model"] == EXTRACTIVE_MODEL

        passage = (
            "The warehouse opens at eight. Paris is the capital of France. "
            "Invoices are due in thirty days."
        )
        quoted = await api.post(
            "/api/v1/ai/chat",
            {
                "messages": [
                    {"role": "system", "content": passage},
                    {"role": "user", "content": "What is the capital of France?"},
                ]
            },
        )
        answer = quoted.json()["data"]["choices"][0]["message"]["content"]
        assert "Paris is the capital of France." in answer
        rows = await ledger(api.settings, api.tenant.tenant_id)
        assert {r.provider for r in rows} == {"local"} and all(r.cost_usd == 0 for r in rows)


async def test_a_hard_budget_refuses_calls(settings: Settings, fake_ollama: FakeProvider) -> None:
    configured = model_settings(settings, {"ollama": ollama_config(fake_ollama)})
    async with model_api(configured) as api:
        forbidden = await api.http.put(
            "/api/v1/models/budget", json={"monthly_limit_usd": 1.0}, headers=api.headers
        )
        assert forbidden.status_code == 403
        admin = {"X-API-Key": await tenant_admin_key(configured, api.tenant.tenant_id)}
        set_budget = await api.http.put(
            "/api/v1/models/budget",
            json={"monthly_limit_usd": 0.0001, "hard_limit": True},
            headers=admin,
        )
        assert set_budget.status_code == 200, set_budget.text
        assert set_budget.json()["data"]["monthly_limit_usd"] == 0.0001

        # 512 expected completion tokens at $0.002/1k would pass the limit.
        refused = await api.post("/api/v1/ai/chat", ask(model="llama-test"))
        assert refused.status_code == 402
        assert refused.json()["error"]["code"] == "INSUFFICIENT_CREDITS"
        assert "/api/chat" not in fake_ollama.paths()  # refused before the call
        small = await api.post("/api/v1/ai/chat", ask(model="llama-test", max_tokens=10))
        assert small.status_code == 200

        budget = (await api.get("/api/v1/models/budget")).json()["data"]
        assert budget["spent_this_month_usd"] == pytest.approx(
            small.json()["data"]["cost_usd"], abs=1e-6
        )
        costs = (await api.http.get("/api/analytics/costs", headers=api.headers)).json()
        assert costs["current_month"]["budget_limit"] == 0.0001
        assert costs["current_month"]["budget_used_percentage"] > 0
        lifted = await api.http.put(
            "/api/v1/models/budget", json={"monthly_limit_usd": None}, headers=admin
        )
        assert lifted.json()["data"]["monthly_limit_usd"] is None
        assert (await api.post("/api/v1/ai/chat", ask(model="llama-test"))).status_code == 200
    assert PRICES["llama-test"]["output"] == 0.002


@pytest.mark.parametrize("kind", ["ollama", "openai"])
async def test_an_error_mid_stream_ends_the_stream_with_an_error_event(
    settings: Settings, fake_ollama: FakeProvider, fake_openai: FakeProvider, kind: str
) -> None:
    from tests.models_support import openai_config

    config = ollama_config(fake_ollama) if kind == "ollama" else openai_config(fake_openai)
    configured = model_settings(settings, {"upstream": config})
    async with model_api(configured) as api:
        response = await api.post(
            "/api/v1/ai/chat", ask("hi", model="midstream-error", stream=True)
        )
        assert response.status_code == 200  # the stream had begun
        events = sse_events(response.text)
        assert "".join(e.get("delta", "") for e in events) == "Echo: hi"
        assert events[-1] == {
            "error": {"code": "MODEL_API_ERROR", "message": events[-1]["error"]["message"]},
            "done": True,
        }
        (row,) = await ledger(configured, api.tenant.tenant_id)
        assert (row.success, row.error_code) == (False, "MODEL_API_ERROR")
        breakers = (await api.get("/api/v1/health/circuit-breakers")).json()["data"]
        assert breakers["circuit_breakers"]["upstream"]["failure_count"] == 1
