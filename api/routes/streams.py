"""Live event streams: z2 ``/ws``, auterity ``/ws/executions``, zentoria
``/api/v1/mcp/stream`` (WebSockets), one execution's events as Server-Sent Events,
and ``/api/v1/events`` for clients that poll.

Every stream needs a credential and shows only the caller's tenant's events of
the types its scopes allow; the process's ``EventHub`` does the fan-out.
WebSockets take the credential as ``?token=``, ``Authorization: Bearer`` or
``X-API-Key`` (``/api/v1/mcp/stream`` also as ``token`` in the first message);
a bad or missing one closes the socket with 4401 before anything is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel
from temporalio.service import RPCError

from api.deps import Caller, ResourcesDep, requires
from api.envelope import Envelope, ok
from api.query import MAX_POSITION, Position
from api.resources import Resources
from api.sse import SSE_HEADERS
from engine.db.scope import TenantScope
from engine.events.catalog import ALL, Published, iso
from engine.events.hub import Subscription
from engine.events.streams import (
    SSE_HEARTBEAT,
    TERMINAL,
    ClientMessage,
    client_message,
    error_message,
    event_message,
    execution_update,
    notice,
    requested_types,
    sse_frame,
    stream_principal,
    visible_types,
)
from engine.identity.principals import Principal
from engine.mcp import commands
from engine.pipelines.executions import ExecutionNotFound
from engine.platform.errors import Forbidden, InvalidInput, WeftError

router = APIRouter(tags=["streams"])
log = logging.getLogger("weft.api")

Reader = Annotated[Caller, requires("workflows:read")]
Render = Callable[[Published], dict[str, Any] | None]

AUTH_WAIT_SECONDS = 10.0  # for the first message of a client that authenticates by message
HEARTBEAT_SECONDS = 15.0  # SSE comment while nothing happens
MAX_PAGE = 500
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TRY_AGAIN = 1013  # fell too far behind: reconnect (with ?after=<last seq>)
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_INTERNAL_ERROR = 1011
# The last events' rendered texts (by renderer and event id): every subscriber
# of an event gets the same text, so it is encoded once, not once per socket.
_RENDERED: OrderedDict[tuple[Render, str], str | None] = OrderedDict()
RENDERED_KEEP = 1024


class EventPublic(BaseModel):
    seq: int
    id: str
    event: str
    type: str
    subject: str | None
    timestamp: str
    data: dict[str, Any]

    @classmethod
    def of(cls, event: Published) -> EventPublic:
        return cls(
            seq=event.seq,
            id=event.id,
            event=event.type,
            type=event.type,
            subject=event.subject,
            timestamp=iso(event.timestamp),
            data=event.data,
        )


class EventsPublic(BaseModel):
    events: list[EventPublic]
    # Ask again with ``after=next_after`` for what comes next.
    next_after: int
    has_more: bool


EVENT_STREAM: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Server-Sent Events: `id: <seq>`, `event: <type>`, `data: <event JSON>`",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


# WebSockets.


def _credential(websocket: WebSocket) -> str | None:
    token = websocket.query_params.get("token") or websocket.headers.get("x-api-key")
    if token:
        return token
    scheme, _, value = websocket.headers.get("authorization", "").partition(" ")
    return (value.strip() or None) if scheme.lower() == "bearer" else None


async def _receive(websocket: WebSocket) -> str:
    """The next client message as text (binary frames are read as UTF-8)."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    text = message.get("text")
    return text if text is not None else (message.get("bytes") or b"").decode("utf-8", "replace")


def _position(value: str | None) -> int | None:
    """A client's resume position (``?after=`` / ``Last-Event-ID``); None if absent."""
    if value is None or value.strip() == "":
        return None
    if not value.strip().isdigit() or int(value.strip()) > MAX_POSITION:
        raise InvalidInput(f"the stream position must be a number, not {value[:40]!r}")
    return int(value.strip())


