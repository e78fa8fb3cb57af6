"""OpenAI-compatible servers (OpenAI, vLLM, llama.cpp server, LM Studio):
``/v1/chat/completions`` (with SSE streaming), ``/v1/models``, ``/v1/embeddings``.

The base URL may be given with or without its ``/v1``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx

from engine.ai.providers.base import (
    ChatChunk,
    ChatRequest,
    ChatResult,
    EmbeddingResult,
    ModelInfo,
    ProviderError,
)
from engine.ai.providers.http import HttpEndpoint
from engine.platform.settings import Settings


def _usage(data: dict[str, Any]) -> tuple[int, int]:
    usage = data.get("usage") or {}
    if not isinstance(usage, dict):
        return 0, 0
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)


class OpenAIProvider:
    """ChatProvider and EmbeddingProvider for one OpenAI-compatible server."""

    kind = "openai"

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
        base = base_url.rstrip("/")
        if not base.endswith("/v1"):
            base += "/v1"
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._api = HttpEndpoint(name, base, http, settings, headers, tenant=tenant)

    def _chat_body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [m.model_dump() for m in request.messages],
            "temperature": request.temperature,
            "stream": stream,
        }
        if request.max_tokens:
            body["max_tokens"] = request.max_tokens
        if stream:
            body["stream_options"] = {"include_usage": True}
        return body

    async def chat(self, request: ChatRequest) -> ChatResult:
        data = await self._api.call(
            "POST",
            "/chat/completions",
            json_body=self._chat_body(request, stream=False),
            model=request.model,
        )
        try:
            choice = data["choices"][0]
            content = choice["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise ProviderError(f"{self.name} answered without a choice") from None
        prompt, completion = _usage(data)
        return ChatResult(
            content=str(content),
            model=str(data.get("model") or request.model),
            prompt_tokens=prompt,
            completion_tokens=completion,
            finish_reason=str(choice.get("finish_reason") or "stop"),
        )

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        body = self._chat_body(request, stream=True)
        prompt = completion = 0
        finish: str | None = None
        async with self._api.stream(
            "POST", "/chat/completions", json_body=body, model=request.model
        ) as response:
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue  # blank separators, comments, event names
                payload = line[5:].strip()
                if payload == "[DONE]":
                    yield ChatChunk(
                        done=True,
                        prompt_tokens=prompt,
                        completion_tokens=completion,
                        finish_reason=finish or "stop",
                    )
                    return
                try:
                    data = json.loads(payload)
                except ValueError:
                    raise ProviderError(f"{self.name} streamed a malformed event") from None
                if not isinstance(data, dict):
                    raise ProviderError(f"{self.name} streamed a malformed event")
                if data.get("error"):
                    raise ProviderError(f"{self.name}: {str(data['error'])[:300]}")
                if data.get("usage"):
                    prompt, completion = _usage(data)
                for choice in data.get("choices") or []:
                    delta = str((choice.get("delta") or {}).get("content") or "")
                    finish = choice.get("finish_reason") or finish
                    if delta:
                        yield ChatChunk(delta=delta)
        raise ProviderError(f"{self.name} ended the stream without [DONE]")

    async def list_models(self) -> list[ModelInfo]:
        data = await self._api.call("GET", "/models")
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise ProviderError(f"{self.name} answered /v1/models without data")
        return [
            ModelInfo(
                name=str(item["id"]),
                provider=self.name,
                details={"owned_by": item.get("owned_by"), "created": item.get("created")},
            )
            for item in items
            if isinstance(item, dict) and item.get("id")
        ]

    async def show(self, model: str) -> dict[str, Any]:
        data = await self._api.call("GET", f"/models/{quote(model, safe='')}", model=model)
        return data if isinstance(data, dict) else {}

    async def embed(self, texts: list[str], model: str) -> EmbeddingResult:
        data = await self._api.call(
            "POST", "/embeddings", json_body={"model": model, "input": texts}, model=model
        )
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list) or len(items) != len(texts):
            raise ProviderError(f"{self.name} answered /v1/embeddings without the vectors")
        try:
            ordered = sorted(items, key=lambda item: int(item.get("index", 0)))
            vectors = [[float(x) for x in item["embedding"]] for item in ordered]
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ProviderError(f"{self.name} answered malformed embeddings") from None
        usage = data.get("usage") or {}
        return EmbeddingResult(
            vectors=vectors,
            model=str(data.get("model") or model),
            tokens=int(usage.get("prompt_tokens") or usage.get("total_tokens") or 0),
        )
