"""Retrieval for RAG: embed the question, search the tenant's index, load passages.

Embedding the question is most of a retrieval's time, so the local model's
query vectors are kept in a small LRU cache (a repeated question skips the
model), and a new question is embedded on a thread of its own that runs torch
with one intra-op thread: one short sentence gains little from two, and on a
busy machine two OpenMP threads wait on each other (p95 164 ms against 12 ms
with one, in bench/retrieval.py's measurement). Batch embedding elsewhere keeps
torch's default.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

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


class QueryCache:
    """The most recent query embeddings, by (model, text); at most ``size`` kept."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.hits = self.misses = 0
        self._entries: OrderedDict[tuple[str, str], tuple[tuple[float, ...], int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, model: str, text: str) -> tuple[list[float], int] | None:
        entry = self._entries.get((model, text))
        if entry is None:
            self.misses += 1
            return None
        self._entries.move_to_end((model, text))
        self.hits += 1
        return list(entry[0]), entry[1]

    def put(self, model: str, text: str, vector: list[float], tokens: int) -> None:
        self._entries[(model, text)] = (tuple(vector), tokens)
        self._entries.move_to_end((model, text))
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()


# Only the in-process model is cached: its vectors are the same for every tenant.
# A tenant's embedding endpoint is its own (another server may answer to the same
# model name), so its questions always go to it.
QUERY_CACHE = QueryCache(1024)


def _one_intra_op_thread() -> None:
    try:
        import torch
    except ImportError:  # no ml extra: embedding answers with its own clear error
        return
    default = torch.get_num_threads()  # this thread starts with the process default
    torch.set_num_threads(1)  # ...and now runs with one
    # torch also records the value as the default of threads that have not used it
    # yet; a throwaway thread puts the process default back.
    restore = threading.Thread(target=torch.set_num_threads, args=(default,))
    restore.start()
    restore.join()


@lru_cache(maxsize=1)
def _query_thread() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(
        1, thread_name_prefix="weft-query-embed", initializer=_one_intra_op_thread
    )


def _embed_question(question: str) -> tuple[list[float], int]:
    vector = local.embed_sync([question])[0]
    return vector.tolist(), local.count_tokens([question])[0]


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
    elif not isinstance(embedder, local.LocalEmbeddings):
        result = await embedder.embed([question], model)
        return result.vectors[0], result.tokens
    # The shipped MiniLM (search normalises, so a Local endpoint's setting is moot).
    model = local.LOCAL_EMBEDDING_MODEL
    cached = QUERY_CACHE.get(model, question)
    if cached is not None:
        return cached
    loop = asyncio.get_running_loop()
    vector, tokens = await loop.run_in_executor(_query_thread(), _embed_question, question)
    QUERY_CACHE.put(model, question, vector, tokens)
    return vector, tokens


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