class Socket:
    """An accepted WebSocket whose sends never interleave."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self._lock = asyncio.Lock()

    async def send(self, message: dict[str, Any]) -> None:
        await self.send_text(json.dumps(message, separators=(",", ":")))

    async def send_text(self, text: str) -> None:
        async with self._lock:
            await self.websocket.send_text(text)

    async def close(self, code: int, reason: str = "") -> None:
        with contextlib.suppress(Exception):  # the client may be gone already
            await self.websocket.close(code, reason[:120])


async def _authenticate(
    socket: Socket, resources: Resources, credential: str | None
) -> Principal | None:
    try:
        return await stream_principal(resources.sessions, resources.settings, credential)
    except Forbidden as exc:
        await socket.close(CLOSE_FORBIDDEN, exc.message)
    except WeftError as exc:  # Unauthorized, InvalidApiKey
        await socket.close(CLOSE_UNAUTHORIZED, exc.message)
    return None


async def _answer(socket: Socket, subscription: Subscription, message: ClientMessage) -> None:
    if message.kind == "ping":
        await socket.send(notice("pong"))
    elif message.kind in ("subscribe", "unsubscribe"):
        types = message.types if message.types is None or ALL not in message.types else None
        narrowed = subscription.narrow(subject=message.subject, types=types)
        await socket.send(
            notice(
                "subscribed",
                {
                    "subject": narrowed.subject,
                    "execution_id": narrowed.subject,
                    "events": sorted(narrowed.types) if narrowed.types is not None else None,
                },
            )
        )
    elif message.kind == "auth":
        await socket.send(notice("authenticated", {"tenant_id": subscription.filter.tenant_id}))
    elif message.kind == "command":
        await _command(socket, subscription, message)
    elif message.kind == "invalid":
        await socket.send(error_message("VALIDATION_ERROR", "Messages are JSON objects"))
    else:
        await socket.send(
            error_message(
                "VALIDATION_ERROR",
                f"Unknown message type {message.raw_type!r}: send ping, subscribe, "
                "unsubscribe or command",
            )
        )


async def _command(socket: Socket, subscription: Subscription, message: ClientMessage) -> None:
    """Run a natural-language command as the stream's caller: the stream narrows to
    the command's events before it exists (none is missed), answers
    ``command.accepted``, then carries its progress to its end."""
    websocket = socket.websocket
    resources: Resources = websocket.app.state.resources
    principal: Principal = websocket.state.principal
    if not message.command or not message.command.strip():
        await socket.send(
            error_message("VALIDATION_ERROR", 'A command message needs a non-empty "command"')
        )
        return
    before = subscription.filter
    command_id = commands.new_command_id()
    subscription.narrow(subject=command_id)
    try:
        async with resources.sessions() as session:
            row = await commands.submit(
                TenantScope(session, principal.tenant_id, all_tenants=False),
                resources.temporal,
                resources.settings,
                resources.models,
                principal,
                message.command,
                command_id=command_id,
            )
    except (WeftError, RPCError) as exc:
        subscription.narrow(subject=before.subject, types=before.types)
        code, text = (
            (exc.code, exc.message)
            if isinstance(exc, WeftError)
            else ("SERVICE_UNAVAILABLE", "The workflow service is unavailable")
        )
        await socket.send(error_message(code, text))
        return
    accepted = {
        "command_id": row.id,
        "intent": row.intent,
        "entities": row.entities,
        "workflow_id": row.workflow_id,
        "status": row.status,
        "interpreted_by": row.interpreted_by,
    }
    await socket.send(notice("command.accepted", accepted))


def _rendered(render: Render, event: Published) -> str | None:
    """``render(event)`` as JSON text, made once per event for all of the process's sockets."""
    key = (render, event.id)
    if key in _RENDERED:
        return _RENDERED[key]
    message = render(event)
    text = None if message is None else json.dumps(message, separators=(",", ":"))
    _RENDERED[key] = text
    if len(_RENDERED) > RENDERED_KEEP:
        _RENDERED.popitem(last=False)
    return text


async def _pump(socket: Socket, subscription: Subscription, render: Render) -> None:
    async for event in subscription:
        text = _rendered(render, event)
        if text is not None:
            await socket.send_text(text)


async def _listen(socket: Socket, subscription: Subscription) -> None:
    while True:
        text = await _receive(socket.websocket)
        await _answer(socket, subscription, client_message(text))


async def _serve(websocket: WebSocket, render: Render, *, auth_by_message: bool = False) -> None:
    resources: Resources = websocket.app.state.resources
    await websocket.accept()
    socket = Socket(websocket)
    credential = _credential(websocket)
    early: list[ClientMessage] = []
    if credential is None and auth_by_message:
        try:
            async with asyncio.timeout(AUTH_WAIT_SECONDS):
                first = client_message(await _receive(websocket))
        except TimeoutError:
            await socket.close(CLOSE_UNAUTHORIZED, "No credential was sent")
            return
        except WebSocketDisconnect:
            return
        credential = first.token
        if first.kind not in ("auth", "ping"):
            early.append(first)  # a command, or a subscribe that also carried the token
    principal = await _authenticate(socket, resources, credential)
    if principal is None or principal.tenant_id is None:
        return
    websocket.state.principal = principal  # commands run as the stream's caller
    query = websocket.query_params
    try:
        after = _position(query.get("after") or query.get("last_event_id"))
    except InvalidInput as exc:
        await socket.close(CLOSE_POLICY, exc.message)
        return
    async with resources.hub.subscribe(
        principal.tenant_id,
        subject=query.get("execution_id") or query.get("subject"),
        types=visible_types(principal),
        after_seq=after,
    ) as subscription:
        try:
            await socket.send(
                notice(
                    "connected",
                    {"tenant_id": principal.tenant_id, "subject": subscription.filter.subject},
                )
            )
            for message in early:
                await _answer(socket, subscription, message)
        except WebSocketDisconnect:
            return
        await _run(socket, subscription, render)


