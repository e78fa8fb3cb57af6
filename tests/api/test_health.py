"""Health reports what is really there: measured against live and dead parts."""

from __future__ import annotations

import pytest
from temporalio.client import Client

from api.app import create_app
from engine.platform.queues import ALL_QUEUES
from engine.platform.settings import Settings
from tests.conftest import IDLE_NAMESPACE, api_client, free_port

pytestmark = pytest.mark.asyncio


async def test_everything_healthy_with_a_worker_on_every_queue(
    settings: Settings, running_worker: Client, admin_key: str
) -> None:
    async with api_client(create_app(settings)) as http:
        summary = (await http.get("/health")).json()
        detailed = (
            await http.get("/api/v1/health/detailed", headers={"X-API-Key": admin_key})
        ).json()
        anonymous = (await http.get("/api/v1/health/detailed")).json()
        ready = await http.get("/api/ready")
    assert summary["status"] == "healthy"
    assert summary["version"] and summary["uptime"] >= 0 and summary["timestamp"].endswith("Z")
    assert summary["services"]["database"] == "healthy"
    assert summary["services"]["temporal"] == "healthy"
    assert summary["services"]["redis"] == "not_configured"
    assert summary["components"]["database"] == "healthy"
    for queue in ALL_QUEUES:
        assert summary["components"]["task_queues"][queue.value]["pollers"] >= 1
        assert detailed["task_queues"][queue.value]["status"] == "healthy"
        assert detailed["task_queues"][queue.value]["latency_ms"] >= 0
    assert detailed["services"]["database"]["backend"] in ("sqlite", "postgresql")
    assert detailed["services"]["temporal"]["latency_ms"] >= 0
    assert any(q.get("identities") for q in detailed["task_queues"].values())
    # Without credentials: the states, not who runs what or which versions.
    assert anonymous["status"] == "healthy"
    assert anonymous["services"]["temporal"]["status"] == "healthy"
    for check in (*anonymous["services"].values(), *anonymous["task_queues"].values()):
        assert not {"identities", "server_version", "namespace", "backend", "error"} & set(check)
    assert ready.status_code == 200 and ready.json()["ready"] is True


async def test_queues_without_workers_make_the_engine_degraded(
    settings: Settings, admin_key: str
) -> None:
    idle = settings.model_copy(update={"temporal_namespace": IDLE_NAMESPACE})
    async with api_client(create_app(idle)) as http:
        summary = (await http.get("/health")).json()
        detailed = (
            await http.get("/api/v1/health/detailed", headers={"X-API-Key": admin_key})
        ).json()
        ready = await http.get("/api/ready")
    assert summary["status"] == "degraded"
    assert summary["services"]["workers"] == "degraded"
    assert detailed["task_queues"]["weft-cpu"]["pollers"] == 0
    assert "no live worker" in detailed["task_queues"]["weft-cpu"]["error"]
    assert ready.status_code == 200  # readiness needs only the database and Temporal


async def test_unreachable_temporal_is_unhealthy_and_not_ready(settings: Settings) -> None:
    dead = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    async with api_client(create_app(dead)) as http:
        summary = (await http.get("/health")).json()
        ready = await http.get("/api/ready")
        partio = await http.get("/v1.0/health")
    assert summary["status"] == "unhealthy"
    assert summary["services"]["temporal"] == "unhealthy"
    assert ready.status_code == 503 and ready.json()["checks"]["temporal"]["error"]
    assert partio.json() == {"Status": "Unhealthy", "Version": summary["version"]}


async def test_unreachable_database_is_unhealthy_and_not_ready(settings: Settings) -> None:
    dead = settings.model_copy(
        update={"database_url": f"postgresql://127.0.0.1:{free_port()}/weft"}
    )
    async with api_client(create_app(dead)) as http:
        summary = (await http.get("/health")).json()
        ready = await http.get("/api/ready")
    assert summary["status"] == "unhealthy"
    assert summary["services"]["database"] == "unhealthy"
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"]["status"] == "unhealthy"


async def test_redis_up_is_healthy_and_redis_down_degrades(
    settings: Settings, running_worker: Client, redis_url: str
) -> None:
    up = settings.model_copy(update={"redis_url": redis_url})
    down = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    async with api_client(create_app(up)) as http:
        healthy = (await http.get("/health")).json()
    async with api_client(create_app(down)) as http:
        degraded = (await http.get("/health")).json()
        ready = await http.get("/api/ready")
    assert healthy["services"]["redis"] == "healthy" and healthy["status"] == "healthy"
    assert degraded["services"]["redis"] == "unhealthy" and degraded["status"] == "degraded"
    assert ready.status_code == 200


async def test_partio_root_answers_head_and_get_without_auth(
    settings: Settings, running_worker: Client
) -> None:
    async with api_client(create_app(settings)) as http:
        head = await http.head("/")
        root = await http.get("/")
    assert head.status_code == 200
    assert root.json()["Status"] == "Healthy"
