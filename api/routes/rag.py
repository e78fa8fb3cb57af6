"""Embeddings and RAG (zentoria ``/ai/embeddings``, ``/ai/rag/query``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, field_validator

from api.deps import Caller, ResourcesDep, requires
from api.envelope import ok
from engine.crypto import decrypt_secret
from engine.errors import InvalidInput
from engine.model_runtime import CallContext
from engine.models import EmbeddingEndpoint
from engine.providers import local
from engine.providers.base import EmbeddingProvider, EmbeddingResult
from engine.providers.factory import embedding_provider
from engine.rag_answer import answer_with_chat_model, embed_texts
from engine.retrieval import retrieve

router = APIRouter(prefix="/api/v1/ai", tags=["ai"])


class EmbeddingsRequest(BaseModel):
    input: str | list[str]
    model: str | None = None

    @field_validator("input")
    @classmethod
    def _bounded(cls, value: str | list[str]) -> str | list[str]:
        texts = [value] if isinstance(value, str) else value
        if not texts or len(texts) > 256:
            raise ValueError("input must hold 1 to 256 texts")
        if any(not text.strip() or len(text) > 32_000 for text in texts):
            raise ValueError("each input text must be non-empty and at most 32000 characters")
        return value


@router.post("/embeddings", summary="Embed one text or a list of texts")
async def create_embeddings(
    request: Request,
    body: EmbeddingsRequest,
    caller: Annotated[Caller, requires("ai:embeddings")],
    resources: ResourcesDep,
) -> JSONResponse:
    texts = [body.input] if isinstance(body.input, str) else body.input
    model = body.model or caller.settings.default_embedding_model
    result = await embed_texts(resources.models, _context(request, caller), model, texts)
    return ok(_embeddings(result), request_id=request.state.request_id)


def _embeddings(result: EmbeddingResult) -> dict[str, Any]:
    return {
        "embeddings": result.vectors,
        "model": result.model,
        "dimensions": len(result.vectors[0]) if result.vectors else 0,
        "usage": {"tokens": result.tokens, "prompt_tokens": result.tokens},
    }


def _context(request: Request, caller: Caller, kind: str = "embedding") -> CallContext:
    return CallContext(
        tenant_id=caller.tenant_id,
        user_id=caller.principal.user_id,
        request_id=request.state.request_id,
        kind=kind,
    )


class RagFilters(BaseModel):
    project_id: str | None = None
    file_ids: list[str] | None = Field(default=None, max_length=100)


class RagQuery(BaseModel):
    query: str = Field(min_length=1, max_length=4000)
    collection: str = "documents"
    top_k: int = Field(default=5, ge=1, le=50)
    include_citations: bool = True
    filters: RagFilters = Field(default_factory=RagFilters)
    project_id: str | None = None
    file_ids: list[str] | None = Field(default=None, max_length=100)
    model: str | None = None  # the chat model that writes the answer
    # Search the vectors a tenant embedding endpoint made (default: the local MiniLM).
    embedding_endpoint_id: str | None = None


@router.post("/rag/query", summary="Answer a question from the tenant's documents, with citations")
async def create_rag_answer(
    request: Request,
    body: RagQuery,
    caller: Annotated[Caller, requires("ai:chat")],
    resources: ResourcesDep,
) -> JSONResponse:
    model, embedder = local.LOCAL_EMBEDDING_MODEL, None
    if body.embedding_endpoint_id:
        model, embedder = await _endpoint_embedder(caller, resources, body.embedding_endpoint_id)
    retrieval = await retrieve(
        caller.db,
        resources.index,
        tenant_id=caller.tenant_id,
        question=body.query,
        top_k=body.top_k,
        model=model,
        embedder=embedder,
        project_id=body.project_id or body.filters.project_id,
        file_ids=body.file_ids or body.filters.file_ids,
    )
    passages = [p.text for p in retrieval.passages]
    answer, model = await _answer(request, caller, resources, body, passages)
    data: dict[str, Any] = {
        "answer": answer,
        "model": model,
        "contexts_used": len(retrieval.passages),
        "retrieval_ms": round(retrieval.latency_ms, 2),
    }
    if body.include_citations:
        data["citations"] = [
            {"text": p.text, "file_id": p.file_id, "filename": p.filename, "page": p.page,
             "score": p.score, "chunk_id": p.chunk_id}
            for p in retrieval.passages
        ]  # fmt: skip
    return ok(data, request_id=request.state.request_id)


async def _endpoint_embedder(
    caller: Caller, resources: ResourcesDep, endpoint_id: str
) -> tuple[str, EmbeddingProvider]:
    endpoint = await caller.db.get(EmbeddingEndpoint, endpoint_id, what="embedding endpoint")
    if not endpoint.active:
        raise InvalidInput(f"embedding endpoint {endpoint_id} is inactive")
    if endpoint.api_format == "Local":  # indexed under the local model's own name
        return local.LOCAL_EMBEDDING_MODEL, local.LocalEmbeddings()
    secret = endpoint.api_key_encrypted
    provider = embedding_provider(
        endpoint.api_format,
        endpoint.endpoint,
        decrypt_secret(caller.settings, secret) if secret else None,
        http=resources.http,
        settings=caller.settings,
    )
    return endpoint.model, provider


async def _answer(
    request: Request, caller: Caller, resources: ResourcesDep, body: RagQuery, passages: list[str]
) -> tuple[str, str]:
    """The configured chat model writes the answer; without one, an honest extract."""
    chat_model = body.model or caller.settings.default_chat_model
    if not passages:
        return "No indexed document matches the question.", local.EXTRACTIVE_MODEL
    if chat_model:
        context = _context(request, caller, kind="rag")
        return await answer_with_chat_model(
            resources.models, context, chat_model, body.query, passages
        )
    return local.extractive_answer(body.query, passages), local.EXTRACTIVE_MODEL
