"""SystemCheckWorkflow through the API, with a real worker on every queue."""

from __future__ import annotations

import httpx
import pytest
from temporalio.client import Client

from engine.db.connection import create_engine, create_sessionmaker, transaction
from engine.identity import accounts
from engine.platform.queues import ACTIVITY_QUEUES
from engine.platform.settings import Settings
from engine.platform.temporal import SA_KIND, SA_TENANT

pytestmark = pytest.mark.asyncio


async def test_check_runs_an_activity_on_every_queue_and_is_searchable(
    client: httpx.AsyncClient, admin_key: str, running_worker: Client
) -> None:
    response = await client.post("/api/v1/system/check", headers={"X-API-Key": admin_key})
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["workflow_queue"] == "weft-workflows"
    assert [answer["queue"] for answer in data["answers"]] == [q.value for q in ACTIVITY_QUEUES]

    handle = running_worker.get_workflow_handle(data["workflow_id"])
    described = await handle.describe()
    assert described.typed_search_attributes.get(SA_KIND) == "system_check"
    assert described.typed_search_attributes.get(SA_TENANT, "").startswith("ten_")


async def test_check_needs_the_admin_scope(
    client: httpx.AsyncClient, settings: Settings, admin_key: str
) -> None:
    engine = create_engine(settings)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            user = await accounts.find_user(session, accounts.FIRST_ADMIN_EMAIL)
            issued = await accounts.create_api_key(session, user, "reader", ["files:read"])
    finally:
        await engine.dispose()
    response = await client.post("/api/v1/system/check", headers={"X-API-Key": issued.secret})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "FORBIDDEN"
