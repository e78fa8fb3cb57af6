"""Draining the outbox (the dispatcher workflow's one activity does this).

One activity watches the outbox for ``event_watch_seconds``: a round at once
while a batch comes back full, otherwise one indexed look every
``event_check_seconds`` and a round when something waits. So a busy stream of
events costs Temporal nothing per event (no signal, no activity per round),
and the doorbell only makes sure the dispatcher runs.

Each round has two steps, each safe to repeat after a crash:

1. **Sequence**: new outbox rows get their stream position ``seq`` in the
   order the dispatcher sees them. Only this one dispatcher writes ``seq``, so
   positions grow in commit order and a stream reader resuming after position N
   never misses a row that committed late.
2. **Hand on**: for each sequenced row not yet dispatched, start one
   ``WebhookDeliveryWorkflow`` per subscribed active webhook (its id is
   ``hook-{event_id}-{webhook_id}`` and may run only once, so a repeat starts
   nothing), publish the event to Redis for the API replicas' streams, then
   mark the row dispatched.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from redis.asyncio import Redis
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError

from engine.db.connection import transaction
from engine.db.tables import Event, Webhook
from engine.events.catalog import ALL, EventType, Published, stream_channel
from engine.platform.runs import RunOptions, start_run
from engine.platform.settings import Settings
from workflows.event_payloads import DeliveryInput
from workflows.webhook_delivery import WebhookDeliveryWorkflow, delivery_id

STARTS_AT_ONCE = 32


@dataclass(frozen=True)
class Dispatched:
    sequenced: int
    dispatched: int
    deliveries: int
    more: bool

    def then(self, later: Dispatched) -> Dispatched:
        """This round's counts and a later one's; ``more`` is the later one's."""
        return Dispatched(
            sequenced=self.sequenced + later.sequenced,
            dispatched=self.dispatched + later.dispatched,
            deliveries=self.deliveries + later.deliveries,
            more=later.more,
        )


def subscribed(hook: Webhook, event: Event) -> bool:
    if event.created_at < hook.created_at:
        # It happened before the subscription existed (a dispatcher running behind
        # must not hand a new webhook, or a new A2A push config, older news).
        return False
    if event.type == EventType.WEBHOOK_TEST:
        return (event.data or {}).get("webhook_id") == hook.id
    return event.type in hook.events or ALL in hook.events


def published(event: Event) -> Published:
    if event.seq is None:
        raise ValueError(f"event {event.id} has no stream position yet")
    return Published(
        seq=event.seq,
        id=event.id,
        tenant_id=event.tenant_id,
        type=event.type,
        subject=event.subject,
        timestamp=event.created_at,
        data=dict(event.data or {}),
    )


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        client: Client,
        redis: Redis | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.client = client
        self.redis = redis

    async def watch(
        self, limit: int, seconds: float, every: float, stop: asyncio.Event
    ) -> Dispatched:
        """Rounds for ``seconds`` (or until ``stop``): the next at once while a
        batch came back full, else once a look every ``every`` seconds finds an
        event waiting. Returns the counts of all rounds; ``more`` when time ran
        out on a full batch."""
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        total = await self.run(limit)
        while not stop.is_set() and loop.time() < until:
            if not total.more:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), every)
                if stop.is_set() or not await self.waiting():
                    continue
            total = total.then(await self.run(limit))
        return total

    async def waiting(self) -> bool:
        """Whether an event waits for its position or its hand-on (one indexed look)."""
        async with self.sessions() as session:
            found = await session.scalar(
                select(Event.id).where(Event.dispatched_at.is_(None)).limit(1)
            )
        return found is not None

    async def run(self, limit: int) -> Dispatched:
        sequenced = await self._sequence(limit)
        async with self.sessions() as session:
            events = list(
                await session.scalars(
                    select(Event)
                    .where(Event.dispatched_at.is_(None), Event.seq.is_not(None))
                    .order_by(Event.seq)
                    .limit(limit)
                )
            )
            tenants = {event.tenant_id for event in events}
            hooks = (
                list(
                    await session.scalars(
                        select(Webhook).where(
                            Webhook.tenant_id.in_(tenants), Webhook.status == "active"
                        )
                    )
                )
                if tenants
                else []
            )
        pairs = [
            (event, hook)
            for event in events
            for hook in hooks
            if hook.tenant_id == event.tenant_id and subscribed(hook, event)
        ]
        gate = asyncio.Semaphore(STARTS_AT_ONCE)

        async def start(event: Event, hook: Webhook) -> None:
            async with gate:
                await self._start_delivery(event, hook)

        await asyncio.gather(*(start(event, hook) for event, hook in pairs))
        await self._publish(events)
        if events:
            async with transaction(self.sessions) as session:
                await session.execute(
                    update(Event)
                    .where(Event.id.in_([event.id for event in events]))
                    .values(dispatched_at=datetime.now(UTC))
                )
        return Dispatched(
            sequenced=sequenced,
            dispatched=len(events),
            deliveries=len(pairs),
            more=sequenced >= limit or len(events) >= limit,
        )

    async def _sequence(self, limit: int) -> int:
        async with transaction(self.sessions) as session:
            fresh = list(
                await session.scalars(
                    select(Event)
                    .where(Event.seq.is_(None))
                    .order_by(Event.created_at, Event.id)
                    .limit(limit)
                )
            )
            if not fresh:
                return 0
            top = await session.scalar(select(func.max(Event.seq))) or 0
            for offset, event in enumerate(fresh, start=1):
                event.seq = top + offset
            return len(fresh)

    async def _start_delivery(self, event: Event, hook: Webhook) -> None:
        settings = self.settings
        # A repeated round finds the run started already: nothing more to do.
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await start_run(
                self.client,
                settings,
                WebhookDeliveryWorkflow.run,
                DeliveryInput(
                    tenant_id=event.tenant_id,
                    event_id=event.id,
                    webhook_id=hook.id,
                    schedule_seconds=settings.webhook_retry_schedule_seconds,
                    jitter=settings.webhook_retry_jitter,
                    attempt_timeout_seconds=settings.webhook_timeout_seconds + 120,
                ),
                RunOptions(
                    workflow_id=delivery_id(event.id, hook.id),
                    kind="webhook",
                    tenant_id=event.tenant_id,
                    started_by="system",
                    summary=f"{event.type} to {urlsplit(hook.url).netloc}",
                    once=True,
                ),
            )

    async def _publish(self, events: list[Event]) -> None:
        if self.redis is None or not events:
            return
        channel = stream_channel(self.settings.task_queue_prefix)
        async with self.redis.pipeline(transaction=False) as pipe:
            for event in events:
                pipe.publish(channel, json.dumps(published(event).to_wire()))
            await pipe.execute()
