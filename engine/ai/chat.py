"""Chat completions: resolve the model, guard the call, record what it cost.

Every call goes through the same steps: resolve the provider, serve a
deterministic request from the cache, refuse it when the tenant's hard budget
would be exceeded, ask the provider's circuit breaker, call, then feed the
breaker and the rolling stats and write one ledger row — failures included.
A ``fallback_model`` is tried when the primary's breaker is open or its call
fails.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TypeVar

from engine.ai.breakers import CircuitBreaker, CircuitOpen
from engine.ai.providers.base import ChatMessage, ChatRequest, ModelNotAvailable, ProviderError
from engine.ai.providers.registry import Resolved
from engine.ai.response_cache import CachedAnswer, cache_key
from engine.ai.runtime import CallContext, ModelRuntime
from engine.ai.usage import Price, price_for
from engine.events.catalog import excerpt
from engine.platform.errors import InvalidInput

T = TypeVar("T")

# What a call without max_tokens is assumed to produce, for budget checks.
COMPLETION_ESTIMATE = 512


def estimate_tokens(text: str) -> int:
    """About four characters a token: for budgets, and for providers that do not count."""
    return max(1, math.ceil(len(text) / 4)) if text else 0


def estimate_prompt(messages: list[ChatMessage]) -> int:
    return sum(estimate_tokens(m.content) + 4 for m in messages)


def new_completion_id() -> str:
    return f"chat_{secrets.token_hex(12)}"


@dataclass(frozen=True)
class ChatOutcome:
    id: str
    content: str
    model: str
    provider: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    cost_usd: float
    latency_ms: float
    cached: bool = False
    fallback_from: str | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Prepared:
    """A call that passed its checks and may go out."""

    target: Resolved
    request: ChatRequest
    price: Price
    prompt_estimate: int
    breaker: CircuitBreaker | None
    cache_key: str | None

    @property
    def provider(self) -> str:
        return self.target.entry.name

    @property
    def stats_key(self) -> str:
        return f"{self.provider}/{self.target.model}"


def counts_against_provider(exc: Exception) -> bool:
    """The provider's own failure (feeds its breaker), not the caller's mistake."""
    return isinstance(exc, ProviderError) and not isinstance(exc, ModelNotAvailable)


def should_fall_back(exc: Exception) -> bool:
    return isinstance(exc, CircuitOpen | ProviderError)


def check_limits(rt: ModelRuntime, request: ChatRequest) -> None:
    if request.max_tokens and request.max_tokens > rt.settings.model_max_tokens:
        raise InvalidInput(
            f"max_tokens may be at most {rt.settings.model_max_tokens}",
            details={"field": "max_tokens", "limit": rt.settings.model_max_tokens},
        )


async def prepare(
    rt: ModelRuntime, ctx: CallContext, target: Resolved, request: ChatRequest, *, use_cache: bool
) -> Prepared:
    """Validate the request against the model; price it; key it for the cache."""
    request = request.model_copy(update={"model": target.model})
    check_limits(rt, request)
    prompt_estimate = estimate_prompt(request.messages)
    spec = target.spec
    if spec is not None and spec.context_window:
        needed = prompt_estimate + (request.max_tokens or 0)
        if needed > spec.context_window:
            raise InvalidInput(
                f"The request needs about {needed} tokens; {target.model} holds "
                f"{spec.context_window}",
                details={"field": "messages", "context_window": spec.context_window},
            )
    price = price_for(target.model, await rt.registry.price_table())
    key = None
    if use_cache and request.temperature == 0:
        key = cache_key(f"{target.entry.name}/{target.model}", request.messages, request.max_tokens)
    return Prepared(target, request, price, prompt_estimate, None, key)


async def guard(rt: ModelRuntime, ctx: CallContext, prepared: Prepared) -> Prepared:
    """Refuse a call past a hard budget, or to a provider whose breaker is open."""
    estimate = prepared.price.cost(
        prepared.prompt_estimate, prepared.request.max_tokens or COMPLETION_ESTIMATE
    )
    await rt.check_budget(ctx.tenant_id, estimate)
    if prepared.target.entry.kind == "local":
        return prepared
    breaker = rt.breakers.get(prepared.provider)
    breaker.check()
    return replace(prepared, breaker=breaker)


async def served_from_cache(
    rt: ModelRuntime, ctx: CallContext, prepared: Prepared
) -> ChatOutcome | None:
    if prepared.cache_key is None:
        return None
    hit = await rt.cache.get(ctx.tenant_id, prepared.cache_key)
    if hit is None:
        return None
    outcome = ChatOutcome(
        id=new_completion_id(),
        content=hit.content,
        model=hit.model,
        provider=hit.provider,
        prompt_tokens=hit.prompt_tokens,
        completion_tokens=hit.completion_tokens,
        finish_reason=hit.finish_reason,
        cost_usd=0.0,
        latency_ms=0.0,
        cached=True,
    )
    await record_outcome(rt, ctx, outcome, prepared.request)
    return outcome


def response_event(request: ChatRequest, outcome: ChatOutcome) -> dict[str, object]:
    """zentoria's ``ai.response`` payload ({query, answer, model}), texts cut short."""
    asked = [m.content for m in request.messages if m.role == "user"]
    return {
        "query": excerpt(asked[-1] if asked else ""),
        "answer": excerpt(outcome.content),
        "model": outcome.model,
        "provider": outcome.provider,
        "completion_id": outcome.id,
        "total_tokens": outcome.total_tokens,
        "cached": outcome.cached,
    }


