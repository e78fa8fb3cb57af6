"""Model calls behind RAG and ``/ai/embeddings`` that go to a configured provider.

The answer is written by a chat model from numbered passages; the ledger and
budgets apply as for any chat call (``engine.chat.complete``).
"""

from __future__ import annotations

import time

from engine.chat import complete
from engine.model_runtime import CallContext, ModelRuntime
from engine.models import UsageRecord
from engine.providers.base import ChatMessage, ChatRequest, EmbeddingResult
from engine.usage import record_usage

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


async def embed_with_provider(
    rt: ModelRuntime, ctx: CallContext, model: str, texts: list[str]
) -> EmbeddingResult:
    """Embeddings from whichever configured provider serves ``model``."""
    target = await rt.registry.resolve(model)
    started = time.perf_counter()
    result = await target.entry.client.embed(texts, target.model)
    async with rt.sessions() as session:
        await record_usage(
            session,
            UsageRecord(
                tenant_id=ctx.tenant_id,
                user_id=ctx.user_id,
                kind="embedding",
                provider=target.entry.name,
                model=result.model,
                prompt_tokens=result.tokens,
                latency_ms=(time.perf_counter() - started) * 1000,
                request_id=ctx.request_id,
            ),
        )
        await session.commit()
    return result
