"""Helpers the event tests share: a stack whose tenant may reach one loopback
receiver, registering a webhook through the API, and emitting events the way
the engine does (in a transaction, with the doorbell installed)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from engine.db.connection import create_engine, create_sessionmaker, transaction
from engine.db.tables import Event, Webhook, WebhookDelivery
from engine.events import doorbell, outbox
from engine.events.catalog import EventType
from engine.events.doorbell import Doorbell
from engine.platform.settings import Settings
from tests.conftest import DocStack, worker_stack
from tests.events.receiver import Receiver

FAST_RETRIES = [0, 0.3, 0.6, 1.0, 1.5, 2.0]


@asynccontextmanager
async def event_stack(
    settings: Settings,
    temporal_env: WorkflowEnvironment,
    receiver: Receiver,
    **overrides: Any,
) -> AsyncIterator[DocStack]:
    """API and worker; the tenant may reach ``receiver`` (that port only)."""
    values: dict[str, Any] = {
        "tenant_egress_allowed_hosts": [f"127.0.0.1:{receiver.port}"],
        "webhook_retry_schedule_seconds": FAST_RETRIES,
        "webhook_retry_jitter": 0.1,
        "webhook_timeout_seconds": 3.0,
        "event_poll_seconds": 1.0,
    }
    values.update(overrides)
    async with worker_stack(settings.model_copy(update=values), temporal_env) as stack:
        yield stack


async def register(
    stack: DocStack,
    receiver: Receiver,
    events: list[str],
    *,
    secret: str = "your_webhook_secret",
    path: str = "/hook",
) -> dict[str, Any]:
    response = await stack.http.post(
        "/api/v1/webhooks",
        headers=stack.headers,
        json={"url": receiver.url + path, "events": events, "secret": secret},
    )
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    receiver.secret, receiver.signing_secret = secret, data["signing_secret"]
    return data


async def emit_events(
    settings: Settings,
    client: Any,
    tenant_id: str,
    count: int,
    event_type: EventType = EventType.AI_RESPONSE,
    *,
    per_transaction: int = 100,
) -> list[str]:
    """Record ``count`` events as the engine does (doorbell included); their ids."""
    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)
    bell = Doorbell(client, settings)
    doorbell.install(sessions, bell)
    ids: list[str] = []
    try:
        for start in range(0, count, per_transaction):
            async with transaction(sessions) as session:
                for n in range(start, min(count, start + per_transaction)):
                    data = {"query": f"q{n}", "answer": f"a{n}", "model": "local", "n": n}
                    event_id = await outbox.emit(session, tenant_id, event_type, data)
                    assert event_id is not None
                    ids.append(event_id)
    finally:
        # The ring is a task of this loop: wait for it, or it may be collected
        # with the doorbell once this returns (and the events wait for a poll).
        await bell.close()
        await engine.dispose()
    return ids


async def rows(settings: Settings, model: Any, *where: Any) -> list[Any]:
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            return list(await session.scalars(select(model).where(*where)))
    finally:
        await engine.dispose()


async def webhook_row(settings: Settings, webhook_id: str) -> Webhook:
    found = await rows(settings, Webhook, Webhook.id == webhook_id)
    return found[0]


async def deliveries(settings: Settings, webhook_id: str) -> list[WebhookDelivery]:
    return await rows(settings, WebhookDelivery, WebhookDelivery.webhook_id == webhook_id)


async def events_of(settings: Settings, tenant_id: str, event_type: str) -> list[Event]:
    return await rows(settings, Event, Event.tenant_id == tenant_id, Event.type == event_type)


async def deliveries_api(stack: DocStack, webhook_id: str) -> list[dict[str, Any]]:
    response = await stack.http.get(
        f"/api/v1/webhooks/{webhook_id}/deliveries", headers=stack.headers
    )
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["data"]["deliveries"]
    return found


def verified(receiver: Receiver) -> bool:
    return all(a.hex_ok and a.standard_ok for a in receiver.arrivals)
