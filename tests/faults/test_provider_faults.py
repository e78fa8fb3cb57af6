"""Provider faults: a loopback Ollama that fails about 30% of calls in a fixed
(seeded) pattern: 500, 429 with Retry-After, a 200 whose body is not JSON, and
a hang past the provider timeout. 100 pipeline runs with one ``ai_prompt`` step
(retried by the worker) each finish, or fail with a typed error code; the
ledger holds each call the provider answered (the billed calls) exactly once."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select
from starlette.responses import JSONResponse, Response
from temporalio.testing import WorkflowEnvironment

from engine.ai.ledger import flush_all
from engine.db.connection import create_engine, create_sessionmaker
from engine.db.tables import UsageRecord
from engine.platform.settings import Settings
from tests.conftest import worker_stack
from tests.fake_providers import FakeProvider, serve
from tests.pipelines.support import FINISHED, SQLITE_ONLY, create_workflow

pytestmark = [pytest.mark.faults, pytest.mark.asyncio, SQLITE_ONLY]

RUNS = 100
SEED = 1405
# About 30% of calls fail, each way as often as the others.
PATTERN_WEIGHTS = {"ok": 70, "500": 8, "429": 8, "malformed": 7, "hang": 7}


@dataclass
class FlakyProvider(FakeProvider):
    """Decides each chat call's fate from one seeded sequence."""

    rng: random.Random = field(default_factory=lambda: random.Random(SEED))
    fates: Counter[str] = field(default_factory=Counter)

    async def trouble(self, model: str | None) -> Response | None:
        if model is None:  # listing models: always fine
            return None
        fate = self.rng.choices(list(PATTERN_WEIGHTS), list(PATTERN_WEIGHTS.values()))[0]
        self.fates[fate] += 1
        if fate == "500":
            return JSONResponse({"error": "upstream exploded"}, 500)
        if fate == "429":
            return JSONResponse({"error": "slow down"}, 429, headers={"Retry-After": "1"})
        if fate == "malformed":
            return Response(b'{"message": {"content": "trunc', media_type="application/json")
        if fate == "hang":
            await self.release.wait()  # past the provider timeout: the client gives up
            return JSONResponse({"error": "released"}, 500)
        return None


async def ledger_rows(settings: Settings, tenant_id: str) -> list[UsageRecord]:
    await flush_all()  # the rows of calls this process's API answered
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            rows = await session.scalars(
                select(UsageRecord).where(UsageRecord.tenant_id == tenant_id)
            )
            return list(rows.all())
    finally:
        await engine.dispose()


async def test_flaky_provider_runs_end_typed_and_ledger_counts_each_billed_call_once(
    settings: Settings, temporal_env: WorkflowEnvironment
) -> None:
    async with serve(FlakyProvider("ollama")) as fake:
        configured = settings.model_copy(
            update={
                "providers": {"flaky": {"kind": "ollama", "base_url": fake.url}},
                "model_prices": {"llama-test": {"input": 0.001, "output": 0.002}},
                "provider_timeout_seconds": 2.0,  # a hang outlasts it; a slow answer does not
                # The breaker has its own tests; here every failure goes to the retry.
                "model_breaker_failure_threshold": 10_000,
                "request_history_enabled": False,
            }
        )
        async with worker_stack(configured, temporal_env, "flaky") as api:
            definition = {
                "name": "flaky",
                "steps": [
                    {"id": "ask", "type": "ai_prompt",
                     "config": {"prompt": "Say hello to {{n}}", "model": "llama-test"},
                     "retry": {"max_attempts": 4, "initial_interval_seconds": 0.2,
                               "backoff": 1.5}},
                ],
            }  # fmt: skip
            workflow_id = await create_workflow(api, definition)

            async def run(n: int) -> dict[str, Any]:
                for _ in range(10):
                    started = await api.http.post(
                        f"/api/workflows/{workflow_id}/execute",
                        json={"input_data": {"n": n}},
                        headers=api.headers,
                    )
                    if started.status_code != 503:
                        break
                    # 100 starts at once can hold SQLite's write lock past its
                    # timeout on a loaded machine: a client retries a 503 (a run
                    # it made anyway would show in the ledger check below).
                    await asyncio.sleep(float(started.headers.get("Retry-After", "1")))
                assert started.status_code == 202, started.text
                execution_id = started.json()["execution_id"]
                async with asyncio.timeout(240):
                    while True:
                        body = await api.http.get(
                            f"/api/v1/executions/{execution_id}", headers=api.headers
                        )
                        assert body.status_code == 200, body.text
                        data: dict[str, Any] = body.json()["data"]
                        if data["status"] in FINISHED:
                            return data
                        await asyncio.sleep(2)  # 100 pollers: gently

            results = await asyncio.gather(*(run(n) for n in range(RUNS)))
        billed = fake.fates["ok"]

    statuses = Counter(r["status"] for r in results)
    assert set(statuses) <= {"completed", "failed"}, statuses
    failed = [r for r in results if r["status"] == "failed"]
    codes = Counter(r["error_code"] for r in failed)
    # A failed run says why, with one of the engine's codes (never a class name).
    typed = {"RATE_LIMIT_EXCEEDED", "SERVICE_UNAVAILABLE", "MODEL_API_ERROR", "GATEWAY_TIMEOUT"}
    assert set(codes) <= typed, codes
    for r in failed:
        assert r["results"]["ask"]["error_code"] == r["error_code"], r
    assert sum(fake.fates.values()) > RUNS  # the faults were met and retried
    assert {"500", "429", "malformed", "hang"} <= set(fake.fates), fake.fates

    rows = await ledger_rows(configured, api.tenant.tenant_id)
    ok_rows = [row for row in rows if row.success]
    # Every answer the provider gave is billed once, and only those.
    assert len(ok_rows) == billed == statuses["completed"], (len(ok_rows), billed, statuses)
    per_run = Counter(row.workflow_id for row in ok_rows)
    assert set(per_run.values()) == {1}
    assert all(row.cost_usd > 0 for row in ok_rows)
