"""Streamed chat: the same guards as ``engine.ai.chat``, one chunk at a time.

``open_stream`` waits for the first chunk before it returns, so a refused or
failed call (breaker open, model missing, budget, upstream error) surfaces as
an ordinary error with its status instead of a broken stream, and a fallback
model can still take over. Closing a ``ChatStream`` early (the client left)
closes the upstream HTTP stream, which stops the generation.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from engine.ai.chat import (
    ChatOutcome,
    Prepared,
    estimate_tokens,
    finish,
    guard,
    new_completion_id,
    prepare,
    record_failure,
    served_from_cache,
    with_fallback,
)
from engine.ai.providers.base import ChatChunk, ChatRequest, ProviderError
from engine.ai.providers.registry import Resolved
from engine.ai.runtime import CallContext, ModelRuntime

CLIENT_DISCONNECTED = "CLIENT_DISCONNECTED"


async def _replay(outcome: ChatOutcome) -> AsyncIterator[ChatChunk]:
    yield ChatChunk(delta=outcome.content)
    yield ChatChunk(
        done=True,
        prompt_tokens=outcome.prompt_tokens,
        completion_tokens=outcome.completion_tokens,
        finish_reason=outcome.finish_reason,
    )


class ChatStream:
    """Chunks of one streamed answer; ``outcome`` is set once it is done."""

    def __init__(
        self,
        rt: ModelRuntime,
        ctx: CallContext,
        prepared: Prepared | None,
        upstream: AsyncIterator[ChatChunk],
        *,
        model: str,
        provider: str,
        first: ChatChunk | None = None,
        outcome: ChatOutcome | None = None,
        started: float | None = None,
    ) -> None:
        self.rt, self.ctx, self.prepared = rt, ctx, prepared
        self.model, self.provider = model, provider
        self.id = outcome.id if outcome else new_completion_id()
        self.outcome = outcome
        self.cached = outcome is not None and outcome.cached
        self.fallback_from: str | None = None
        self._upstream = upstream
        self._pending = first
        self._parts: list[str] = []
        self._started = started if started is not None else time.perf_counter()
        self._closed = False

    def __aiter__(self) -> ChatStream:
        return self

    async def __anext__(self) -> ChatChunk:
        if self._closed:
            raise StopAsyncIteration
        if self._pending is not None:
            chunk, self._pending = self._pending, None
        else:
            try:
                chunk = await anext(self._upstream)
            except StopAsyncIteration:
                await self._fail(ProviderError(f"{self.provider} ended the stream early"))
                raise ProviderError(f"{self.provider} ended the stream early") from None
            except ProviderError as exc:
                await self._fail(exc)
                raise
        self._parts.append(chunk.delta)
        if chunk.done:
            self._closed = True
            await _close(self._upstream)
            if self.prepared is not None:
                self.outcome = await finish(
                    self.rt,
                    self.ctx,
                    self.prepared,
                    content="".join(self._parts),
                    model=self.model,
                    prompt_tokens=chunk.prompt_tokens,
                    completion_tokens=chunk.completion_tokens,
                    finish_reason=chunk.finish_reason or "stop",
                    latency_ms=self._elapsed_ms(),
                )
                self.id = self.outcome.id
        return chunk

    def _elapsed_ms(self) -> float:
        return (time.perf_counter() - self._started) * 1000

    async def _fail(self, exc: Exception) -> None:
        self._closed = True
        await _close(self._upstream)
        if self.prepared is not None:
            await record_failure(self.rt, self.ctx, self.prepared, exc, self._elapsed_ms())

    async def aclose(self) -> None:
        """Stop early: close the upstream stream and record what was generated."""
        if self._closed:
            return
        self._closed = True
        await _close(self._upstream)
        prepared = self.prepared
        if prepared is None:
            return
        if prepared.breaker is not None:
            prepared.breaker.release()
        completion = estimate_tokens("".join(self._parts))
        await self.rt.record(
            self.ctx,
            provider=self.provider,
            model=self.model,
            prompt_tokens=prepared.prompt_estimate,
            completion_tokens=completion,
            latency_ms=round(self._elapsed_ms(), 2),
            cost_usd=prepared.price.cost(prepared.prompt_estimate, completion),
            success=False,
            error_code=CLIENT_DISCONNECTED,
        )


async def _close(upstream: AsyncIterator[ChatChunk]) -> None:
    aclose = getattr(upstream, "aclose", None)
    if aclose is not None:
        await aclose()


async def open_stream_on(
    rt: ModelRuntime, ctx: CallContext, target: Resolved, request: ChatRequest
) -> ChatStream:
    prepared = await prepare(rt, ctx, target, request, use_cache=True)
    cached = await served_from_cache(rt, ctx, prepared)
    if cached is not None:
        replay = _replay(cached)
        return ChatStream(
            rt, ctx, None, replay, model=cached.model, provider=cached.provider, outcome=cached
        )
    prepared = await guard(rt, ctx, prepared)
    upstream = target.entry.client.stream_chat(prepared.request)
    started = time.perf_counter()
    try:
        first = await anext(upstream)
    except (ProviderError, StopAsyncIteration) as exc:
        await _close(upstream)
        error = exc if isinstance(exc, ProviderError) else ProviderError("empty stream")
        await record_failure(rt, ctx, prepared, error, (time.perf_counter() - started) * 1000)
        raise error from None
    except BaseException:
        await _close(upstream)
        if prepared.breaker is not None:
            prepared.breaker.release()
        raise
    return ChatStream(
        rt,
        ctx,
        prepared,
        upstream,
        model=target.model,
        provider=target.entry.name,
        first=first,
        started=started,
    )


async def open_stream(
    rt: ModelRuntime, ctx: CallContext, request: ChatRequest, *, fallback_model: str | None = None
) -> ChatStream:
    """Start a streamed answer (the first chunk is already in hand when this returns)."""

    async def call(target: Resolved) -> ChatStream:
        return await open_stream_on(rt, ctx, target, request)

    stream, fallback_from = await with_fallback(rt, request, fallback_model, call)
    stream.fallback_from = fallback_from
    return stream
