"""Rolling latency and error rate per model, measured on real calls.

Kept in process always, and in Redis when it is configured (so every replica
routes on the same measurements). Routing reads the last ``WINDOW`` calls of
each model; a Redis that does not answer falls back to this process's numbers.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections import deque
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger("weft.models")

WINDOW = 100
PREFIX = "weft:mstats:"


@dataclass(frozen=True)
class ModelStat:
    calls: int = 0
    errors: int = 0
    avg_latency_ms: float | None = None
    p50_latency_ms: float | None = None

    @property
    def error_rate(self) -> float:
        return self.errors / self.calls if self.calls else 0.0


def _summarise(samples: list[tuple[float, bool]]) -> ModelStat:
    if not samples:
        return ModelStat()
    latencies = [latency for latency, ok in samples if ok] or [latency for latency, _ in samples]
    return ModelStat(
        calls=len(samples),
        errors=sum(1 for _, ok in samples if not ok),
        avg_latency_ms=round(statistics.fmean(latencies), 2),
        p50_latency_ms=round(statistics.median(latencies), 2),
    )


class ModelStats:
    def __init__(self, redis: Redis | None = None) -> None:
        self.redis = redis
        self._local: dict[str, deque[tuple[float, bool]]] = {}
        self._warned_at = 0.0

    async def record(self, key: str, latency_ms: float, ok: bool) -> None:
        self._local.setdefault(key, deque(maxlen=WINDOW)).appendleft((latency_ms, ok))
        if self.redis is None:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.lpush(PREFIX + key, f"{latency_ms:.2f}:{int(ok)}")
                pipe.ltrim(PREFIX + key, 0, WINDOW - 1)
                await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            self._warn(exc)

    async def get(self, keys: list[str]) -> dict[str, ModelStat]:
        local = {key: _summarise(list(self._local.get(key, ()))) for key in keys}
        if self.redis is None or not keys:
            return local
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.lrange(PREFIX + key, 0, WINDOW - 1)
                answers = await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            self._warn(exc)
            return local
        shared = {}
        for key, items in zip(keys, answers, strict=True):
            samples = []
            for item in items:
                latency, _, ok = (item.decode() if isinstance(item, bytes) else item).partition(":")
                samples.append((float(latency), ok == "1"))
            shared[key] = _summarise(samples) if samples else local[key]
        return shared

    def _warn(self, exc: Exception) -> None:
        if time.monotonic() - self._warned_at > 60:
            self._warned_at = time.monotonic()
            log.warning("model stats store unavailable (%s); using this process's numbers", exc)
