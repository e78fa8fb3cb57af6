"""Rate limiting at the edge: one counter per route group and principal.

Plain ASGI (like ``api.middleware``) so streamed responses pass through. The
principal is found without touching the database: API keys are bucketed by
their hash, valid JWTs by subject, everything else by client address. A key
or token is not verified here (the routes do that); an unknown key only gets
a bucket of its own, which still caps what it can make the API do.
"""

from __future__ import annotations

import contextlib
import hashlib
from datetime import UTC, datetime

import jwt
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.middleware import header_value, send_error
from engine.identity.hashing import API_KEY_PREFIX
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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limiter = self._limiter(scope) if scope["type"] == "http" else None
        if limiter is None or not self.settings.rate_limits_enabled:
            await self.app(scope, receive, send)
            return
        group = route_group(scope["method"], scope["path"])
        key = f"{group}:{self.bucket(scope)}"
        window = self.settings.rate_limit_window_seconds
        guessing_key = f"auth_failures:{_client_bucket(scope)}" if _has_credential(scope) else None
        try:
            if guessing_key is not None:
                failures = await limiter.peek(
                    guessing_key, self.settings.rate_limits["auth_failures"], window
                )
                if not failures.allowed:
                    await self._refuse(scope, send, failures)
                    return
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

    def bucket(self, scope: Scope) -> str:
        """The principal a request is counted for: ``key:…``, ``user:…`` or ``ip:…``."""
        api_key = header_value(scope, b"x-api-key")
        scheme, _, token = (header_value(scope, b"authorization") or "").partition(" ")
        token = token.strip()
        if not api_key and scheme.lower() == "bearer" and token.startswith(API_KEY_PREFIX):
            api_key = token
        if api_key:
            return "key:" + hashlib.sha256(api_key.encode()).hexdigest()[:32]
        if scheme.lower() == "bearer" and token:
            subject = self._jwt_subject(token)
            if subject:
                return "user:" + subject
        return _client_bucket(scope)

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


def _client_bucket(scope: Scope) -> str:
    client = scope.get("client")
    return "ip:" + (client[0] if client else "unknown")


def _has_credential(scope: Scope) -> bool:
    return bool(header_value(scope, b"x-api-key") or header_value(scope, b"authorization"))
