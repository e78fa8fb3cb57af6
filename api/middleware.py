"""ASGI middleware: request ids, security headers, body limits, last-resort 500.

Written as plain ASGI (not BaseHTTPMiddleware) so streamed responses pass
through untouched.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from typing import Any

from fastapi import params
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.envelope import error_body
from engine.platform import logs, metrics
from engine.platform.ratelimit import route_group

log = logging.getLogger("weft.api")

REQUEST_ID_HEADER = "x-request-id"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]
# JSON answers load nothing; the docs pages (Swagger UI, ReDoc, served from the
# package) run their own scripts and styles, inline ones included.
API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
DOCS_CSP = (
    b"content-security-policy",
    b"default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    b"img-src 'self' data:; worker-src 'self' blob:; frame-ancestors 'none'",
)
DOCS_PATHS = ("/docs", "/redoc")


def header_value(scope: Scope, name: bytes) -> str | None:
    """The first value of a request header in an ASGI scope."""
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


class EdgeMiddleware:
    """Everything that must happen to every HTTP request, in one place.

    - ``X-Request-ID``: a safe incoming id is kept, otherwise one is generated;
      it is echoed on the response and put into ``scope["state"]``.
    - Security headers on every response, a Content-Security-Policy included.
    - Request bodies over the limit are answered 413: a declared
      ``Content-Length`` before anything is read, a streamed body as soon as it
      passes the limit (the app then sees a client disconnect, and whatever it
      would have answered is dropped). Only routes that take a file upload
      allow the upload limit, and only once the caller has authenticated: an
      upload from someone who is no one is answered without its body being
      read (``_UploadGate``); every other route has the request limit, however
      its body is labelled.
    - Any exception that escapes the app becomes the contract's 500 envelope,
      logged with the request id, never a stack trace to the client.
    - Logging and metrics: the request id is bound for every line logged while
      the request is served; its route template, method, status and duration go
      to the Prometheus series (429s also by rate-limit group).
    """

    def __init__(self, app: ASGIApp, *, max_body: int, max_upload: int) -> None:
        self.app = app
        self.max_body = max_body
        self.max_upload = max_upload
        self.uploads = _UploadGate()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        incoming = header_value(scope, b"x-request-id")
        request_id = (
            incoming
            if incoming and _SAFE_REQUEST_ID.match(incoming)
            else f"req_{secrets.token_hex(8)}"
        )
        scope.setdefault("state", {})["request_id"] = request_id
        token = logs.bind_request(request_id)
        began = time.perf_counter()
        status = 0

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._serve(scope, receive, send_counted, request_id)
        finally:
            logs.unbind_request(token)
            if status:  # nothing went out (the client left first): nothing to count
                _observe(scope, status, time.perf_counter() - began)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        content_type = header_value(scope, b"content-type") or ""
        limit = self.max_body
        withheld = False  # an unauthenticated upload: the app gets no body
        if content_type.startswith("multipart/"):
            upload = self.uploads.route_for(scope)
            if upload is not None:
                limit = self.max_upload
                withheld = not await self.uploads.authenticated(scope, upload)
        started = False
        refused = False  # a 413 went out mid-body; the app's own answer is dropped

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"x-request-id"]
                headers.append((b"x-request-id", request_id.encode()))
                headers.extend(SECURITY_HEADERS)
                headers.append(DOCS_CSP if scope["path"].startswith(DOCS_PATHS) else API_CSP)
                message["headers"] = headers
            await send(message)

        declared = header_value(scope, b"content-length")
        if withheld:
            # The route answers 401/403 itself, from its credential checks,
            # before it would look at a body; it is given none.
            receive = _empty_body
        elif declared and declared.isdigit() and int(declared) > limit:
            await self._too_large(scope, send_with_headers, limit)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit and not started:
                    await self._too_large(scope, send_with_headers, limit)
                    refused = True
                    return {"type": "http.disconnect"}
            return message

        try:
            await self.app(scope, limited_receive, send_with_headers)
        except Exception:
            if refused:
                return
            log.exception("unhandled error", extra={"request_id": request_id})
            if started:
                raise
            await send_error(
                scope, send_with_headers, 500, "INTERNAL_ERROR", "Internal server error", None
            )

    @classmethod
    async def _too_large(cls, scope: Scope, send: Send, limit: int) -> None:
        await send_error(
            scope,
            send,
            413,
            "PAYLOAD_TOO_LARGE",
            f"request body is larger than {limit} bytes",
            {"limit_bytes": limit},
        )


async def _empty_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


class _UploadGate:
    """Which routes take uploads, and whether an upload's caller is someone.

    A route takes uploads when FastAPI reads its body as a form with a file in
    it. Whether it needs a caller is read off its dependencies (``get_principal``
    among them); the check is the same ``authenticate`` the route will run, so
    a principal found here is cached for it.
    """

    def __init__(self) -> None:
        self._kinds: dict[int, tuple[bool, bool]] = {}  # id(route) -> (upload, needs caller)

    def route_for(self, scope: Scope) -> Any:
        """The route a multipart request is for, if that route takes uploads."""
        app = scope.get("app")
        route = _matching(getattr(getattr(app, "router", None), "routes", ()), scope)
        if route is None:
            return None
        return route if self._kind(route)[0] else None

    def _kind(self, route: Any) -> tuple[bool, bool]:
        kind = self._kinds.get(id(route))
        if kind is None:
            kind = (_takes_files(route), _needs_caller(getattr(route, "dependant", None)))
            self._kinds[id(route)] = kind
        return kind

    async def authenticated(self, scope: Scope, route: Any) -> bool:
        if not self._kind(route)[1]:
            return True
        resources = getattr(getattr(scope.get("app"), "state", None), "resources", None)
        return resources is not None and await resources.is_someone(
            header_value(scope, b"x-api-key"), header_value(scope, b"authorization")
        )


def _takes_files(route: Any) -> bool:
    body = getattr(route, "body_field", None)
    return body is not None and isinstance(body.field_info, params.Form)


def _needs_caller(dependant: Any) -> bool:
    if dependant is None:
        return False
    from api.deps import get_principal  # api.deps is built on the app's resources

    return any(dep.call is get_principal or _needs_caller(dep) for dep in dependant.dependencies)


def route_template(scope: Scope) -> str:
    """The path template that served (or would serve) a request, for metric labels."""
    route = scope.get("route")
    if route is None:  # refused before routing (429, 413): find the route it was for
        app = scope.get("app")
        route = _matching(getattr(getattr(app, "router", None), "routes", ()), scope)
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else metrics.UNMATCHED_ROUTE


def _matching(routes: Any, scope: Scope) -> Any:
    """The route among ``routes`` (included routers searched) that serves ``scope``."""
    for candidate in routes:
        # FastAPI keeps an included router whole (app.include_router without a prefix).
        included = getattr(candidate, "original_router", None)
        if included is not None:
            found = _matching(included.routes, scope)
            if found is not None:
                return found
            continue
        match, _ = candidate.matches(scope)
        if match is Match.FULL:
            return candidate
    return None


def _observe(scope: Scope, status: int, seconds: float) -> None:
    method = scope.get("method", "")
    metrics.observe_request(method, route_template(scope), status, seconds)
    if status == 429:
        metrics.RATE_LIMITED.labels(route_group(method, scope.get("path", ""))).inc()


async def send_error(
    scope: Scope,
    send: Send,
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Answer an ASGI request with the contract's error body (for middleware)."""
    body = error_body(
        path=scope.get("path", ""),
        status_code=status,
        code=code,
        message=message,
        details=details,
        request_id=scope.get("state", {}).get("request_id"),
    )
    payload = json.dumps(body).encode()
    start_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        *(headers or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": start_headers})
    await send({"type": "http.response.body", "body": payload})
