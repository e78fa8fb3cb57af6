"""Durability: a worker SIGKILLed in the middle of a pipeline; a new worker finishes
the run, completed steps are not repeated, and the step that was in flight is
delivered with the same Idempotency-Key, so the receiver applies it once."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from api.app import create_app
from engine.platform.settings import Settings
from tests.conftest import api_client, make_tenant
from tests.documents.test_durability import start_worker
from tests.fake_providers import serve_app
from tests.pipelines.support import emails

pytestmark = pytest.mark.asyncio


@dataclass
class Ledger:
    """A receiver that applies each Idempotency-Key once and counts every delivery."""

    url: str = ""
    deliveries: list[tuple[str, str]] = field(default_factory=list)  # (path, key)
    applied: dict[str, Any] = field(default_factory=dict)
    slow_arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def count(self, path: str) -> int:
        return sum(1 for p, _ in self.deliveries if p == path)


@asynccontextmanager
async def ledger_receiver() -> AsyncIterator[Ledger]:
    found = Ledger()

    async def record(request: Request) -> JSONResponse:
        key = request.headers.get("idempotency-key", "")
        found.deliveries.append((request.url.path, key))
        if request.url.path == "/slow" and found.count("/slow") == 1:
            found.slow_arrived.set()
            await asyncio.sleep(3600)  # the first delivery never answers: the worker dies
        found.applied.setdefault(key, await request.json())
        return JSONResponse({"applied": key})

    routes = [Route(path, record, methods=["POST"]) for path in ("/first", "/slow", "/last")]
    async with serve_app(Starlette(routes=routes)) as url:
        found.url = url
        yield found


async def test_a_killed_worker_resumes_the_run_and_each_side_effect_happens_once(
    settings: Settings, tmp_path: Path
) -> None:
    if "postgresql" in settings.database_url:
        pytest.skip("durability of the run is the same on both databases: SQLite covers it")
    async with ledger_receiver() as receiver:
        port = receiver.url.rsplit(":", 1)[1]
        isolated = settings.model_copy(
            update={
                "task_queue_prefix": f"k{uuid.uuid4().hex[:8]}-",
                "rate_limits_enabled": False,
                "tenant_egress_allowed_hosts": [f"127.0.0.1:{port}"],
            }
        )
        tenant = await make_tenant(isolated, "durable-pipelines")
        headers = {"X-API-Key": tenant.key}
        steps = [
            {"id": "first", "type": "api_call",
             "config": {"url": f"{receiver.url}/first", "method": "POST", "body": {"n": 1}}},
            {"id": "mail", "type": "email", "dependencies": ["first"],
             "config": {"to": "ops@example.com", "subject": "started"}},
            {"id": "slow", "type": "api_call", "dependencies": ["mail"],
             "config": {"url": f"{receiver.url}/slow", "method": "POST", "body": {"n": 2},
                        "timeout_seconds": 3000}},
            {"id": "last", "type": "api_call", "dependencies": ["slow"],
             "config": {"url": f"{receiver.url}/last", "method": "POST", "body": {"n": 3}}},
        ]  # fmt: skip
        log = tmp_path / "worker.log"
        env = {"WEFT_TENANT_EGRESS_ALLOWED_HOSTS": f"127.0.0.1:{port}"}
        worker = start_worker(isolated, log, extra_env=env)
        try:
            async with api_client(create_app(isolated)) as http:
                created = await http.post(
                    "/api/workflows", json={"name": "durable", "steps": steps}, headers=headers
                )
                assert created.status_code == 201, created.text
                started = await http.post(
                    f"/api/workflows/{created.json()['id']}/execute",
                    json={"input_data": {}},
                    headers=headers,
                )
                execution_id = started.json()["execution_id"]
                await asyncio.wait_for(receiver.slow_arrived.wait(), timeout=120)
                worker.send_signal(signal.SIGKILL)
                worker.wait()
                worker = start_worker(isolated, log, extra_env=env)  # picks the run up
                for _ in range(900):
                    body = await http.get(f"/api/executions/{execution_id}", headers=headers)
                    done = body.json()
                    if done["status"] in ("completed", "failed", "cancelled"):
                        break
                    await asyncio.sleep(0.2)
        finally:
            worker.kill()
            worker.wait()

    assert done["status"] == "completed", f"{done}\n{log.read_text()[-3000:]}"
    assert receiver.count("/first") == 1  # finished before the kill: never repeated
    assert receiver.count("/last") == 1
    assert len(await emails(isolated, tenant.tenant_id)) == 1
    # The step in flight was delivered again after the kill, with the same key.
    slow_keys = Counter(key for path, key in receiver.deliveries if path == "/slow")
    assert list(slow_keys.values()) == [2]
    assert list(slow_keys) == [f"{execution_id}:slow"]
    assert len(receiver.applied) == 3  # first, slow, last: each applied once
