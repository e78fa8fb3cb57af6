"""Sliding-window rate limiting: in-process, on Redis, and Redis with a fallback.

The HTTP layer decides *what* to count (route group and principal, see
``route_group``); this module only counts. The algorithm is the sliding window
counter of the ``limits`` package (the same on Redis, in one Lua script, and in
memory): a request is allowed while ``floor(previous * overlap) + current <
limit``, where ``overlap`` is the share of the previous window still inside the
sliding window. Unlike a fixed window, a burst at the end of one window still
counts at the start of the next, so no edge lets twice the limit through.
"""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import dataclass
from typing import Literal, Protocol

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
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
        allowed: Whether the request fits in the sliding window.
        limit: Requests allowed per window.
        remaining: Requests that would still fit now (never negative).
        reset_at: Epoch seconds at which ``remaining`` next grows (when the
            previous window's share drops by one, or the current window ends).
        window: Window length in seconds.
        retry_after: Seconds to wait before one more request fits; 0 when allowed.
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
    allowed: bool | None,
    limit: int,
    window: int,
    stats: tuple[int, float, int, float],
    now: float,
) -> RateDecision:
    """A decision from the store's sliding-window state after the request.

    ``stats`` is ``limits``' ``(previous count, previous TTL, current count,
    current TTL)``: the previous window weighs ``previous TTL / window`` and the
    current window ends in ``current TTL - window`` (its key lives two windows).
    ``allowed`` is the hit's outcome, or ``None`` for a peek (does one more fit?).
    """
    previous, previous_ttl, current, current_ttl = stats
    share = math.floor(previous * previous_ttl / window) if previous else 0
    remaining = max(0, limit - share - current)
    waits = []
    if share:  # the previous window's share drops by one
        waits.append(previous_ttl - share * window / previous)
    if current:  # the current window ends and starts to decay
        waits.append(current_ttl - window)
    wait = max(0.0, min(waits, default=0.0))
    if allowed is None:
        allowed = remaining > 0
    return RateDecision(
        allowed=allowed,
        limit=limit,
        remaining=remaining,
        reset_at=math.ceil(now + wait),
        window=window,
        # Just past the moment, so the one retry fits.
        retry_after=0 if allowed else max(1, math.ceil(wait + 0.001)),
    )


class _SlidingWindowLimiter:
    """The ``limits`` sliding window counter on one store, as a ``RateLimiter``."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._strategy = SlidingWindowCounterRateLimiter(storage)

    async def hit(self, key: str, limit: int, window_seconds: int) -> RateDecision:
        return await self._count(key, limit, window_seconds, peek=False)

    async def peek(self, key: str, limit: int, window_seconds: int) -> RateDecision:
        return await self._count(key, limit, window_seconds, peek=True)

    async def _count(
        self, key: str, limit: int, window_seconds: int, *, peek: bool
    ) -> RateDecision:
        item = RateLimitItemPerSecond(limit, window_seconds)
        allowed = None if peek else await self._strategy.hit(item, key)
        stats = await self._storage.get_sliding_window(  # type: ignore[attr-defined]
            item.key_for(key), window_seconds
        )
        return _decide(allowed, limit, window_seconds, stats, time.time())


class _BoundedMemoryStorage(MemoryStorage):
    """``limits``' in-process store with a cap on keys and a throttled sweep.

    The store sweeps expired keys in a task it schedules on every count; that
    sweep is O(keys), so it runs at most once per ``sweep_interval`` (a flood of
    new keys must cost O(1) each, not a scan each). Past ``max_keys``, the
    oldest keys are dropped as a last resort.
    """

    def __init__(self, max_keys: int, sweep_interval: float) -> None:
        super().__init__()
        self._max_keys = max_keys
        self._sweep_interval = sweep_interval
        self._next_sweep = 0.0

    async def _MemoryStorage__schedule_expiry(self) -> None:  # overrides the private hook
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + self._sweep_interval
            await super()._MemoryStorage__schedule_expiry()  # type: ignore[misc]

    async def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        if key not in self.storage:
            while len(self.storage) >= self._max_keys:
                await self.clear(next(iter(self.storage)))
        return await super().incr(key, expiry, amount)


class MemoryRateLimiter(_SlidingWindowLimiter):
    """Sliding-window counters in this process.

    Windows are aligned to the epoch. Memory is bounded: ended windows are swept
    at most once per ``sweep_interval`` seconds and, as a last resort, the oldest
    counters beyond ``max_keys`` are dropped (each principal holds two).

    Args:
        max_keys: Upper bound on tracked counters.
        sweep_interval: Minimum seconds between sweeps of ended windows.
    """

    def __init__(self, *, max_keys: int = 100_000, sweep_interval: float = 5.0) -> None:
        self._memory = _BoundedMemoryStorage(max_keys, sweep_interval)
        super().__init__(self._memory)

    def __len__(self) -> int:
        return len(self._memory.storage)


class RedisRateLimiter(_SlidingWindowLimiter):
    """Sliding-window counters in Redis, shared by every API replica.

    Each count is one Lua script (atomic on the server), so replicas never
    over-admit; the state read after it is a second one. A principal's window
    starts at its first counted request and its two keys expire on their own.

    Args:
        redis: An asyncio Redis client (its connection pool is shared).
        prefix: Prefix of every counter key.
    """

    def __init__(self, redis: Redis, prefix: str = "weft:rl") -> None:
        self._pool = redis.connection_pool
        storage = RedisStorage(
            "async+redis://",
            implementation="redispy",
            key_prefix=prefix,
            connection_pool=redis.connection_pool,  # type: ignore[arg-type]
        )
        super().__init__(storage)

    async def _count(
        self, key: str, limit: int, window_seconds: int, *, peek: bool
    ) -> RateDecision:
        try:
            try:
                return await super()._count(key, limit, window_seconds, peek=peek)
            except (RedisConnectionError, ConnectionError):
                # After Redis restarts, the pool's idle connections are dead
                # sockets, and each fails once when next used: drop them and try
                # a fresh connection before calling Redis down (a Redis that is
                # really down refuses that one at once too).
                await self._pool.disconnect(inuse_connections=False)
                return await super()._count(key, limit, window_seconds, peek=peek)
        except (TimeoutError, RedisError, OSError) as exc:
            raise RateLimitBackendDown("Rate limiting is unavailable") from exc


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
