"""Helpers shared by the model tests: an API wired to fake providers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select

from api.app import create_app
from engine.ai.ledger import flush_all
from engine.db.connection import create_engine, create_sessionmaker
from engine.db.tables import UsageRecord
from engine.platform.settings import Settings
from tests.conftest import TenantFixture, api_client, make_tenant
from tests.fake_providers import FakeProvider

# Prices in US dollars per 1,000 tokens.
PRICES = {
    "llama-test": {"input": 0.001, "output": 0.002},
    "gpt-fake": {"input": 0.01, "output": 0.03},
    "gpt-fake-mini": {"input": 0.0005, "output": 0.0015},
}


def ollama_config(fake: FakeProvider, **extra: Any) -> dict[str, Any]:
    return {"kind": "ollama", "base_url": fake.url, **extra}


def openai_config(fake: FakeProvider, **extra: Any) -> dict[str, Any]:
    return {"kind": "openai", "base_url": f"{fake.url}/v1", "api_key": "sk-fake", **extra}


def model_settings(settings: Settings, providers: dict[str, Any], **extra: Any) -> Settings:
    """The test's settings with these providers, prices, and no rate limits."""
    update: dict[str, Any] = {
        "providers": providers,
        "model_prices": PRICES,
        "rate_limits_enabled": False,
        "request_history_enabled": False,
        **extra,
    }
    return settings.model_copy(update=update)


@dataclass
class ModelApi:
    http: httpx.AsyncClient
    settings: Settings
    tenant: TenantFixture
    headers: dict[str, str]

    async def post(self, path: str, body: Any) -> httpx.Response:
        return await self.http.post(path, json=body, headers=self.headers)

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.http.get(path, params=params, headers=self.headers)


@asynccontextmanager
async def model_api(settings: Settings, name: str = "models") -> AsyncIterator[ModelApi]:
    tenant = await make_tenant(settings, name)
    async with api_client(create_app(settings)) as http:
        yield ModelApi(http, settings, tenant, {"X-API-Key": tenant.key})


async def ledger(settings: Settings, tenant_id: str) -> list[UsageRecord]:
    """The tenant's ledger rows, once the API in this process has written its own."""
    await flush_all()
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            rows = await session.scalars(
                select(UsageRecord)
                .where(UsageRecord.tenant_id == tenant_id)
                .order_by(UsageRecord.created_at)
            )
            return list(rows.all())
    finally:
        await engine.dispose()


def sse_events(body: str) -> list[dict[str, Any]]:
    """Parse an SSE body; every event must be one ``data:`` line and a blank line."""
    import json

    events = []
    assert body.endswith("\n\n"), body[-50:]
    for block in body.split("\n\n")[:-1]:
        assert block.startswith("data: ") and "\n" not in block, block
        events.append(json.loads(block[len("data: ") :]))
    return events


async def tenant_admin_key(settings: Settings, tenant_id: str) -> str:
    """An API key of a tenant administrator (the ``admin`` scope, inside that tenant)."""
    import uuid

    from engine.db.connection import transaction
    from engine.db.tables import Tenant
    from engine.identity import accounts

    engine = create_engine(settings)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            tenant = await session.get(Tenant, tenant_id)
            assert tenant is not None
            email = f"admin-{uuid.uuid4().hex[:8]}@example.test"
            user = await accounts.create_user(session, tenant, email, "pw-123456789", role="admin")
            issued = await accounts.create_api_key(session, user, "tenant admin", ["admin"])
            return issued.secret
    finally:
        await engine.dispose()