async def record_outcome(
    rt: ModelRuntime, ctx: CallContext, outcome: ChatOutcome, request: ChatRequest
) -> None:
    await rt.record(
        ctx,
        response=response_event(request, outcome),
        provider=outcome.provider,
        model=outcome.model,
        prompt_tokens=outcome.prompt_tokens,
        completion_tokens=outcome.completion_tokens,
        latency_ms=outcome.latency_ms,
        cost_usd=outcome.cost_usd,
        success=True,
        cached=outcome.cached,
    )


async def record_failure(
    rt: ModelRuntime, ctx: CallContext, prepared: Prepared, exc: Exception, latency_ms: float
) -> None:
    """Feed the breaker and the stats, and write the failed call to the ledger."""
    if prepared.breaker is not None:
        if counts_against_provider(exc):
            prepared.breaker.record_failure(getattr(exc, "code", "ERROR"))
        else:
            prepared.breaker.release()
    await rt.stats.record(prepared.stats_key, latency_ms, ok=False)
    await rt.record(
        ctx,
        provider=prepared.provider,
        model=prepared.target.model,
        prompt_tokens=0,
        completion_tokens=0,
        latency_ms=latency_ms,
        cost_usd=0.0,
        success=False,
        error_code=getattr(exc, "code", "ERROR"),
    )


async def finish(
    rt: ModelRuntime,
    ctx: CallContext,
    prepared: Prepared,
    *,
    content: str,
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    finish_reason: str,
    latency_ms: float,
) -> ChatOutcome:
    """A successful call: breaker, stats, cache and ledger."""
    if prepared.breaker is not None:
        prepared.breaker.record_success()
    await rt.stats.record(prepared.stats_key, latency_ms, ok=True)
    prompt = prompt_tokens or prepared.prompt_estimate
    completion = completion_tokens or estimate_tokens(content)
    outcome = ChatOutcome(
        id=new_completion_id(),
        content=content,
        model=model,
        provider=prepared.provider,
        prompt_tokens=prompt,
        completion_tokens=completion,
        finish_reason=finish_reason,
        cost_usd=prepared.price.cost(prompt, completion),
        latency_ms=round(latency_ms, 2),
    )
    await record_outcome(rt, ctx, outcome, prepared.request)
    if prepared.cache_key is not None:
        answer = CachedAnswer(content, model, prepared.provider, prompt, completion, finish_reason)
        await rt.cache.put(ctx.tenant_id, prepared.cache_key, answer)
    return outcome


async def complete_on(
    rt: ModelRuntime,
    ctx: CallContext,
    target: Resolved,
    request: ChatRequest,
    *,
    use_cache: bool = True,
) -> ChatOutcome:
    """One chat call on an already chosen provider and model."""
    prepared = await prepare(rt, ctx, target, request, use_cache=use_cache)
    cached = await served_from_cache(rt, ctx, prepared)
    if cached is not None:
        return cached
    prepared = await guard(rt, ctx, prepared)
    started = time.perf_counter()
    try:
        result = await target.entry.client.chat(prepared.request)
    except ProviderError as exc:
        await record_failure(rt, ctx, prepared, exc, (time.perf_counter() - started) * 1000)
        raise
    except BaseException:
        if prepared.breaker is not None:
            prepared.breaker.release()
        raise
    return await finish(
        rt,
        ctx,
        prepared,
        content=result.content,
        model=result.model,
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        finish_reason=result.finish_reason,
        latency_ms=(time.perf_counter() - started) * 1000,
    )


async def with_fallback(
    rt: ModelRuntime,
    request: ChatRequest,
    fallback_model: str | None,
    call: Callable[[Resolved], Awaitable[T]],
) -> tuple[T, str | None]:
    """Run ``call`` on ``request.model`` (empty: the default) and, when the
    provider fails or its breaker is open, once more on ``fallback_model``.

    Plain and streamed chat share this loop. Returns the result and, when the
    fallback answered, the ``provider/model`` it stood in for.
    """
    check_limits(rt, request)
    primary = await rt.registry.resolve(request.model or None)
    try:
        return await call(primary), None
    except Exception as exc:
        if not fallback_model or not should_fall_back(exc):
            raise
        fallback = await rt.registry.resolve(fallback_model)
        if (fallback.entry.name, fallback.model) == (primary.entry.name, primary.model):
            raise
        return await call(fallback), f"{primary.entry.name}/{primary.model}"


async def complete(
    rt: ModelRuntime,
    ctx: CallContext,
    request: ChatRequest,
    *,
    fallback_model: str | None = None,
    use_cache: bool = True,
) -> ChatOutcome:
    """A chat call on ``request.model`` (empty: the default), with an optional fallback."""

    async def call(target: Resolved) -> ChatOutcome:
        return await complete_on(rt, ctx, target, request, use_cache=use_cache)

    outcome, fallback_from = await with_fallback(rt, request, fallback_model, call)
    return replace(outcome, fallback_from=fallback_from) if fallback_from else outcome
