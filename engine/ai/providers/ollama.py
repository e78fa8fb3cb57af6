"""Ollama over its HTTP API (``/api/chat``, ``/api/generate``, ``/api/tags``,
``/api/pull``, ``/api/delete``, ``/api/show``, ``/api/embed``).

Streams are NDJSON: one JSON object a line, the last with ``"done": true`` and
the token counts. An ``{"error": ...}`` line mid-stream is a provider error.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from engine.ai.providers.base import (
    ChatChunk,
    ChatRequest,
    ChatResult,
    EmbeddingResult,
    ModelInfo,
    ModelNotAvailable,
    ProviderError,
)
from engine.ai.providers.http import HttpEndpoint
from engine.platform.settings import Settings


@dataclass(frozen=True)
class PullProgress:
    """One line of ``/api/pull``'s progress stream."""

    status: str
    digest: str | None = None
    total: int | None = None
    completed: int | None = None


def _line(provider: str, text: str) -> dict[str, Any] | None:
    if not text.strip():
        return None
    try:
        data = json.loads(text)
    except ValueError:
        raise ProviderError(f"{provider} streamed a malformed line") from None
    if not isinstance(data, dict):
        raise ProviderError(f"{provider} streamed a malformed line")
    if data.get("error"):
        raise ProviderError(f"{provider}: {str(data['error'])[:300]}")
    return data


class OllamaProvider:
    """ChatProvider and EmbeddingProvider for one Ollama server."""

    kind = "ollama"

    def __init__(
        self,
        name: str,
        base_url: str,
        api_key: str | None = None,
        *,
        http: httpx.AsyncClient,
        settings: Settings,
        tenant: bool = False,
    ) -> None:
        self.name = name
        base = base_url.rstrip("/").removesuffix("/api")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._api = HttpEndpoint(name, base, http, settings, headers, tenant=tenant)

    def _chat_body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        options: dict[str, Any] = {"temperature": request.temperature}
        if request.max_tokens:
            options["num_predict"] = request.max_tokens
        return {
            "model": request.model,
            "messages": [m.model_dump() for m in request.messages],
            "stream": stream,
            "options": options,
        }

    async def chat(self, request: ChatRequest) -> ChatResult:
        data = await self._api.call(
            "POST",
            "/api/chat",
            json_body=self._chat_body(request, stream=False),
            model=request.model,
        )
        message = data.get("message") if isinstance(data, dict) else None
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise ProviderError(f"{self.name} answered without a message")
        return ChatResult(
            content=message["content"],
            model=str(data.get("model") or request.model),
            prompt_tokens=int(data.get("prompt_eval_count") or 0),
            completion_tokens=int(data.get("eval_count") or 0),
            finish_reason=str(data.get("done_reason") or "stop"),
        )

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        body = self._chat_body(request, stream=True)
        async with self._api.stream("POST", "/api/chat", json_body=body, model=request.model) as r:
            async for text in r.aiter_lines():
                data = _line(self.name, text)
                if data is None:
                    continue
                delta = str((data.get("message") or {}).get("content") or "")
                if data.get("done"):
                    if delta:
                        yield ChatChunk(delta=delta)
                    yield ChatChunk(
                        done=True,
                        prompt_tokens=int(data.get("prompt_eval_count") or 0),
                        completion_tokens=int(data.get("eval_count") or 0),
                        finish_reason=str(data.get("done_reason") or "stop"),
                    )
                    return
                if delta:
                    yield ChatChunk(delta=delta)
        raise ProviderError(f"{self.name} ended the stream without finishing")

    async def generate(
        self, model: str, prompt: str, *, temperature: float = 0.7, max_tokens: int | None = None
    ) -> ChatResult:
        options: dict[str, Any] = {"temperature": temperature}
        if max_tokens:
            options["num_predict"] = max_tokens
        body = {"model": model, "prompt": prompt, "stream": False, "options": options}
        data = await self._api.call("POST", "/api/generate", json_body=body, model=model)
        if not isinstance(data, dict) or not isinstance(data.get("response"), str):
            raise ProviderError(f"{self.name} answered without a response")
        return ChatResult(
            content=data["response"],
            model=str(data.get("model") or model),
            prompt_tokens=int(data.get("prompt_eval_count") or 0),
            completion_tokens=int(data.get("eval_count") or 0),
            finish_reason=str(data.get("done_reason") or "stop"),
        )

    async def list_models(self) -> list[ModelInfo]:
        data = await self._api.call("GET", "/api/tags")
        models = data.get("models") if isinstance(data, dict) else None
        if not isinstance(models, list):
            raise ProviderError(f"{self.name} answered /api/tags without models")
        return [
            ModelInfo(
                name=str(m.get("name") or m.get("model")),
                provider=self.name,
                size=m.get("size"),
                modified_at=m.get("modified_at"),
                digest=m.get("digest"),
                details=m.get("details") or {},
            )
            for m in models
            if isinstance(m, dict) and (m.get("name") or m.get("model"))
        ]

    async def show(self, model: str) -> dict[str, Any]:
        data = await self._api.call("POST", "/api/show", json_body={"model": model}, model=model)
        return data if isinstance(data, dict) else {}

    async def pull(self, model: str) -> AsyncIterator[PullProgress]:
        """Pull ``model``; yields Ollama's progress lines until ``success``."""
        body = {"model": model, "name": model, "stream": True}
        downloading = False
        async with self._api.stream("POST", "/api/pull", json_body=body, model=model) as r:
            async for text in r.aiter_lines():
                try:
                    data = _line(self.name, text)
                except ProviderError as exc:
                    # An error before any layer was fetched means the manifest
                    # was refused: the name does not exist, so retrying is futile.
                    if not downloading:
                        raise ModelNotAvailable(exc.message, details={"model": model}) from None
                    raise
                if data is None:
                    continue
                downloading = downloading or bool(data.get("digest"))
                progress = PullProgress(
                    status=str(data.get("status", "")),
                    digest=data.get("digest"),
                    total=data.get("total"),
                    completed=data.get("completed"),
                )
                yield progress
                if progress.status == "success":
                    return
        raise ProviderError(f"{self.name} ended the pull of {model} without success")

    async def delete(self, model: str) -> None:
        await self._api.call("DELETE", "/api/delete", json_body={"model": model}, model=model)

    async def embed(self, texts: list[str], model: str) -> EmbeddingResult:
        data = await self._api.call(
            "POST", "/api/embed", json_body={"model": model, "input": texts}, model=model
        )
        vectors = data.get("embeddings") if isinstance(data, dict) else None
        if not isinstance(vectors, list) or len(vectors) != len(texts):
            raise ProviderError(f"{self.name} answered /api/embed without the vectors")
        try:
            floats = [[float(x) for x in v] for v in vectors]
        except (TypeError, ValueError):
            raise ProviderError(f"{self.name} answered malformed embeddings") from None
        return EmbeddingResult(
            vectors=floats,
            model=str(data.get("model") or model),
            tokens=int(data.get("prompt_eval_count") or 0),
        )
