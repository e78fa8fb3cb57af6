"""Embeddings and RAG (zentoria ``/ai/embeddings``, ``/ai/rag/query``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.deps import Caller, ResourcesDep, requires
from api.envelope import Envelope, ok
from api.model_deps import call_context
from api.schemas.documents import EmbeddingsPublic
from api.schemas.text import Said
from engine.documents.rag import RagAnswer, RagQuery, answer_query, embed_texts

router = APIRouter(prefix="/api/v1/ai", tags=["ai"])


EmbeddingText = Annotated[Said, Field(min_length=1, max_length=32_000)]


class EmbeddingsRequest(BaseModel):
    # One text, or 1 to 256 of them; none blank or over 32000 characters.
    input: EmbeddingText | Annotated[list[EmbeddingText], Field(min_length=1, max_length=256)]
    model: str | None = None


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
