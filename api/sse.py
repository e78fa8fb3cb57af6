"""Server-Sent Events for streamed chat answers.

The response always closes its ``ChatStream`` when it ends — finished, failed
or because the client went away (Starlette cancels the body on disconnect) —
and closing the stream closes the upstream HTTP stream, which stops the model.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from engine.ai.providers.base import ChatChunk
from engine.ai.streaming import ChatStream
from engine.platform.errors import WeftError

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
# For a route's ``responses=``: its 200 may be an event stream (one JSON object per event).
SSE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The answer; streamed, Server-Sent Events of `data: {json}` lines",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


def event(data: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def error_event(exc: WeftError) -> dict[str, Any]:
    return {"code": exc.code, "message": exc.message}


class ChatEventStream(StreamingResponse):
    def __init__(self, body: AsyncIterator[bytes], stream: ChatStream) -> None:
        super().__init__(body, media_type="text/event-stream", headers=SSE_HEADERS)
        self._stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # Shielded: the request may be cancelled, but the upstream must close
            # and the ledger row must be written.
            with anyio.CancelScope(shield=True):
                await self._stream.aclose()


def stream_events(
    stream: ChatStream,
    on_chunk: Callable[[ChatChunk], dict[str, Any] | None],
    on_done: Callable[[ChatStream], dict[str, Any]],
    on_error: Callable[[WeftError], dict[str, Any]],
) -> ChatEventStream:
    """An SSE response whose events the caller's three functions shape."""

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in stream:
                data = on_chunk(chunk)
                if data is not None:
                    yield event(data)
                if chunk.done:
                    yield event(on_done(stream))
                    return
        except WeftError as exc:
            yield event(on_error(exc))

    return ChatEventStream(body(), stream)
