"""A client that leaves mid-stream stops the upstream generation.

The API runs under uvicorn on a loopback port (the in-process ASGI transport
cannot disconnect), the fake provider streams tokens until its client goes
away, and the test hangs up after a few events.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from api.app import create_app
from engine.ai.streaming import CLIENT_DISCONNECTED
from engine.platform.settings import Settings
from tests.conftest import make_tenant
from tests.fake_providers import FakeProvider, serve_app
from tests.models_support import ledger, model_settings, ollama_config, openai_config

pytestmark = pytest.mark.asyncio
WAIT = 30.0  # a bound so a broken build fails instead of hanging; never a performance limit


@pytest.mark.parametrize("kind", ["ollama", "openai"])
async def test_client_disconnect_closes_the_upstream_stream(
    settings: Settings, fake_ollama: FakeProvider, fake_openai: FakeProvider, kind: str
) -> None:
    fake = fake_ollama if kind == "ollama" else fake_openai
    config = ollama_config(fake) if kind == "ollama" else openai_config(fake)
    configured = model_settings(settings, {"upstream": config})
    tenant = await make_tenant(configured, "stream")
    async with (
        serve_app(create_app(configured), lifespan="on") as url,
        httpx.AsyncClient(base_url=url, headers={"X-API-Key": tenant.key}, timeout=WAIT) as client,
    ):
        body = {"messages": [{"role": "user", "content": "go on"}], "model": "endless"}
        async with client.stream("POST", "/api/v1/ai/chat", json={**body, "stream": True}) as r:
            assert r.status_code == 200
            events = 0
            async for line in r.aiter_lines():
                if line.startswith("data: "):
                    assert '"delta"' in line
                    events += 1
                if events == 3:
                    break  # hang up: leaving the block closes the connection
        await asyncio.wait_for(fake.closed_early.wait(), WAIT)
        assert fake.streams_closed_early == 1 and fake.streams_completed == 0

        async def disconnect_recorded() -> None:
            while True:
                if await ledger(configured, tenant.tenant_id):
                    return
                await asyncio.sleep(0.05)

        await asyncio.wait_for(disconnect_recorded(), WAIT)
        (row,) = await ledger(configured, tenant.tenant_id)
        assert (row.success, row.error_code, row.model) == (False, CLIENT_DISCONNECTED, "endless")
        assert row.completion_tokens > 0
