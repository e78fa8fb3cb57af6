"""The response cache: deterministic chat answers, kept per tenant.

Only requests that should give the same answer twice are cached: temperature
0, the same provider and model, the same messages and the same max_tokens.
Entries live in Redis when it is configured (shared by every replica) and in
an in-process LRU otherwise. A key's public form is ``chat:{model}:{digest}``;
patterns (``chat:*``, ``chat:llama3*``) match that form, inside the caller's
tenant only.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import logging
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from engine.ai.providers.base import ChatMessage
from engine.platform.errors import Unavailable
from engine.platform.settings import Settings

log = logging.getLogger("weft.cache")
PREFIX = "weft:cache:"
SCAN_LIMIT = 10_000


@dataclass(frozen=True)
class CachedAnswer:
    content: str
    model: str
    provider: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = "stop"


def cache_key(model: str, messages: list[ChatMessage], max_tokens: int | None) -> str:
    canonical = json.dumps(
        {"model": model, "messages": [m.model_dump() for m in messages], "max_tokens": max_tokens},
        sort_keys=True,
        separators=(",", ":"),
    )
    return f"chat:{model}:{hashlib.sha256(canonical.encode()).hexdigest()[:32]}"


class ResponseCache:
    def __init__(self, settings: Settings, redis: Redis | None) -> None:
        self.ttl = settings.model_cache_ttl_seconds
        self.max_entries = settings.model_cache_max_entries
        self.redis = redis
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._counts: dict[str, dict[str, int]] = {}

    @property
    def backend(self) -> str:
        return "redis" if self.redis is not None else "memory"

    def process_hit_rate(self) -> float:
        """Hits over lookups of this process, every tenant together (no I/O: for
        the unauthenticated ``/health``, which names no tenant)."""
        hits = sum(counts["hits"] for counts in self._counts.values())
        lookups = hits + sum(counts["misses"] for counts in self._counts.values())
        return round(hits / lookups, 4) if lookups else 0.0

    def _full(self, tenant_id: str, key: str) -> str:
        return f"{PREFIX}{tenant_id}:{key}"

    async def get(self, tenant_id: str, key: str) -> CachedAnswer | None:
        raw = await self._read(self._full(tenant_id, key))
        await self._count(tenant_id, "hits" if raw is not None else "misses")
        return CachedAnswer(**json.loads(raw)) if raw is not None else None

    async def put(self, tenant_id: str, key: str, answer: CachedAnswer) -> None:
        full, value = self._full(tenant_id, key), json.dumps(asdict(answer)).encode()
        if self.redis is not None:
            try:
                await self.redis.set(full, value, ex=self.ttl)
            except (RedisError, OSError, TimeoutError) as exc:
                log.warning("response cache store unavailable: %s", exc)
            return
        self._entries[full] = (time.monotonic() + self.ttl, value)
        self._entries.move_to_end(full)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    async def _read(self, full: str) -> bytes | None:
        if self.redis is not None:
            try:
                value = await self.redis.get(full)
            except (RedisError, OSError, TimeoutError) as exc:
                log.warning("response cache store unavailable: %s", exc)
                return None
            if value is None:
                return None
            return value.encode() if isinstance(value, str) else bytes(value)
        entry = self._entries.get(full)
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            del self._entries[full]
            return None
        self._entries.move_to_end(full)
        return entry[1]

    async def _count(self, tenant_id: str, field: str) -> None:
        counts = self._counts.setdefault(tenant_id, {"hits": 0, "misses": 0})
        counts[field] += 1
        if self.redis is not None:
            # A failing store was already reported by the read.
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                await self.redis.hincrby(f"{PREFIX}stats:{tenant_id}", field, 1)

    async def _scan(self, tenant_id: str, pattern: str) -> list[tuple[str, int, float]]:
        """(public key, size in bytes, seconds to live) of the tenant's matching keys."""
        prefix = self._full(tenant_id, "")
        if self.redis is None:
            now = time.monotonic()
            return [
                (full[len(prefix) :], len(value), expires - now)
                for full, (expires, value) in list(self._entries.items())
                if full.startswith(prefix)
                and expires > now
                and fnmatch.fnmatchcase(full[len(prefix) :], pattern)
            ]
        fulls: list[str] = []
        async for item in self.redis.scan_iter(match=prefix + pattern, count=500):
            fulls.append(item.decode() if isinstance(item, bytes) else str(item))
            if len(fulls) >= SCAN_LIMIT:
                break
        async with self.redis.pipeline(transaction=False) as pipe:
            for full in fulls:
                pipe.strlen(full)
                pipe.ttl(full)
            answers = await pipe.execute() if fulls else []
        return [
            (full[len(prefix) :], int(answers[2 * i]), float(answers[2 * i + 1]))
            for i, full in enumerate(fulls)
            if int(answers[2 * i + 1]) > 0
        ]

    async def stats(self, tenant_id: str) -> dict[str, Any]:
        counts = dict(self._counts.get(tenant_id, {"hits": 0, "misses": 0}))
        try:
            if self.redis is not None:
                stored = await self.redis.hgetall(f"{PREFIX}stats:{tenant_id}")
                counts = {
                    field: int(stored.get(field.encode(), stored.get(field, 0)) or 0)
                    for field in ("hits", "misses")
                }
            entries = await self._scan(tenant_id, "*")
        except (RedisError, OSError, TimeoutError) as exc:
            raise _down(exc) from None
        lookups = counts["hits"] + counts["misses"]
        return {
            "backend": self.backend,
            "hit_rate": round(counts["hits"] / lookups, 4) if lookups else 0.0,
            "total_hits": counts["hits"],
            "total_misses": counts["misses"],
            "memory_used_mb": round(sum(size for _, size, _ in entries) / 1_048_576, 4),
            "keys_count": len(entries),
            "ttl_average_seconds": (
                round(sum(ttl for _, _, ttl in entries) / len(entries), 1) if entries else 0
            ),
            "ttl_seconds": self.ttl,
        }

    async def keys(
        self, tenant_id: str, pattern: str = "*", limit: int = 100
    ) -> list[dict[str, Any]]:
        try:
            entries = sorted(await self._scan(tenant_id, pattern))[:limit]
        except (RedisError, OSError, TimeoutError) as exc:
            raise _down(exc) from None
        return [
            {"key": key, "size_bytes": size, "ttl_seconds": round(ttl, 1)}
            for key, size, ttl in entries
        ]

    async def clear(self, tenant_id: str, pattern: str = "*") -> int:
        try:
            entries = await self._scan(tenant_id, pattern)
            fulls = [self._full(tenant_id, key) for key, _, _ in entries]
            if self.redis is not None:
                for start in range(0, len(fulls), 500):
                    await self.redis.delete(*fulls[start : start + 500])
        except (RedisError, OSError, TimeoutError) as exc:
            raise _down(exc) from None
        if self.redis is None:
            for full in fulls:
                self._entries.pop(full, None)
        return len(fulls)


def _down(exc: Exception) -> Unavailable:
    log.warning("response cache store unavailable: %s", exc)
    return Unavailable("The response cache store is unavailable")
