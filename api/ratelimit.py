"""Rate limiting at the edge: one counter per route group and principal.

Plain ASGI (like ``api.middleware``) so streamed responses pass through. A
request is counted for the principal it authenticates as, or else for its
client address: a live API key (read exactly as authentication reads it, so
``KEY`` and ``KEY\\xa0`` are one key) by its id, a validly signed JWT by its
subject, and anything else — no credential, an unknown, revoked or expired
key, a forged token — by address, so made-up credentials never buy a fresh
bucket. Sign-in and refresh are anonymous calls, always counted by address.
The client address is the connection's: forwarded headers are honoured only
by the server, and only from ``WEFT_TRUSTED_PROXIES`` (see ``weft api``).
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from datetime import UTC, datetime

import jwt
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.middleware import header_value, send_error
from engine.identity.principals import live_api_key_id, looks_like_api_key, presented_credential
from engine.platform.errors import Unavailable
from engine.platform.ratelimit import RateDecision, RateLimiter, route_group
from engine.platform.settings import Settings

# Liveness and readiness probes are still counted, but when the limiter is
# unavailable they pass: a Redis outage must not make orchestrators restart
# every replica (the probes themselves report Redis as degraded).
PROBE_PATHS = frozenset(
    {"/health", "/api/health", "/api/v1/health", "/ready", "/api/ready", "/api/v1/ready"}
    | {"/", "/v1.0/health"}  # partio's health checks
)
_RATE_HEADERS = (b"x-ratelimit-limit", b"x-ratelimit-remaining", b"x-ratelimit-reset")
# Calls that authenticate no one (their credential is in the body): by address only.
ANONYMOUS_GROUPS = frozenset({"login", "refresh"})
KEY_CACHE_SECONDS = 30.0
KEY_CACHE_MAX = 10_000


def rate_headers(decision: RateDecision) -> list[tuple[bytes, bytes]]:
    values = (decision.limit, decision.remaining, decision.reset_at)
    headers = [
        (name, str(value).encode()) for name, value in zip(_RATE_HEADERS, values, strict=True)
    ]
    headers.append((b"x-ratelimit-window", str(decision.window).encode()))
    if not decision.allowed:
        headers.append((b"retry-after", str(decision.retry_after).encode()))
    return headers


class RateLimitMiddleware:
    """Counts every HTTP request and refuses those over their group's limit.

    The limiter is the one the lifespan put on ``app.state.resources`` (one per
    app, shared by all requests); before the lifespan ran nothing is counted.
    Every counted response carries ``X-RateLimit-Limit``, ``-Remaining``,
    ``-Reset`` (epoch seconds) and ``-Window`` (seconds). A refused request is
    answered 429 ``RATE_LIMIT_EXCEEDED`` with ``Retry-After``; a limiter that is
    unavailable (Redis down in ``fail_closed`` mode) is answered 503.

    Args:
        app: The wrapped ASGI app.
        settings: Limits, window and JWT verification parameters.
    """

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self._jwt_secret: str | None = None  # read once: resolving may touch the disk
        # Key hash -> (key id, monotonic time the entry lapses): live keys only.
        self._live_keys: dict[str, tuple[str, float]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limiter = self._limiter(scope) if scope["type"] == "http" else None
        if limiter is None or not self.settings.rate_limits_enabled:
            await self.app(scope, receive, send)
            return
        group = route_group(scope["method"], scope["path"])
        window = self.settings.rate_limit_window_seconds
        # Failed authentication (a 401) is counted per address: a credential
        # that does not work, or a failed sign-in.
        guessing = _has_credential(scope) or group in ANONYMOUS_GROUPS
        guessing_key = f"auth_failures:{_client_bucket(scope)}" if guessing else None
        try:
            if guessing_key is not None:  # refused before a key costs a lookup
                failures = await limiter.peek(
                    guessing_key, self.settings.rate_limits["auth_failures"], window
                )
                if not failures.allowed:
                    await self._refuse(scope, send, failures)
                    return
            bucket = (
                _client_bucket(scope) if group in ANONYMOUS_GROUPS else await self.bucket(scope)
            )
            key = f"{group}:{bucket}"
            decision = await limiter.hit(key, self.settings.rate_limits[group], window)
        except Unavailable as exc:
            if scope["path"] in PROBE_PATHS:
                await self.app(scope, receive, send)
                return
            await send_error(scope, send, 503, "SERVICE_UNAVAILABLE", exc.message, None, [])
            return
        headers = rate_headers(decision)
        if not decision.allowed:
            await self._refuse(scope, send, decision)
            return
        status = 0

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                names = {name for name, _ in headers}
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message["headers"] = kept + headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
        if status == 401 and guessing_key is not None:
            with contextlib.suppress(Unavailable):  # the answer has gone out already
                await limiter.hit(guessing_key, self.settings.rate_limits["auth_failures"], window)

    @staticmethod
    async def _refuse(scope: Scope, send: Send, decision: RateDecision) -> None:
        reset_at = datetime.fromtimestamp(decision.reset_at, UTC)
        details = {
            "limit": decision.limit,
            "reset_at": reset_at.isoformat().replace("+00:00", "Z"),
            "retry_after": decision.retry_after,
        }
        await send_error(
            scope, send, 429, "RATE_LIMIT_EXCEEDED", "Too many requests", details,
            rate_headers(decision),
        )  # fmt: skip

    @staticmethod
    def _limiter(scope: Scope) -> RateLimiter | None:
        resources = getattr(getattr(scope.get("app"), "state", None), "resources", None)
        return getattr(resources, "rate_limiter", None)

    async def bucket(self, scope: Scope) -> str:
        """The principal a request is counted for: ``key:…``, ``user:…`` or ``ip:…``."""
        credential = presented_credential(
            header_value(scope, b"x-api-key"), header_value(scope, b"authorization")
        )
        if not credential:
            return _client_bucket(scope)
        if looks_like_api_key(credential):
            key_id = await self._live_key_id(scope, credential)
            return f"key:{key_id}" if key_id else _client_bucket(scope)
        subject = self._jwt_subject(credential)
        return f"user:{subject}" if subject else _client_bucket(scope)

    async def _live_key_id(self, scope: Scope, key: str) -> str | None:
        digest = hashlib.sha256(key.encode()).hexdigest()
        now = time.monotonic()
        cached = self._live_keys.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        sessions = _sessions(scope)
        if sessions is None:
            return None
        try:
            async with sessions() as session:
                key_id = await live_api_key_id(session, key)
        except (SQLAlchemyError, OSError):
            return None  # the route will fail alike; meanwhile counted by address
        if key_id is not None:
            if len(self._live_keys) >= KEY_CACHE_MAX:
                self._live_keys.clear()
            self._live_keys[digest] = (key_id, now + KEY_CACHE_SECONDS)
        return key_id

    def _jwt_subject(self, token: str) -> str | None:
        if self._jwt_secret is None:
            self._jwt_secret = self.settings.resolved_jwt_secret()
        try:
            claims = jwt.decode(
                token,
                self._jwt_secret,
                algorithms=["HS256"],
                audience=self.settings.jwt_audience,
                issuer=self.settings.jwt_issuer,
                options={"require": ["exp", "sub"]},
            )
        except jwt.PyJWTError:
            return None  # not ours, forged or expired: counted by address instead
        subject = claims.get("sub")
        return str(subject) if subject else None


def _sessions(scope: Scope) -> async_sessionmaker[AsyncSession] | None:
    resources = getattr(getattr(scope.get("app"), "state", None), "resources", None)
    return getattr(resources, "sessions", None)


def _client_bucket(scope: Scope) -> str:
    client = scope.get("client")
    return "ip:" + (client[0] if client else "unknown")


def _has_credential(scope: Scope) -> bool:
    return bool(header_value(scope, b"x-api-key") or header_value(scope, b"authorization"))
