"""The local provider as a chat provider: present in every deployment.

Without a generative model it answers extractively — the sentences of the
conversation's passages (system prompt, earlier turns, retrieved context) that
best match the last user message — and its ``model`` is ``EXTRACTIVE_MODEL``,
which says exactly that. Embeddings come from the shipped MiniLM.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from engine.ai.providers.base import ChatChunk, ChatRequest, ChatResult, EmbeddingResult, ModelInfo
from engine.ai.providers.local import (
    DIMENSIONS,
    EXTRACTIVE_MODEL,
    LOCAL_EMBEDDING_MODEL,
    LocalEmbeddings,
    extractive_answer,
)

LOCAL_PROVIDER = "local"
EXTRACTIVE_ALIASES = frozenset({EXTRACTIVE_MODEL, "local", "extractive", "local/extractive"})
NOTHING_TO_QUOTE = (
    "No generative model is configured, so this answer is extractive: it can only "
    "quote passages given with the question (a system prompt, earlier messages or "
    "retrieved documents), and none were given."
)


def is_extractive_model(name: str | None) -> bool:
    return bool(name) and str(name).lower() in {a.lower() for a in EXTRACTIVE_ALIASES}


class LocalProvider:
    """Extractive answers and MiniLM embeddings, in process."""

    kind = "local"

    def __init__(self) -> None:
        self.name = LOCAL_PROVIDER
        self._embeddings = LocalEmbeddings()

    async def chat(self, request: ChatRequest) -> ChatResult:
        users = [i for i, m in enumerate(request.messages) if m.role == "user"]
        last = users[-1] if users else len(request.messages) - 1
        question = request.messages[last].content
        passages = [m.content for i, m in enumerate(request.messages) if i != last and m.content]
        if passages:
            answer = await asyncio.to_thread(extractive_answer, question, passages)
        else:
            answer = NOTHING_TO_QUOTE
        # Token counts are left to the caller's estimate: this is no tokenizer-bound LLM.
        return ChatResult(
            content=answer, model=EXTRACTIVE_MODEL, prompt_tokens=0, completion_tokens=0
        )

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        result = await self.chat(request)
        words = result.content.split(" ")
        for index, word in enumerate(words):
            yield ChatChunk(delta=word if index == 0 else " " + word)
        yield ChatChunk(done=True, finish_reason="stop")

    async def list_models(self) -> list[ModelInfo]:
        return [
            ModelInfo(
                name=EXTRACTIVE_MODEL,
                provider=LOCAL_PROVIDER,
                details={"type": "extractive", "generative": False},
            ),
            ModelInfo(
                name=LOCAL_EMBEDDING_MODEL,
                provider=LOCAL_PROVIDER,
                details={"type": "embedding", "dimensions": DIMENSIONS},
            ),
        ]

    async def embed(self, texts: list[str], model: str) -> EmbeddingResult:
        return await self._embeddings.embed(texts, model)
