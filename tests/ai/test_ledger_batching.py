"""The API writes ledger rows in batches, and loses none of them."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from api.app import create_app
from engine.ai.ledger import LedgerEntry, LedgerWriter
from engine.db.connection import create_engine, create_sessionmaker
from engine.db.tables import Event, UsageRecord
from engine.platform.settings import Settings
from tests.conftest import api_client, make_tenant
from tests.fake_providers import FakeProvider
from tests.models_support import model_settings, ollama_config

pytestmark = pytest.mark.asyncio

CALLS = 40


async def rows(settings: Settings, table: type[UsageRecord] | type[Event], tenant_id: str) -> int:
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            query = select(func.count()).select_from(table).where(table.tenant_id == tenant_id)
            return int(await session.scalar(query) or 0)
    finally:
        await engine.dispose()


async def test_concurrent_calls_share_ledger_transactions_and_all_arrive(
    settings: Settings, fake_ollama: FakeProvider
) -> None:
    configured = model_settings(settings, {"local-ollama": ollama_config(fake_ollama)})
    tenant = await make_tenant(configured, "ledger")
    headers = {"X-API-Key": tenant.key}
    body = {"model": "llama-test", "messages": [{"role": "user", "content": "hi"}]}
    app = create_app(configured)
    async with api_client(app) as http:
        inserts = 0

        def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
            nonlocal inserts
            inserts += statement.lstrip().upper().startswith("INSERT INTO USAGE_RECORDS")

        engine = app.state.resources.engine.sync_engine
        event.listen(engine, "before_cursor_execute", count)
        answers = await asyncio.gather(
            *(http.post("/api/v1/ai/chat", json=body, headers=headers) for _ in range(CALLS))
        )
        assert all(a.status_code == 200 for a in answers), answers[0].text
        # The usage report of the same process already counts every call.
        usage = await http.get("/api/v1/models/usage", headers=headers)
        assert usage.status_code == 200, usage.text
        assert sum(g["requests"] for g in usage.json()["data"]["usage"]) == CALLS
        assert 1 <= inserts < CALLS  # batched: fewer statements than calls
        # Calls answered just before shutdown are written by it, not dropped.
        last = await asyncio.gather(
            *(http.post("/api/v1/ai/chat", json=body, headers=headers) for _ in range(5))
        )
        assert all(a.status_code == 200 for a in last)
    assert await rows(configured, UsageRecord, tenant.tenant_id) == CALLS + 5
    assert await rows(configured, Event, tenant.tenant_id) == CALLS + 5  # one ai.response each


def entry(tenant_id: str | None) -> LedgerEntry:
    return LedgerEntry(
        {"tenant_id": tenant_id, "kind": "chat", "provider": "p", "model": "m", "cost_usd": 0.01}
    )


async def test_a_row_the_database_refuses_is_dropped_and_the_rows_after_it_arrive(
    settings: Settings,
) -> None:
    engine = create_engine(settings)
    writer = LedgerWriter(create_sessionmaker(engine))
    try:
        for tenant_id in ("tnt_a", None, "tnt_a", "tnt_a"):  # no tenant: NOT NULL refuses it
            assert writer.add(entry(tenant_id))
        async with asyncio.timeout(30):  # before: retried the same batch for ever
            await writer.flush()
    finally:
        await writer.close()
        await engine.dispose()
    assert await rows(settings, UsageRecord, "tnt_a") == 3


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_flush_returns_while_the_database_is_locked_and_the_rows_arrive_after(
    settings: Settings,
) -> None:
    url = make_url(settings.resolved_database_url)
    locker = sqlite3.connect(str(url.database), isolation_level=None)
    engine = create_async_engine(url, connect_args={"timeout": 0.2})
    writer = LedgerWriter(create_sessionmaker(engine))
    try:
        locker.execute("BEGIN IMMEDIATE")  # another process holds the one write lock
        assert writer.add(entry("tnt_b"))
        async with asyncio.timeout(30):  # a usage report must not hang on it
            await writer.flush()
        counted = locker.execute("SELECT count(*) FROM usage_records WHERE tenant_id = 'tnt_b'")
        assert counted.fetchone() == (0,)
        locker.execute("ROLLBACK")
        async with asyncio.timeout(30):
            while await rows(settings, UsageRecord, "tnt_b") == 0:
                await writer.flush()
                await asyncio.sleep(0.1)
    finally:
        locker.close()
        await writer.close()
        await engine.dispose()
    assert await rows(settings, UsageRecord, "tnt_b") == 1
