"""Long-lived clients of one API process, created in the lifespan."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.client import Client

from engine import temporal
from engine.db import create_engine, create_sessionmaker
from engine.settings import Settings


@dataclass
class Resources:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    temporal: Client
    redis: Redis | None
    started_monotonic: float = field(default_factory=time.monotonic)

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
        return cls(settings, engine, create_sessionmaker(engine), client, redis)

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
        await self.engine.dispose()

    @property
    def uptime_seconds(self) -> float:
        return time.monotonic() - self.started_monotonic
