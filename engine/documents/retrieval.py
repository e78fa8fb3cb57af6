"""Retrieval for RAG: embed the question, search the tenant's index, load passages."""

from __future__ import annotations

import time
from dataclasses import dataclass

from engine.ai.providers import local
from engine.ai.providers.base import EmbeddingProvider
from engine.ai.usage import record_usage
from engine.db.scope import TenantScope
from engine.db.tables import Chunk, File, UsageRecord
from engine.platform.errors import InvalidInput
from engine.vectors.base import VectorIndex


@dataclass(frozen=True)
class Passage:
    chunk_id: str
    file_id: str
    filename: str
    page: int | None
    text: str
    score: float


@dataclass(frozen=True)
class Retrieval:
    passages: list[Passage]
    model: str
    query_tokens: int
    latency_ms: float


async def embed_query(
    question: str, model: str, embedder: EmbeddingProvider | None
) -> tuple[list[float], int]:
    """The question's vector, by the same model that embedded the documents."""
    if embedder is None:
        if not local.is_local_embedding_model(model):
            raise InvalidInput(
                f"no embedding model {model!r} here: name the embedding endpoint to query",
                details={"field": "model"},
            )
        embedder, model = local.LocalEmbeddings(), local.LOCAL_EMBEDDING_MODEL
    result = await embedder.embed([question], model)
    return result.vectors[0], result.tokens


async def retrieve(
    db: TenantScope,
    index: VectorIndex,
    *,
    tenant_id: str,
    question: str,
    top_k: int,
    model: str = local.LOCAL_EMBEDDING_MODEL,
    embedder: EmbeddingProvider | None = None,
    project_id: str | None = None,
    file_ids: list[str] | None = None,
) -> Retrieval:
    """Search the index of ``model``; ``embedder`` serves that model (local when None)."""
    started = time.perf_counter()
    model = model if embedder is not None else local.LOCAL_EMBEDDING_MODEL
    vector, tokens = await embed_query(question, model, embedder)
    hits = await index.search(
        db.session,
        tenant_id,
        model,
        vector,
        top_k=top_k,
        file_ids=file_ids,
        project_id=project_id,
    )
    rows = {}
    if hits:
        query = (
            db.select(Chunk)
            .where(Chunk.id.in_([hit.chunk_id for hit in hits]))
            .add_columns(File.filename)
            .join(File, File.id == Chunk.file_id)
        )
        rows = {chunk.id: (chunk, name) for chunk, name in (await db.session.execute(query)).all()}
    passages = [
        Passage(hit.chunk_id, hit.file_id, rows[hit.chunk_id][1], rows[hit.chunk_id][0].page,
                rows[hit.chunk_id][0].text, round(hit.score, 4))
        for hit in hits
        if hit.chunk_id in rows  # a chunk deleted since the index was read is skipped
    ]  # fmt: skip
    latency_ms = (time.perf_counter() - started) * 1000  # the ledger write below is not retrieval
    await record_usage(
        db.session,
        UsageRecord(
            tenant_id=tenant_id,
            kind="rag",
            provider=getattr(embedder, "name", "local"),
            model=model,
            prompt_tokens=tokens,
            latency_ms=latency_ms,
        ),
    )
    await db.session.commit()
    return Retrieval(passages, model, tokens, latency_ms)
