"""Prometheus ``/metrics`` and sutazai's monitoring routes, through the real app.

Counters are per process and shared by every app a test builds, so each check
reads a series before and after and compares the two.
"""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from engine.platform.settings import Settings
from engine.platform.temporal import ui_link
from tests.api.test_response_schemas import Checked, Schemas
from tests.conftest import api_client, make_settings, make_tenant, worker_stack
from tests.models_support import model_settings
from tests.pipelines.support import SQLITE_ONLY

pytestmark = SQLITE_ONLY
METRICS_TOKEN = "scrape-" + "x" * 40


def series(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels``."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def configured_limits(settings: Settings) -> dict[str, int]:
    return dict(settings.rate_limits)


async def scrape(http: httpx.AsyncClient) -> str:
    response = await http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def test_metrics_refuse_callers_without_the_token_or_a_global_admin(
    settings: Settings, admin_key: str
) -> None:
    configured = settings.model_copy(update={"metrics_token": METRICS_TOKEN})
    tenant = await make_tenant(configured, "metrics")
    async with api_client(create_app(configured)) as http:
        for path in ("/metrics", "/api/v1/metrics"):
            anonymous = await http.get(path)
            assert anonymous.status_code == 401
            assert anonymous.json()["error"]["code"] == "UNAUTHORIZED"
            wrong = await http.get(path, headers={"Authorization": "Bearer not-the-token"})
            assert wrong.status_code == 401
            tenant_user = await http.get(path, headers={"X-API-Key": tenant.key})
            assert tenant_user.status_code == 403
            assert (await http.get(path, headers={"X-API-Key": admin_key})).status_code == 200
            token = await http.get(path, headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
            assert token.status_code == 200
        assert "weft_http_requests_total" in await scrape(http)
    # Without a configured token, a bearer token is only ever a credential.
    async with api_client(create_app(settings)) as http:
        unset = await http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert unset.status_code == 401


async def test_requests_and_refusals_are_counted_by_route_template(settings: Settings) -> None:
    configured = settings.model_copy(
        update={
            "metrics_token": METRICS_TOKEN,
            "rate_limits": {**configured_limits(settings), "login": 2},
        }
    )
    tenant = await make_tenant(configured, "counted")
    async with api_client(create_app(configured)) as http:
        before = await scrape(http)
        for _ in range(3):
            assert (await http.get("/health")).status_code == 200
        missing = await http.get(
            "/api/v1/workflows/wf_missing_1", headers={"X-API-Key": tenant.key}
        )
        assert missing.status_code == 404
        answers = [
            (await http.post("/api/v1/auth/login", json={"email": "a@b.test", "password": "x"}))
            for _ in range(3)
        ]
        assert answers[-1].status_code == 429
        after = await scrape(http)

    def grew(name: str, **labels: str) -> float:
        return series(after, name, **labels) - series(before, name, **labels)

    assert grew("weft_http_requests_total", method="GET", route="/health", status="200") == 3
    # The template, never the raw path with its id.
    template = "/api/v1/workflows/{workflow_id}"
    assert grew("weft_http_requests_total", route=template, status="404") == 1
    assert series(after, "weft_http_requests_total", route="/api/v1/workflows/wf_missing_1") == 0
    assert grew("weft_http_request_duration_seconds_count", route="/health", method="GET") == 3
    assert grew("weft_http_requests_total", route="/api/v1/auth/login", status="429") >= 1
    assert grew("weft_rate_limited_requests_total", group="login") >= 1


async def test_model_calls_count_tokens_by_provider_and_model(settings: Settings) -> None:
    configured = model_settings(settings, {}, metrics_token=METRICS_TOKEN)
    tenant = await make_tenant(configured, "tokens")
    async with api_client(create_app(configured)) as http:
        before = await scrape(http)
        chat = await http.post(
            "/api/v1/ai/chat",
            json={
                "messages": [
                    {"role": "system", "content": "Paris is the capital of France."},
                    {"role": "user", "content": "What is the capital of France?"},
                ]
            },
            headers={"X-API-Key": tenant.key},
        )
        assert chat.status_code == 200, chat.text
        data = chat.json()["data"]
        after = await scrape(http)
    labels = {"provider": "local", "model": data["model"], "kind": "chat"}
    calls = series(after, "weft_model_calls_total", **labels, outcome="ok")
    assert calls - series(before, "weft_model_calls_total", **labels, outcome="ok") == 1
    prompt = series(after, "weft_model_tokens_total", **labels, direction="prompt") - series(
        before, "weft_model_tokens_total", **labels, direction="prompt"
    )
    assert prompt == data["usage"]["prompt_tokens"] > 0
    assert "tenant" not in after.split("weft_model_tokens_total", 1)[1].split("\n", 1)[0]


async def test_sutazai_metrics_status_and_system_routes(settings: Settings, admin_key: str) -> None:
    configured = settings.model_copy(
        update={
            "metrics_token": METRICS_TOKEN,
            "jwt_secret": "j" * 40,
            "providers": {"p": {"kind": "openai", "base_url": "http://h", "api_key": "sk-1"}},
        }
    )
    tenant = await make_tenant(configured, "sutazai")
    app = create_app(configured)
    admin = {"X-API-Key": admin_key}
    async with api_client(app) as http:
        api = Checked(http, Schemas(app))
        await http.get("/health")
        metrics = (await api.call("GET", "/api/v1/metrics", headers=admin))["data"]
        performance = metrics["performance_metrics"]
        assert performance["total_requests"] >= 1 and 0 <= performance["error_rate"] <= 1
        assert performance["avg_response_time_ms"] > 0
        assert set(metrics["system_resources"]) == {
            "cpu_percent",
            "memory_percent",
            "disk_usage_percent",
        }

        status = (await api.call("GET", "/api/v1/status", headers={"X-API-Key": tenant.key}))[
            "data"
        ]
        assert status["services"]["database"] == "healthy"
        assert status["temporal_ui_url"] == "http://127.0.0.1:8233"
        assert (await http.get("/api/v1/status")).status_code == 401

        info = (await api.call("GET", "/api/v1/system/info", headers=admin))["data"]
        assert info["temporal"]["namespace"] == configured.temporal_namespace
        assert "weft-io" in info["temporal"]["task_queues"]
        config = (await api.call("GET", "/api/v1/system/config", headers=admin))["data"]
        shown = config["settings"]
        assert shown["jwt_secret"] == "***" and "j" * 40 not in str(config)
        assert shown["providers"]["p"]["api_key"] == "***"
        assert shown["access_token_ttl_seconds"] == configured.access_token_ttl_seconds
        reload = (await api.call("POST", "/api/v1/system/reload", headers=admin))["data"]
        assert reload["reloaded"] == ["model_providers"]
        for path in ("/api/v1/system/info", "/api/v1/system/config"):
            assert (await http.get(path, headers={"X-API-Key": tenant.key})).status_code == 403


async def test_run_answers_link_to_the_temporal_web_ui(
    settings: Settings, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    async with worker_stack(settings, temporal_env, "links") as stack:
        upload = await stack.http.post(
            "/api/v1/mcp/upload",
            files={"file": ("note.txt", b"Copper kettles are counted weekly.", "text/plain")},
            headers=stack.headers,
        )
        assert upload.status_code == 201, upload.text
        data = upload.json()["data"]
        run_id = data["execution_id"]
        expected = f"http://127.0.0.1:8233/namespaces/default/workflows/{run_id}"
        assert data["temporal_ui_url"] == expected
        run = await stack.http.get(f"/api/v1/mcp/workflow/{run_id}", headers=stack.headers)
        assert run.status_code == 200, run.text
        assert run.json()["data"]["temporal_ui_url"] == expected
        kept = await stack.http.post(
            "/api/v1/mcp/upload",
            files={"file": ("other.txt", b"No run for this one.", "text/plain")},
            data={"process": "false"},
            headers=stack.headers,
        )
        assert "temporal_ui_url" not in kept.json()["data"]
    production = make_settings(
        tmp_path,
        env="production",
        jwt_secret="s" * 40,
        encryption_keys=["k" * 40],
        database_url="sqlite:///x.db",
    )
    assert ui_link(production, "doc-1") is None
    linked = production.model_copy(
        update={"temporal_ui_url": "https://ui.example/", "temporal_namespace": "prod ns"}
    )
    assert ui_link(linked, "run-1") == "https://ui.example/namespaces/prod%20ns/workflows/run-1"
