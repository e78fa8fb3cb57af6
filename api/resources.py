"""Long-lived clients of one API process, created in the lifespan."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import httpx
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.client import Client

from engine.ai.providers import local
from engine.ai.runtime import ModelRuntime
from engine.audit.request_history import RequestHistory
from engine.db.connection import create_engine, create_sessionmaker
from engine.events import doorbell
from engine.events.doorbell import Doorbell
from engine.events.hub import EventHub
from engine.identity.principals import authenticate, presented_credential
from engine.platform import temporal
from engine.platform.ratelimit import MemoryRateLimiter, RateLimiter, build_rate_limiter
from engine.platform.settings import Settings
from engine.storage import BlobStore, blob_store
from engine.vectors import VectorIndex, vector_index


@dataclass
class Resources:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    temporal: Client
    redis: Redis | None
    # One per app: every request of this process counts against the same limiter.
    rate_limiter: RateLimiter = field(default_factory=MemoryRateLimiter)
    started_monotonic: float = field(default_factory=time.monotonic)
    # Request history writer (partio /v1.0/requests); None when recording is off.
    history: RequestHistory | None = None
    # Documents: blob storage and the vector index (its matrix cache lives here).
    store: BlobStore = field(init=False)
    index: VectorIndex = field(init=False)
    # Models: the shared outbound HTTP client, provider registry, circuit
    # breakers, model stats and the response cache.
    models: ModelRuntime = field(init=False)
    # Live event streams (WebSockets, SSE) of this process.
    hub: EventHub = field(init=False)

    def __post_init__(self) -> None:
        self.store = blob_store(self.settings)
        self.index = vector_index(self.settings)
        self.models = ModelRuntime.open(self.settings, self.sessions, self.redis)
        self.hub = EventHub(self.settings, self.sessions, self.redis)

    @property
    def http(self) -> httpx.AsyncClient:
        """The shared client for outbound calls (through ``engine.platform.egress``)."""
        return self.models.http

    @classmethod
    async def open(cls, settings: Settings) -> Resources:
        engine = create_engine(settings)
        redis = (
            Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
            if settings.redis_url
            else None
        )
        # Lazy: the API starts (and reports Temporal unhealthy) even while the
        # server is still coming up; the first call connects.
        client = await temporal.connect(settings, lazy=True)
        limiter = build_rate_limiter(settings, redis)
        sessions = create_sessionmaker(engine)
        # Events committed by this process wake the dispatcher workflow.
        doorbell.install(sessions, Doorbell(client, settings))
        history = None
        if settings.request_history_enabled:
            history = RequestHistory(settings, sessions)
            history.start()
        # Load the local embedding model in the background: the first RAG query
        # should not pay for it.
        asyncio.get_running_loop().run_in_executor(None, local.warm_up)
        resources = cls(settings, engine, sessions, client, redis, limiter, history=history)
        await resources.hub.start()
        return resources

    async def is_someone(self, api_key: str | None, authorization: str | None) -> bool:
        """Whether these headers authenticate anyone (for answers that only
        depend on it; routes use ``api.deps.get_principal``). A refusal and a
        database that cannot answer are both "no": the route says which."""
        credential = presented_credential(api_key, authorization)
        if not credential:
            return False
        try:
            async with self.sessions() as session:
                await authenticate(session, self.settings, credential)
        except Exception:
            return False
        return True

    async def close(self) -> None:
        if self.history is not None:  # drains the queue while the database is still there
            await self.history.stop()
        await self.hub.stop()
        await self.models.close()
        if self.redis is not None:
            await self.redis.aclose()
        await self.engine.dispose()

    @property
    def uptime_seconds(self) -> float:
        return time.monotonic() - self.started_monotonic
