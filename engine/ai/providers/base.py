"""The provider interface and its payloads.

Providers retry nothing themselves: a failed call raises one of the errors
below and the caller decides (Temporal retries activities; the API answers).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from engine.platform.errors import WeftError

Role = Literal["system", "user", "assistant", "tool"]


class ChatMessage(BaseModel):
    role: Role
    content: str


class ChatRequest(BaseModel):
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, gt=0)


@dataclass(frozen=True)
class ChatResult:
    content: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = "stop"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class ChatChunk:
    """One streamed piece; the last one has ``done`` and the token counts."""

    delta: str = ""
    done: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None


@dataclass(frozen=True)
class EmbeddingResult:
    vectors: list[list[float]]
    model: str
    tokens: int


@dataclass(frozen=True)
class ModelInfo:
    name: str
    provider: str
    size: int | None = None
    modified_at: str | None = None
    digest: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


class ProviderError(WeftError):
    """The provider answered with an error or nonsense (retryable unless said otherwise)."""

    code = "MODEL_API_ERROR"
    retryable = True


class ProviderUnavailable(ProviderError):
    """Could not reach the provider, or it timed out."""

    code = "SERVICE_UNAVAILABLE"


class ProviderRateLimited(ProviderError):
    code = "RATE_LIMIT_EXCEEDED"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message, details={"retry_after": retry_after})
        self.retry_after = retry_after


class ModelNotAvailable(ProviderError):
    code = "MODEL_NOT_AVAILABLE"
    retryable = False


class ChatProvider(Protocol):
    name: str

    async def chat(self, request: ChatRequest) -> ChatResult: ...

    def stream_chat(self, request: ChatRequest) -> AsyncIterator[ChatChunk]: ...


class EmbeddingProvider(Protocol):
    name: str

    async def embed(self, texts: list[str], model: str) -> EmbeddingResult: ...
