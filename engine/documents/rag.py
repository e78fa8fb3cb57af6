"""RAG answers with citations, and the embeddings behind ``/ai/embeddings``.

A question is embedded by the model that embedded the documents (the local
MiniLM, or a tenant embedding endpoint), the tenant's index is searched, and
the answer is written by the configured chat model from numbered passages (the
ledger and budgets apply as for any chat call, ``engine.ai.chat.complete``).
Without a chat model the answer is an honest extract, and says so.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
from pydantic import BaseModel, Field, StrictBool, StrictFloat, StrictInt

from engine.ai.chat import complete
from engine.ai.providers import local
from engine.ai.providers.base import ChatMessage, ChatRequest, EmbeddingResult
from engine.ai.providers.endpoints import endpoint_embedder
from engine.ai.runtime import CallContext, ModelRuntime
from engine.db.scope import TenantScope
from engine.db.tables import EmbeddingEndpoint, File
from engine.documents.retrieval import retrieve
from engine.events import outbox
from engine.events.catalog import EventType, excerpt
from engine.platform.errors import InvalidInput, NotFound
from engine.platform.settings import Settings
from engine.vectors.base import VectorIndex

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


class RagFilters(BaseModel):
    project_id: str | None = None
    file_ids: list[str] | None = Field(default=None, max_length=100)


DEFAULT_COLLECTION = "documents"  # every document of the tenant
NOTHING_INDEXED = "No indexed document matches the question."
NOTHING_RELEVANT = "No indexed document is relevant to the question."


class RagQuery(BaseModel):
    query: str = Field(min_length=1, max_length=4000)
    # "documents": all the tenant's documents; any other name is a project
    # (the files uploaded with that ``project_id``), and must exist.
    collection: str = Field(default=DEFAULT_COLLECTION, min_length=1, max_length=200)
    top_k: StrictInt = Field(default=5, ge=1, le=50)
    include_citations: StrictBool = True
    # Passages scoring below this are left out (default WEFT_RAG_MIN_SCORE).
    min_score: StrictFloat | None = Field(default=None, ge=-1, le=1)
    filters: RagFilters = Field(default_factory=RagFilters)
    project_id: str | None = None
    file_ids: list[str] | None = Field(default=None, max_length=100)
    model: str | None = None  # the chat model that writes the answer
    # Search the vectors a tenant embedding endpoint made (default: the local MiniLM).
    embedding_endpoint_id: str | None = None


class Citation(BaseModel):
    text: str
    file_id: str
    filename: str
    # None for text without pages; public() then leaves the key out, so the
    # schema must not require it.
    page: int | None = None
    score: float
    chunk_id: str


class RagAnswer(BaseModel):
    answer: str
    model: str
    contexts_used: int
    retrieval_ms: float
    citations: list[Citation] | None = None

    def public(self) -> dict[str, Any]:
        """zentoria's shape: ``citations`` only when they were asked for."""
        return self.model_dump(mode="json", exclude_none=True)


async def answer_query(
    db: TenantScope,
    index: VectorIndex,
    rt: ModelRuntime,
    ctx: CallContext,
    settings: Settings,
    http: httpx.AsyncClient,
    body: RagQuery,
) -> RagAnswer:
    """Answer ``body.query`` from the tenant's documents, with citations
    (``ctx`` is the caller's, of kind ``rag``: the chat call's ledger row)."""
    model, embedder = local.LOCAL_EMBEDDING_MODEL, None
    if body.embedding_endpoint_id:
        endpoint = await db.get(
            EmbeddingEndpoint, body.embedding_endpoint_id, what="embedding endpoint"
        )
        if not endpoint.active:
            raise InvalidInput(f"embedding endpoint {endpoint.id} is inactive")
        target = endpoint_embedder(endpoint, settings=settings, http=http, normalize=True)
        model, embedder = target.model, target.provider
    project_id = await _project_of(db, body)
    retrieval = await retrieve(
        db,
        index,
        tenant_id=ctx.tenant_id,
        question=body.query,
        top_k=body.top_k,
        model=model,
        embedder=embedder,
        project_id=project_id,
        file_ids=body.file_ids or body.filters.file_ids,
    )
    floor = settings.rag_min_score if body.min_score is None else body.min_score
    relevant = [p for p in retrieval.passages if p.score >= floor]
    passages = [p.text for p in relevant]
    chat_model = body.model or settings.default_chat_model
    if not passages:
        answer = NOTHING_RELEVANT if retrieval.passages else NOTHING_INDEXED
        answered_by = local.EXTRACTIVE_MODEL
    elif chat_model:
        answer, answered_by = await answer_with_chat_model(
            rt, ctx, chat_model, body.query, passages
        )
    else:
        answer, answered_by = local.extractive_answer(body.query, passages), local.EXTRACTIVE_MODEL
    result = RagAnswer(
        answer=answer,
        model=answered_by,
        contexts_used=len(relevant),
        retrieval_ms=round(retrieval.latency_ms, 2),
    )
    if answered_by == local.EXTRACTIVE_MODEL:  # a chat model's answer is announced by the ledger
        await outbox.emit(
            db.session,
            ctx.tenant_id,
            EventType.AI_RESPONSE,
            {
                "query": excerpt(body.query),
                "answer": excerpt(answer),
                "model": answered_by,
                "request_id": ctx.request_id,
            },
        )
        await db.session.commit()
    result.citations = [
        Citation(text=p.text, file_id=p.file_id, filename=p.filename, page=p.page,
                 score=p.score, chunk_id=p.chunk_id)
        for p in relevant
    ] if body.include_citations else []  # fmt: skip
    return result


async def _project_of(db: TenantScope, body: RagQuery) -> str | None:
    """The project retrieval is limited to: a named collection (which must hold
    documents of the tenant) or the ``project_id`` filter."""
    project_id = body.project_id or body.filters.project_id
    if body.collection == DEFAULT_COLLECTION:
        return project_id
    if project_id and project_id != body.collection:
        raise InvalidInput(
            f"collection {body.collection!r} and project_id {project_id!r} disagree",
            details={"field": "collection"},
        )
    found = await db.session.scalar(
        db.select(File).where(File.project_id == body.collection).limit(1)
    )
    if found is None:
        raise NotFound(
            f"Collection {body.collection!r} not found: no document was uploaded to it",
            details={"collection": body.collection},
        )
    return body.collection
