"""Embeddings and RAG (zentoria ``/ai/embeddings``, ``/ai/rag/query``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, field_validator

from api.deps import Caller, ResourcesDep, requires
from api.envelope import Envelope, ok
from api.model_deps import call_context
from api.schemas.documents import EmbeddingsPublic
from engine.documents.rag import RagAnswer, RagQuery, answer_query, embed_texts

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


@router.post(
    "/embeddings",
    response_model=Envelope[EmbeddingsPublic],
    summary="Embed one text or a list of texts",
)
async def create_embeddings(
    request: Request,
    body: EmbeddingsRequest,
    caller: Annotated[Caller, requires("ai:embeddings")],
    resources: ResourcesDep,
) -> JSONResponse:
    texts = [body.input] if isinstance(body.input, str) else body.input
    model = body.model or caller.settings.default_embedding_model
    context = call_context(request, caller, kind="embedding")
    result = await embed_texts(resources.models, context, model, texts)
    return ok(EmbeddingsPublic.of(result), request_id=request.state.request_id)


@router.post(
    "/rag/query",
    response_model=Envelope[RagAnswer],
    summary="Answer a question from the tenant's documents, with citations",
)
async def create_rag_answer(
    request: Request,
    body: RagQuery,
    caller: Annotated[Caller, requires("ai:chat")],
    resources: ResourcesDep,
) -> JSONResponse:
    answer = await answer_query(
        caller.db,
        resources.index,
        resources.models,
        call_context(request, caller, kind="rag"),
        caller.settings,
        resources.http,
        body,
    )
    return ok(answer.public(), request_id=request.state.request_id)