async def _run(socket: Socket, subscription: Subscription, render: Render) -> None:
    pump = asyncio.create_task(_pump(socket, subscription, render))
    listen = asyncio.create_task(_listen(socket, subscription))
    try:
        await asyncio.wait({pump, listen}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (pump, listen):
            task.cancel()
        sent, heard = await asyncio.gather(pump, listen, return_exceptions=True)
    if isinstance(heard, WebSocketDisconnect) or isinstance(sent, WebSocketDisconnect):
        return  # the client left
    failure = next((r for r in (sent, heard) if isinstance(r, Exception)), None)
    if failure is not None:
        log.error("event stream failed", exc_info=failure)
        await socket.close(CLOSE_INTERNAL_ERROR, "The stream failed; reconnect with ?after=<seq>")
    elif subscription.overflowed:
        await socket.close(CLOSE_TRY_AGAIN, "Fell too far behind; reconnect with ?after=<seq>")
    else:
        await socket.close(CLOSE_GOING_AWAY, "The server is going away")


@router.websocket("/ws")
async def z2_stream(websocket: WebSocket) -> None:
    """z2: every event of the caller's tenant as ``{"type", "id", "timestamp", "data"}``."""
    await _serve(websocket, event_message)


@router.websocket("/ws/executions")
@router.websocket("/api/ws/executions")
async def execution_updates(websocket: WebSocket) -> None:
    """auterity: ``execution_update`` messages for the tenant's pipeline executions."""
    await _serve(websocket, execution_update)


@router.websocket("/api/v1/mcp/stream")
async def mcp_stream(websocket: WebSocket) -> None:
    """zentoria: the tenant's events; the first message may carry the token."""
    await _serve(websocket, event_message, auth_by_message=True)


# Server-Sent Events and polling.


@router.get(
    "/api/v1/executions/{execution_id}/events",
    response_class=StreamingResponse,
    responses=EVENT_STREAM,
    summary="An execution's events as Server-Sent Events (resumable with Last-Event-ID)",
    tags=["executions"],
)
async def read_execution_events(
    request: Request,
    execution_id: str,
    caller: Reader,
    resources: ResourcesDep,
    last_event_id: Annotated[int | None, Query(ge=0, le=MAX_POSITION)] = None,
) -> StreamingResponse:
    """Every event of the execution after ``Last-Event-ID`` (from its first without
    one), then live ones; the stream ends after the execution's terminal event."""
    header = _position(request.headers.get("last-event-id"))
    after = header if header is not None else (last_event_id or 0)
    hub = resources.hub
    if not await hub.knows(caller.tenant_id, execution_id):
        raise ExecutionNotFound(f"Execution {execution_id} not found")
    tenant_id, types = caller.tenant_id, visible_types(caller.principal)

    async def body() -> AsyncIterator[bytes]:
        async with hub.subscribe(
            tenant_id, subject=execution_id, types=types, after_seq=after
        ) as subscription:
            yield b"retry: 2000\n\n"
            while True:
                try:
                    event = await subscription.next(within=HEARTBEAT_SECONDS)
                except StopAsyncIteration:
                    return
                if event is None:
                    yield SSE_HEARTBEAT
                    continue
                yield sse_frame(event)
                if event.type in TERMINAL:
                    return

    return StreamingResponse(body(), media_type="text/event-stream", headers=SSE_HEADERS)


@router.get(
    "/api/v1/events",
    response_model=Envelope[EventsPublic],
    summary="The tenant's events after a stream position (polling instead of a stream)",
    tags=["events"],
)
async def read_events(
    request: Request,
    caller: Reader,
    resources: ResourcesDep,
    after: Position = 0,
    subject: Annotated[str | None, Query(max_length=120)] = None,
    types: Annotated[list[str] | None, Query(alias="type")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> JSONResponse:
    wanted = requested_types(visible_types(caller.principal), types)
    found = await resources.hub.backlog(
        caller.tenant_id, after, subject=subject, types=wanted, limit=limit + 1
    )
    page = found[:limit]
    data = EventsPublic(
        events=[EventPublic.of(event) for event in page],
        next_after=page[-1].seq if page else after,
        has_more=len(found) > limit,
    )
    return ok(data, request_id=request.state.request_id)
