"""Model calls behind RAG and ``/ai/embeddings`` that go to a configured provider.

The answer is written by a chat model from numbered passages; the ledger and
budgets apply as for any chat call (``engine.chat.complete``).
"""

from __future__ import annotations

import time

from engine.chat import complete
from engine.model_runtime import CallContext, ModelRuntime
from engine.providers import local
from engine.providers.base import ChatMessage, ChatRequest, EmbeddingResult

SYSTEM_PROMPT = (
    "Answer the question using only the numbered passages. Cite passages by their "
    "number in square brackets. If the passages do not contain the answer, say so."
)


async def answer_with_chat_model(
    rt: ModelRuntime, ctx: CallContext, model: str, question: str, passages: list[str]
) -> tuple[str, str]:
    context = "\n\n".join(f"[{number}] {text}" for number, text in enumerate(passages, 1))
    request = ChatRequest(
        model=model,
        temperature=0.0,
        messages=[
            ChatMessage(role="system", content=SYSTEM_PROMPT),
            ChatMessage(role="user", content=f"Passages:\n{context}\n\nQuestion: {question}"),
        ],
    )
    outcome = await complete(rt, ctx, request)
    return outcome.content, outcome.model


async def embed_texts(
    rt: ModelRuntime, ctx: CallContext, model: str, texts: list[str]
) -> EmbeddingResult:
    """Embeddings from the local MiniLM or whichever configured provider serves
    ``model``, with their ledger row."""
    started = time.perf_counter()
    if local.is_local_embedding_model(model):
        provider, result = "local", await local.LocalEmbeddings().embed(texts, model)
    else:
        target = await rt.registry.resolve(model)
        provider, result = target.entry.name, await target.entry.client.embed(texts, target.model)
    await rt.record(
        ctx,
        provider=provider,
        model=result.model,
        prompt_tokens=result.tokens,
        latency_ms=(time.perf_counter() - started) * 1000,
    )
    return result
