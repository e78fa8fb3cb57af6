"""Event activities: draining the outbox and delivering webhooks (``weft-io``)."""

from __future__ import annotations

import asyncio

import httpx
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from engine.events.delivery import Deliverer
from engine.events.dispatch import Dispatcher
from engine.platform.settings import Settings
from workers.activities.heartbeats import heartbeating
from workflows.activities import DELIVER_WEBHOOK, DISPATCH_EVENTS, WEBHOOK_EXHAUSTED
from workflows.event_payloads import (
    AttemptInput,
    AttemptResult,
    DispatchBatch,
    DispatchResult,
    ExhaustedInput,
)


class EventActivities:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        http: httpx.AsyncClient,
        redis: Redis | None,
    ) -> None:
        self.settings, self.sessions, self.redis = settings, sessions, redis
        self.deliverer = Deliverer(settings, sessions, http)

    @DISPATCH_EVENTS.defn
    async def dispatch_events(self, params: DispatchBatch) -> DispatchResult:
        dispatcher = Dispatcher(self.settings, self.sessions, activity.client(), self.redis)
        stop = asyncio.Event()  # this worker shutting down: end the watch, the next runs elsewhere

        async def on_shutdown() -> None:
            await activity.wait_for_worker_shutdown()
            stop.set()

        watcher = asyncio.create_task(on_shutdown())
        try:
            async with heartbeating():  # a worker that died is noticed in seconds
                done = await dispatcher.watch(
                    params.limit,
                    self.settings.event_watch_seconds,
                    self.settings.event_check_seconds,
                    stop,
                )
        finally:
            watcher.cancel()
        return DispatchResult(
            sequenced=done.sequenced,
            dispatched=done.dispatched,
            deliveries=done.deliveries,
            more=done.more,
            watched=True,
        )

    @DELIVER_WEBHOOK.defn
    async def deliver_webhook(self, params: AttemptInput) -> AttemptResult:
        async with heartbeating():
            return await self.deliverer.attempt(params)

    @WEBHOOK_EXHAUSTED.defn
    async def webhook_exhausted(self, params: ExhaustedInput) -> None:
        await self.deliverer.exhausted(params)
