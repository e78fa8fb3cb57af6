"""Chat: zentoria ``/ai/chat`` (``delta`` events) and sutazai ``/chat``,
``/chat/stream`` (``token``/``finish`` events) and ``/chat/batch``."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    field_validator,
    model_validator,
)

from api.deps import Caller, requires
from api.envelope import Envelope, ok
from api.model_deps import ModelsDep, call_context
from api.schemas.chat import (
    BatchAnsweredPublic,
    BatchFailedPublic,
    ChatBatchPublic,
    ChatCompletionPublic,
    ErrorEventPublic,
    SimpleChatEnvelope,
    SimpleChatPublic,
    TokenUsagePublic,
)
from api.schemas.text import NOT_BLANK, Said, is_blank
from api.sse import SSE_RESPONSES, error_event, stream_events
from engine.ai.chat import complete
from engine.ai.providers.base import ChatChunk, ChatMessage, ChatRequest
from engine.ai.streaming import open_stream
from engine.platform.errors import WeftError

router = APIRouter(prefix="/api/v1", tags=["chat"])
MAX_CONTENT = 200_000
BATCH_MAX = 20
BATCH_CONCURRENCY = 4


# What ``ChatBody`` checks, as the schema says it: some message is the user's, and
# no user message is blank.
USER_SAYS_SOMETHING: dict[str, Any] = {
    "if": {"properties": {"role": {"const": "user"}}},
    "then": {"properties": {"content": {"pattern": NOT_BLANK}}},
}
HAS_A_USER_MESSAGE: dict[str, Any] = {
    "contains": {"type": "object", "properties": {"role": {"const": "user"}}, "required": ["role"]}
}


class MessageIn(BaseModel):
    model_config = ConfigDict(json_schema_extra=USER_SAYS_SOMETHING)

    role: Literal["system", "user", "assistant", "tool"]
    content: str = Field(max_length=MAX_CONTENT)


class ChatBody(BaseModel):
    """zentoria ``POST /ai/chat``."""

    messages: list[MessageIn] = Field(
        min_length=1, max_length=500, json_schema_extra=HAS_A_USER_MESSAGE
    )
    model: str | None = Field(default=None, max_length=300)
    temperature: StrictFloat = Field(default=0.7, ge=0.0, le=2.0)
    max_tokens: StrictInt | None = Field(default=None, gt=0)
    stream: StrictBool = False
    fallback_model: str | None = Field(default=None, max_length=300)

    @field_validator("messages")
    @classmethod
    def _has_a_question(cls, value: list[MessageIn]) -> list[MessageIn]:
        users = [m for m in value if m.role == "user"]
        if not users:
            raise ValueError("at least one user message is required")
        if any(is_blank(m.content) for m in users):
            raise ValueError("a user message is empty")
        return value

    def chat_request(self) -> ChatRequest:
        return ChatRequest(
            model=self.model or "",
            messages=[ChatMessage(role=m.role, content=m.content) for m in self.messages],
            temperature=self.temperature,
            max_tokens=self.max_tokens,
        )


class SimpleChatBody(BaseModel):
    """sutazai ``POST /chat`` (and each item of ``/chat/batch``)."""

    message: Said = Field(min_length=1, max_length=MAX_CONTENT)
    model: str | None = Field(default=None, max_length=300)
    system: str | None = Field(default=None, max_length=MAX_CONTENT)
    temperature: StrictFloat = Field(default=0.7, ge=0.0, le=2.0)
    max_tokens: StrictInt | None = Field(default=None, gt=0)
    fallback_model: str | None = Field(default=None, max_length=300)

    def chat_request(self) -> ChatRequest:
        messages = [ChatMessage(role="system", content=self.system)] if self.system else []
        messages.append(ChatMessage(role="user", content=self.message))
        return ChatRequest(
            model=self.model or "",
            messages=messages,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
        )


BATCH_DEFAULTS = ("model", "system", "temperature", "max_tokens", "fallback_model")
BATCH_LISTS = ("requests", "messages", "prompts")  # the first one present is the list


def _batch_schema(schema: dict[str, Any]) -> None:
    """Every shape ``BatchBody`` takes: an object whose ``requests`` (else
    ``messages``, else ``prompts``) is the list, with the defaults beside it, or
    the bare list; an item is a ``/chat`` body or just its message."""
    properties = schema["properties"]
    item = {
        "anyOf": [
            properties["requests"]["items"],
            {"type": "string", "minLength": 1, "maxLength": MAX_CONTENT, "pattern": NOT_BLANK},
        ]
    }
    items = {"type": "array", "items": item, "minItems": 1, "maxItems": BATCH_MAX}
    defaults = {key: properties[key] for key in BATCH_DEFAULTS}
    shapes: list[dict[str, Any]] = []
    for index, key in enumerate(BATCH_LISTS):
        shape: dict[str, Any] = {
            "type": "object",
            "properties": {key: items, **defaults},
            "required": [key],
        }
        if index:
            shape["not"] = {"anyOf": [{"required": [earlier]} for earlier in BATCH_LISTS[:index]]}
        shapes.append(shape)
    title = schema.get("title")
    schema.clear()
    schema.update(title=title, anyOf=[*shapes, items])


class BatchBody(BaseModel):
    """``{"requests": [...]}``; also a bare list, or ``messages``/``prompts``. An item
    is a ``/chat`` body or just its message; ``model``, ``temperature``, … next to
    the list apply to every item that does not set its own."""

    model_config = ConfigDict(json_schema_extra=_batch_schema)

    requests: list[SimpleChatBody] = Field(min_length=1, max_length=BATCH_MAX)
    # The defaults, checked here as well: an item that sets its own does not make
    # an invalid default valid.
    model: str | None = Field(default=None, max_length=300)
    system: str | None = Field(default=None, max_length=MAX_CONTENT)
    temperature: StrictFloat = Field(default=0.7, ge=0.0, le=2.0)
    max_tokens: StrictInt | None = Field(default=None, gt=0)
    fallback_model: str | None = Field(default=None, max_length=300)

    @model_validator(mode="before")
    @classmethod
    def _shapes(cls, value: Any) -> Any:
        if isinstance(value, list):
            value = {"requests": value}
        if not isinstance(value, dict):
            return value
        items = next((value[k] for k in BATCH_LISTS if k in value), None)
        if not isinstance(items, list):
            return value
        shared = {k: value[k] for k in BATCH_DEFAULTS if k in value}
        return {
            **shared,
            "requests": [
                {**shared, "message": item} if isinstance(item, str)
                else {**shared, **item} if isinstance(item, dict) else item
                for item in items
            ],
        }  # fmt: skip


def _delta(chunk: ChatChunk) -> dict[str, Any] | None:
    return {"delta": chunk.delta} if chunk.delta else None


def _token(chunk: ChatChunk) -> dict[str, Any] | None:
    return {"token": chunk.delta, "finish": False} if chunk.delta else None


@router.post(
    "/ai/chat",
    response_model=Envelope[ChatCompletionPublic],
    responses=SSE_RESPONSES,
    summary="Chat completion (stream: true answers Server-Sent Events)",
)
async def create_chat_completion(
    request: Request,
    caller: Annotated[Caller, requires("ai:chat")],
    models: ModelsDep,
    body: ChatBody,
) -> Any:
    ctx = call_context(request, caller)
    if not body.stream:
        outcome = await complete(
            models, ctx, body.chat_request(), fallback_model=body.fallback_model
        )
        return ok(ChatCompletionPublic.of(outcome), request_id=ctx.request_id)
    stream = await open_stream(models, ctx, body.chat_request(), fallback_model=body.fallback_model)

    def done(s: Any) -> dict[str, Any]:
        data: dict[str, Any] = {"done": True, "id": s.id, "model": s.model, "provider": s.provider}
        if s.outcome is not None:
            data["usage"] = TokenUsagePublic(
                prompt_tokens=s.outcome.prompt_tokens,
                completion_tokens=s.outcome.completion_tokens,
                total_tokens=s.outcome.total_tokens,
            ).model_dump()
            data["finish_reason"] = s.outcome.finish_reason
        return data

    return stream_events(
        stream, _delta, done, lambda exc: {"error": error_event(exc), "done": True}
    )


@router.post(
    "/chat",
    response_model=SimpleChatEnvelope,
    summary="Chat with one message (sutazai shape)",
)
async def create_chat(
    request: Request,
    caller: Annotated[Caller, requires("ai:chat")],
    models: ModelsDep,
    body: SimpleChatBody,
) -> JSONResponse:
    ctx = call_context(request, caller)
    outcome = await complete(models, ctx, body.chat_request(), fallback_model=body.fallback_model)
    sutazai = {"response": outcome.content, "model": outcome.model,
               "tokens_used": outcome.total_tokens}  # fmt: skip
    return ok(SimpleChatPublic.of(outcome), request_id=ctx.request_id, top_level=sutazai)


@router.post(
    "/chat/stream",
    response_class=StreamingResponse,
    responses=SSE_RESPONSES,
    summary="Streamed chat (Server-Sent Events, token/finish events)",
)
async def create_chat_stream(
    request: Request,
    caller: Annotated[Caller, requires("ai:chat")],
    models: ModelsDep,
    body: SimpleChatBody,
) -> Any:
    ctx = call_context(request, caller)
    stream = await open_stream(models, ctx, body.chat_request(), fallback_model=body.fallback_model)

    def finish(s: Any) -> dict[str, Any]:
        tokens = s.outcome.total_tokens if s.outcome is not None else None
        return {"finish": True, "tokens_used": tokens, "model": s.model, "provider": s.provider}

    return stream_events(
        stream, _token, finish, lambda exc: {"error": error_event(exc), "finish": True}
    )


@router.post(
    "/chat/batch",
    response_model=Envelope[ChatBatchPublic],
    summary="Several chats at once (each succeeds or fails alone)",
)
async def create_chat_batch(
    request: Request,
    caller: Annotated[Caller, requires("ai:chat")],
    models: ModelsDep,
    body: BatchBody,
) -> JSONResponse:
    ctx = call_context(request, caller, kind="batch")
    gate = asyncio.Semaphore(BATCH_CONCURRENCY)

    async def one(index: int, item: SimpleChatBody) -> BatchAnsweredPublic | BatchFailedPublic:
        async with gate:
            try:
                outcome = await complete(
                    models, ctx, item.chat_request(), fallback_model=item.fallback_model
                )
            except WeftError as exc:
                return BatchFailedPublic(index=index, success=False, error=ErrorEventPublic.of(exc))
        return BatchAnsweredPublic(index=index, success=True, data=SimpleChatPublic.of(outcome))

    results = await asyncio.gather(*(one(i, item) for i, item in enumerate(body.requests)))
    succeeded = sum(1 for r in results if r.success)
    data = ChatBatchPublic(
        results=list(results),
        total=len(results),
        succeeded=succeeded,
        failed=len(results) - succeeded,
    )
    return ok(data, request_id=ctx.request_id)
