"""ASGI middleware that records each API request for partio's request history.

Plain ASGI (like ``api.middleware``): it copies at most the cap of each body as
the bytes go past and sends every message on at once, so streamed responses
are neither buffered nor delayed. After the response it hands one entry to the
process's ``RequestHistory`` (a non-blocking enqueue); redaction and writing
happen in the background. Headers are never recorded: they carry credentials.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.audit.request_history import HistoryEntry, RequestHistory
from engine.platform.settings import Settings

# Probes and docs would drown the history and say nothing about API use.
SKIPPED_PATHS = frozenset(
    {"/health", "/api/health", "/api/v1/health", "/ready", "/api/ready", "/api/v1/ready"}
    | {"/docs", "/redoc", "/openapi.json", "/", "/v1.0/health"}
)
# A callback URL's path is its token (a capability): it is never kept.
SKIPPED_PREFIXES = ("/api/health/", "/api/v1/health/", "/docs/", "/redoc/", "/api/v1/callbacks/")


def is_recorded(method: str, path: str) -> bool:
    return method != "HEAD" and path not in SKIPPED_PATHS and not path.startswith(SKIPPED_PREFIXES)


def _header(headers: Any, name: bytes) -> str | None:
    for key, value in headers or []:
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def _declared_length(scope: Scope) -> int:
    """Content-Length, for a body the app answered without reading."""
    declared = _header(scope.get("headers"), b"content-length") or ""
    return int(declared) if declared.isdigit() else 0


def _service(scope: Scope) -> RequestHistory | None:
    """The service the lifespan put on ``app.state.resources`` (none before it ran)."""
    resources = getattr(getattr(scope.get("app"), "state", None), "resources", None)
    history = getattr(resources, "history", None)
    return history if isinstance(history, RequestHistory) else None


class _Capture:
    """At most ``cap`` bytes of one body, and how many bytes went past in all."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.kept = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.cap - len(self.kept)
        if room > 0 and chunk:
            self.kept.extend(chunk[:room])


class RequestHistoryMiddleware:
    """Sits inside ``EdgeMiddleware``, so the request id is known and every answer seen."""

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        history = _service(scope) if scope["type"] == "http" else None
        if (
            history is None
            or not self.settings.request_history_enabled
            or not is_recorded(scope["method"], scope["path"])
        ):
            await self.app(scope, receive, send)
            return

        cap = self.settings.request_history_body_cap_bytes
        request, response = _Capture(cap), _Capture(cap)
        response_type = ""
        status = 500  # what the client gets if the app fails before answering
        created_at = datetime.now(UTC)
        started = time.perf_counter()

        async def receive_and_keep() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                request.add(message.get("body", b""))
            return message

        async def send_and_keep(message: Message) -> None:
            nonlocal status, response_type
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = message.get("headers")
                encoding = (_header(headers, b"content-encoding") or "identity").lower()
                # A compressed body is not readable text: store only its size.
                response_type = (
                    _header(headers, b"content-type") or ""
                    if encoding == "identity"
                    else "application/octet-stream"
                )
            elif message["type"] == "http.response.body":
                response.add(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive_and_keep, send_and_keep)
        finally:
            principal = scope.get("state", {}).get("principal")
            client = scope.get("client")
            history.record(
                HistoryEntry(
                    request_id=str(scope.get("state", {}).get("request_id", "")),
                    method=scope["method"],
                    path=scope["path"],
                    query=scope.get("query_string", b"").decode("latin-1"),
                    status_code=status,
                    duration_ms=round((time.perf_counter() - started) * 1000, 3),
                    client_ip=client[0] if client else None,
                    user_agent=_header(scope.get("headers"), b"user-agent"),
                    tenant_id=getattr(principal, "tenant_id", None),
                    principal_id=getattr(principal, "user_id", None),
                    request_body=bytes(request.kept),
                    request_content_type=_header(scope.get("headers"), b"content-type") or "",
                    request_body_bytes=max(request.total, _declared_length(scope)),
                    response_body=bytes(response.kept),
                    response_content_type=response_type,
                    response_body_bytes=response.total,
                    created_at=created_at,
                )
            )
