"""Fixed-window rate limiting: in-process, on Redis, and Redis with a fallback.

The HTTP layer decides *what* to count (route group and principal, see
``route_group``); this module only counts. Windows are aligned to the epoch
(``window_start = now // window * window``) so every replica sharing Redis
agrees on the same window without coordinating.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from engine.platform.errors import Unavailable
from engine.platform.settings import Settings

log = logging.getLogger("weft.ratelimit")

_WORKFLOW_EXECUTE = re.compile(r"^/api(?:/v1)?/workflows/[^/]+/execute$")
_CHAT_PATHS = frozenset(
    {"/api/v1/ai/chat", "/api/ai/chat", "/api/v1/chat", "/api/v1/chat/stream", "/api/v1/chat/batch"}
)


@dataclass(frozen=True)
class RateDecision:
    """The outcome of counting one request against a limit.

    Attributes:
        allowed: Whether the request fits in the window.
        limit: Requests allowed per window.
        remaining: Requests still allowed in this window (never negative).
        reset_at: Epoch seconds at which the current window ends.
        window: Window length in seconds.
        retry_after: Seconds to wait before retrying; 0 when allowed.
    """

    allowed: bool
    limit: int
    remaining: int
    reset_at: int
    window: int
    retry_after: int


class RateLimiter(Protocol):
    async def hit(self, key: str, limit: int, window_seconds: int) -> RateDecision:
        """Count one request and decide whether it fits."""
        ...

    async def peek(self, key: str, limit: int, window_seconds: int) -> RateDecision:
        """Decide whether one more request would fit, without counting it."""
        ...


class RateLimitBackendDown(Unavailable):
    """The shared counter store did not answer (a subclass of Unavailable, so an
    unwrapped Redis limiter still maps to 503, never 500)."""


def _decide(
    count: int, limit: int, window_start: int, window: int, now: float, *, peek: bool = False
) -> RateDecision:
    reset_at = window_start + window
    # A hit has been counted already; a peek asks about the one after ``count``.
    allowed = count < limit if peek else count <= limit
    return RateDecision(
        allowed=allowed,
        limit=limit,
        remaining=max(0, limit - count),
        reset_at=reset_at,
        window=window,
        retry_after=0 if allowed else max(1, math.ceil(reset_at - now)),
    )


class MemoryRateLimiter:
    """Fixed-window counters in this process.

    ``hit`` never awaits, so under asyncio each call runs to completion without
    interleaving: no lock is needed for exact counts. Memory is bounded by
    sweeping ended windows at most once per ``sweep_interval`` seconds and, as a
    last resort, dropping the oldest buckets beyond ``max_keys``.

    Args:
        max_keys: Upper bound on tracked buckets.
        sweep_interval: Minimum seconds between sweeps of ended windows.
        clock: Epoch-seconds clock (injectable so window roll-over is testable).
    """

    def __init__(
        self,
        *,
        max_keys: int = 100_000,
        sweep_interval: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._counts: dict[str, tuple[int, int, int]] = {}  # key -> (start, window, count)
        self._max_keys = max_keys
        self._sweep_interval = sweep_interval
        self._clock = clock
        self._next_sweep = 0.0

    def __len__(self) -> int:
        return len(self._counts)

    async def hit(self, key: str, limit: int, window_seconds: int) -> RateDecision:
        now, start, count = self._current(key, window_seconds)
        if count == 0:
            # A new window: re-insert at the end, so dict order follows window age
            # and the cap below evicts the oldest buckets first.
            self._counts.pop(key, None)
            self._evict(now)
        self._counts[key] = (start, window_seconds, count + 1)
        return _decide(count + 1, limit, start, window_seconds, now)

    async def peek(self, key: str, limit: int, window_seconds: int) -> RateDecision:
        now, start, count = self._current(key, window_seconds)
        return _decide(count, limit, start, window_seconds, now, peek=True)

    def _current(self, key: str, window_seconds: int) -> tuple[float, int, int]:
        now = self._clock()
        start = int(now) // window_seconds * window_seconds
        stored = self._counts.get(key)
        count = stored[2] if stored and stored[:2] == (start, window_seconds) else 0
        return now, start, count

    def _evict(self, now: float) -> None:
        # Sweeping is O(n), so only on a timer: at the cap, a flood of new keys
        # must cost O(1) each, not a scan each.
        if now >= self._next_sweep:
            self._next_sweep = now + self._sweep_interval
            for ended in [k for k, (s, w, _) in self._counts.items() if s + w <= now]:
                del self._counts[ended]
        while len(self._counts) >= self._max_keys:
            del self._counts[next(iter(self._counts))]


class RedisRateLimiter:
    """Fixed-window counters in Redis, shared by every API replica.

    INCR and EXPIREAT run in one MULTI/EXEC transaction, so a counter never
    exists without its expiry even if a replica dies between the two.

    Args:
        redis: An asyncio Redis client.
        prefix: Prefix of every counter key.
    """

    def __init__(self, redis: Redis, prefix: str = "weft:rl:") -> None:
        self._redis = redis
        self._prefix = prefix

    async def hit(self, key: str, limit: int, window_seconds: int) -> RateDecision:
        return await self._count(key, limit, window_seconds, peek=False)

    async def peek(self, key: str, limit: int, window_seconds: int) -> RateDecision:
        return await self._count(key, limit, window_seconds, peek=True)

    async def _count(
        self, key: str, limit: int, window_seconds: int, *, peek: bool
    ) -> RateDecision:
        now = time.time()
        start = int(now) // window_seconds * window_seconds
        name = f"{self._prefix}{key}:{start}"
        try:
            if peek:
                count = int(await self._redis.get(name) or 0)
            else:
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.incr(name)
                    # One second of grace so a replica with a slow clock still finds it.
                    pipe.expireat(name, start + window_seconds + 1)
                    count = int((await pipe.execute())[0])
        except (TimeoutError, RedisError, OSError) as exc:
            raise RateLimitBackendDown("Rate limiting is unavailable") from exc
        return _decide(count, limit, start, window_seconds, now, peek=peek)


class ResilientRateLimiter:
    """A primary (Redis) limiter with a policy for when it is down.

    Args:
        primary: The shared limiter.
        fallback: In-process counters used in mode ``"memory"``.
        mode: ``"memory"`` counts in-process while the primary is down;
            ``"fail_closed"`` raises ``Unavailable`` (answered 503).
        retry_seconds: After a failure, skip the primary this long, so an outage
            does not add a connection attempt to every request.
    """

    def __init__(
        self,
        primary: RateLimiter,
        fallback: MemoryRateLimiter,
        mode: Literal["memory", "fail_closed"],
        *,
        retry_seconds: float = 2.0,
    ) -> None:
        self._primary = primary
        self._fallback = fallback
        self._mode = mode
        self._retry_seconds = retry_seconds
        self._skip_until = 0.0
        self._last_warning = -math.inf

    async def hit(self, key: str, limit: int, window_seconds: int) -> RateDecision:
        return await self._use(key, limit, window_seconds, peek=False)

    async def peek(self, key: str, limit: int, window_seconds: int) -> RateDecision:
        return await self._use(key, limit, window_seconds, peek=True)

    async def _use(self, key: str, limit: int, window_seconds: int, *, peek: bool) -> RateDecision:
        if time.monotonic() >= self._skip_until:
            primary = self._primary.peek if peek else self._primary.hit
            try:
                return await primary(key, limit, window_seconds)
            except RateLimitBackendDown as exc:
                self._skip_until = time.monotonic() + self._retry_seconds
                self._warn(exc)
        if self._mode == "fail_closed":
            raise Unavailable("Rate limiting is unavailable")
        fallback = self._fallback.peek if peek else self._fallback.hit
        return await fallback(key, limit, window_seconds)

    def _warn(self, exc: RateLimitBackendDown) -> None:
        # At most once a minute: an outage must not flood the log.
        if time.monotonic() - self._last_warning >= 60:
            self._last_warning = time.monotonic()
            action = "refusing requests" if self._mode == "fail_closed" else "counting in-process"
            log.warning("rate limit store unavailable (%s); %s", exc.__cause__ or exc, action)


def route_group(method: str, path: str) -> str:
    """The rate-limit group (a key of ``Settings.rate_limits``) of one request."""
    path = path.rstrip("/") or "/"
    method = method.upper()
    if method == "POST" and path in ("/api/v1/auth/login", "/api/auth/login"):
        return "login"
    if method == "POST" and path in ("/api/v1/auth/refresh", "/api/auth/refresh"):
        return "refresh"
    if path == "/api/v1/mcp" or path.startswith("/api/v1/mcp/"):
        return "mcp"
    if path in _CHAT_PATHS:
        return "ai_chat"
    if path == "/api/v1/ai/embeddings":
        return "ai_embeddings"
    if method == "POST" and _WORKFLOW_EXECUTE.match(path):
        return "workflow_execute"
    return "default"


def build_rate_limiter(settings: Settings, redis_client: Redis | None) -> RateLimiter:
    """Redis-backed (with the configured outage policy) when Redis is given, else in-process."""
    if redis_client is None:
        return MemoryRateLimiter()
    return ResilientRateLimiter(
        RedisRateLimiter(redis_client), MemoryRateLimiter(), settings.rate_limit_redis_failure
    )
