"""Chat answers: zentoria ``/ai/chat``, sutazai ``/chat``, ``/chat/batch`` and
``/models/test``, the cache warm-up, and auterity's routed answers."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from api.envelope import Envelope
from engine.ai.chat import ChatOutcome
from engine.platform.errors import WeftError


class ErrorEventPublic(BaseModel):
    """A failure inside a successful answer (one batch item, one stream)."""

    code: str
    message: str

    @classmethod
    def of(cls, exc: WeftError) -> ErrorEventPublic:
        return cls(code=exc.code, message=exc.message)


class AssistantMessagePublic(BaseModel):
    role: Literal["assistant"]
    content: str


class ChoicePublic(BaseModel):
    index: int
    message: AssistantMessagePublic
    finish_reason: str


class TokenUsagePublic(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletionPublic(BaseModel):
    """zentoria ``/ai/chat``: OpenAI's chat.completion with cost, latency and cache."""

    id: str
    object: Literal["chat.completion"]
    model: str
    provider: str
    choices: list[ChoicePublic]
    usage: TokenUsagePublic
    cost_usd: float
    latency_ms: float
    cached: bool
    fallback_from: str | None

    @classmethod
    def of(cls, outcome: ChatOutcome) -> ChatCompletionPublic:
        return cls(
            id=outcome.id,
            object="chat.completion",
            model=outcome.model,
            provider=outcome.provider,
            choices=[
                ChoicePublic(
                    index=0,
                    message=AssistantMessagePublic(role="assistant", content=outcome.content),
                    finish_reason=outcome.finish_reason,
                )
            ],
            usage=TokenUsagePublic(
                prompt_tokens=outcome.prompt_tokens,
                completion_tokens=outcome.completion_tokens,
                total_tokens=outcome.total_tokens,
            ),
            cost_usd=outcome.cost_usd,
            latency_ms=outcome.latency_ms,
            cached=outcome.cached,
            fallback_from=outcome.fallback_from,
        )


class SimpleChatPublic(BaseModel):
    """sutazai ``/chat``: the reply and what it cost."""

    response: str
    model: str
    provider: str
    tokens_used: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_ms: float
    cached: bool
    fallback_from: str | None

    @classmethod
    def of(cls, outcome: ChatOutcome) -> SimpleChatPublic:
        return cls(
            response=outcome.content,
            model=outcome.model,
            provider=outcome.provider,
            tokens_used=outcome.total_tokens,
            prompt_tokens=outcome.prompt_tokens,
            completion_tokens=outcome.completion_tokens,
            cost_usd=outcome.cost_usd,
            latency_ms=outcome.latency_ms,
            cached=outcome.cached,
            fallback_from=outcome.fallback_from,
        )


class ModelTestPublic(SimpleChatPublic):
    success: bool

    @classmethod
    def of(cls, outcome: ChatOutcome, *, success: bool = True) -> ModelTestPublic:
        return cls(**SimpleChatPublic.of(outcome).model_dump(), success=success)


class SimpleChatEnvelope(Envelope[SimpleChatPublic]):
    """The envelope, with sutazai's documented response (``response``, ``model``,
    ``tokens_used``) also at the top level, for clients that read it there."""

    response: str
    model: str
    tokens_used: int


class BatchAnsweredPublic(BaseModel):
    index: int
    success: Literal[True]
    data: SimpleChatPublic


class BatchFailedPublic(BaseModel):
    index: int
    success: Literal[False]
    error: ErrorEventPublic


class ChatBatchPublic(BaseModel):
    """Each request succeeds or fails alone, in the order sent."""

    results: list[BatchAnsweredPublic | BatchFailedPublic]
    total: int
    succeeded: int
    failed: int


class WarmedPublic(BaseModel):
    index: int
    warmed: Literal[True]
    already_cached: bool


class WarmFailedPublic(BaseModel):
    index: int
    warmed: Literal[False]
    error: ErrorEventPublic


class CacheWarmPublic(BaseModel):
    results: list[WarmedPublic | WarmFailedPublic]
    warmed: int


class AiRoutePublic(BaseModel):
    """auterity ``/api/ai/route``: the answer of the model routing picked."""

    response: str
    model_used: str
    provider: str
    cost: float
    tokens_used: int
    routing_reason: str
    response_time: float
    quality_score: float
    confidence_score: float
    fallback_from: str | None
    cached: bool
    alternatives_considered: int


class RouteAlternativePublic(BaseModel):
    model: str
    provider: str
    estimated_cost: float
    latency_ms: float


class ModelRoutePublic(BaseModel):
    """auterity ``/api/models/route``: which model routing would pick (no call made)."""

    model: str
    provider: str
    estimated_cost: float
    estimated_tokens: int
    confidence_score: float
    routing_reason: str
    alternatives: list[RouteAlternativePublic]
    excluded: dict[str, str]
