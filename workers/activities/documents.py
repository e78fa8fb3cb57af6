"""Document activities: inspect, extract, chunk (weft-cpu), embed (weft-ml),
index and finish (weft-io).

Each reads its inputs from blob storage by key and writes its outputs the same
way, so only keys travel through workflow history. Each is idempotent: a retry
overwrites the same blob, and indexing upserts by (file, chunk index, model).
"""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import Awaitable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import numpy.typing as npt
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from engine.ai.providers import local
from engine.ai.providers.base import EmbeddingProvider
from engine.ai.providers.endpoints import endpoint_embedder
from engine.ai.usage import record_usage
from engine.db.tables import Chunk, ChunkVector, EmbeddingEndpoint, File, UsageRecord
from engine.documents.chunking import ChunkingConfig, TooManyChunks, chunk_pages
from engine.documents.extract import (
    DocumentError,
    Limits,
    PageText,
    count_pages,
    extract_pages,
    too_large,
)
from engine.documents.sniff import sniff
from engine.events import outbox
from engine.events.catalog import EventType
from engine.platform.errors import WeftError
from engine.platform.settings import Settings
from engine.storage.base import BlobStore, local_copy, work_prefix
from engine.vectors.base import VectorIndex, VectorRow
from workflows.activities import (
    CHUNK_TEXT,
    EMBED_CHUNKS,
    EXTRACT_TEXT,
    FINISH_DOCUMENT,
    INDEX_CHUNKS,
)
from workflows.document_payloads import (
    ChunkInput,
    ChunkResult,
    DocumentRef,
    EmbeddingSpec,
    EmbedInput,
    EmbedResult,
    ExtractInput,
    ExtractResult,
    FinishInput,
    IndexInput,
    IndexResult,
)

T = TypeVar("T")
EMBED_SUB_BATCH = 32


def permanent(code: str, message: str) -> ApplicationError:
    """A failure no retry can fix: the workflow fails with this code at once."""
    return ApplicationError(message, type=code, non_retryable=True)


async def _permanent_on_document_error(work: Awaitable[T]) -> T:
    try:
        return await work
    except DocumentError as exc:
        raise permanent(exc.code, exc.message) from None


def model_slug(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", model)[:80]


class DocumentActivities:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        store: BlobStore,
        index: VectorIndex,
        http: httpx.AsyncClient,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.store = store
        self.index = index
        self.http = http

    async def _file(self, ref: DocumentRef) -> File:
        async with self.sessions() as session:
            row = await session.get(File, ref.file_id)
        if row is None or row.tenant_id != ref.tenant_id:
            raise permanent("FILE_MISSING", f"file {ref.file_id} no longer exists")
        return row

    async def _json(self, key: str) -> Any:
        return json.loads(await self.store.read_bytes(key))

    @EXTRACT_TEXT.defn
    async def extract_text(self, params: ExtractInput) -> ExtractResult:
        row = await self._file(params.ref)
        try:
            async with local_copy(self.store, row.blob_key) as path:
                total, pages = await self._extract(path, params)
        except FileNotFoundError:
            raise permanent("FILE_MISSING", "the file's content is gone") from None
        prefix = work_prefix(params.ref.tenant_id, params.ref.file_id)
        key = f"{prefix}/pages/{params.first_page:05d}.json"
        payload = [{"page": p.page, "text": p.text, "ocr": p.ocr} for p in pages]
        await self.store.put_bytes(key, json.dumps(payload).encode())
        chunked = None
        if params.chunking is not None and params.last_page >= total:
            chunked = await self._chunk(params.ref, payload, params.chunking)
        text = " ".join(p.text for p in pages).strip()
        return ExtractResult(
            pages_key=key,
            pages=len(pages),
            pages_total=total,
            chars=len(text),
            ocr_pages=sum(1 for p in pages if p.ocr),
            excerpt=re.sub(r"\s+", " ", text)[:500],
            chunked=chunked,
        )

    @property
    def _limits(self) -> Limits:
        return Limits(
            max_pages=self.settings.max_document_pages,
            max_chars=self.settings.max_document_chars,
        )

    async def _extract(self, path: Path, params: ExtractInput) -> tuple[int, list[PageText]]:
        with path.open("rb") as handle:
            family = sniff(handle.read(8192), whole=handle).family
        limits = self._limits
        total = await _permanent_on_document_error(
            asyncio.to_thread(count_pages, path, family, limits)
        )
        loop = asyncio.get_running_loop()

        def heartbeat(page: int) -> None:  # called from the extraction thread
            loop.call_soon_threadsafe(activity.heartbeat, page)

        pages = await _permanent_on_document_error(
            asyncio.to_thread(
                extract_pages,
                path,
                family,
                params.first_page,
                min(params.last_page, total),
                ocr=params.ocr,
                on_page=heartbeat,
                limits=limits,
            )
        )
        return total, pages

    @CHUNK_TEXT.defn
    async def chunk_text(self, params: ChunkInput) -> ChunkResult:
        payload: list[dict[str, Any]] = []
        for key in params.pages_keys:
            payload += await self._json(key)
        return await self._chunk(params.ref, payload, params.chunking)

    async def _chunk(
        self, ref: DocumentRef, payload: list[dict[str, Any]], config: ChunkingConfig
    ) -> ChunkResult:
        pages = [(item["page"], item["text"]) for item in payload]
        if not any(text.strip() for _, text in pages):
            raise permanent("NO_TEXT", "no text could be extracted from the document")
        chars, limit = sum(len(text) for _, text in pages), self.settings.max_document_chars
        if chars > limit:
            error = too_large("characters of text", chars, limit)
            raise permanent(error.code, error.message)
        try:
            chunks = await asyncio.to_thread(
                chunk_pages,
                pages,
                config,
                local.token_spans,
                max_chunks=self.settings.max_document_chunks,
            )
        except TooManyChunks as exc:
            raise permanent("DOCUMENT_TOO_LARGE", str(exc)) from None
        key = f"{work_prefix(ref.tenant_id, ref.file_id)}/chunks.json"
        items = [{"index": c.index, "page": c.page, "text": c.text, "tokens": c.tokens}
                 for c in chunks]  # fmt: skip
        await self.store.put_bytes(key, json.dumps(items).encode())
        return ChunkResult(chunks_key=key, chunks=len(chunks), tokens=sum(c.tokens for c in chunks))

    async def _embedder(
        self, ref: DocumentRef, spec: EmbeddingSpec
    ) -> tuple[EmbeddingProvider, str, str]:
        """The provider, model name and provider name for ``spec``."""
        if spec.endpoint_id is None:
            if not local.is_local_embedding_model(spec.model):
                raise permanent("MODEL_NOT_AVAILABLE", f"no local embedding model {spec.model!r}")
            return local.LocalEmbeddings(normalize=False), local.LOCAL_EMBEDDING_MODEL, "local"
        async with self.sessions() as session:
            endpoint = await session.get(EmbeddingEndpoint, spec.endpoint_id)
        if endpoint is None or endpoint.tenant_id != ref.tenant_id:
            raise permanent(
                "MODEL_NOT_AVAILABLE", f"embedding endpoint {spec.endpoint_id} not found"
            )
        if not endpoint.active:
            raise permanent("ENDPOINT_INACTIVE", f"embedding endpoint {endpoint.id} is inactive")
        target = endpoint_embedder(endpoint, settings=self.settings, http=self.http)
        return target.provider, target.model, target.provider_name

    @EMBED_CHUNKS.defn
    async def embed_chunks(self, params: EmbedInput) -> EmbedResult:
        chunks = (await self._json(params.chunks_key))[params.start : params.end]
        provider, model, provider_name = await self._embedder(params.ref, params.embedding)
        started = datetime.now(UTC)
        vectors: list[list[float]] = []
        tokens = 0
        for offset in range(0, len(chunks), EMBED_SUB_BATCH):
            texts = [c["text"] for c in chunks[offset : offset + EMBED_SUB_BATCH]]
            try:
                result = await provider.embed(texts, model)
            except WeftError as exc:
                if not getattr(exc, "retryable", True) or exc.code in ("EGRESS_DENIED",):
                    raise permanent(exc.code, exc.message) from None
                raise
            vectors += result.vectors
            tokens += result.tokens
            activity.heartbeat(params.start + offset + len(texts))
        # Stays float32 when normalized; numpy's stubs type the division as float64.
        matrix: npt.NDArray[np.floating[Any]]
        matrix = np.asarray(vectors, dtype=np.float32).reshape(len(chunks), -1)
        if params.embedding.normalize and len(matrix):
            norms = np.linalg.norm(matrix, axis=1, keepdims=True)
            matrix = matrix / np.where(norms == 0, 1.0, norms)
        prefix = work_prefix(params.ref.tenant_id, params.ref.file_id)
        key = f"{prefix}/vectors/{model_slug(model)}/{params.start:06d}.npy"
        buffer = io.BytesIO()
        np.save(buffer, matrix)
        await self.store.put_bytes(key, buffer.getvalue())
        await self._record(params, model, provider_name, tokens, started)
        return EmbedResult(
            vectors_key=key,
            count=len(chunks),
            tokens=tokens,
            model=model,
            dimensions=int(matrix.shape[1]) if len(matrix) else 0,
        )

    async def _record(
        self, params: EmbedInput, model: str, provider: str, tokens: int, started: datetime
    ) -> None:
        info = activity.info()
        async with self.sessions() as session:
            await record_usage(
                session,
                UsageRecord(
                    tenant_id=params.ref.tenant_id,
                    kind="embedding",
                    provider=provider,
                    model=model,
                    prompt_tokens=tokens,
                    latency_ms=(datetime.now(UTC) - started).total_seconds() * 1000,
                    workflow_id=info.workflow_id,
                    run_id=info.workflow_run_id,
                    dedupe_key=f"{info.workflow_run_id}:embed:{model}:{params.start}",
                ),
            )
            await session.commit()

    @INDEX_CHUNKS.defn
    async def index_chunks(self, params: IndexInput) -> IndexResult:
        chunks = await self._json(params.chunks_key)
        parts = [np.load(io.BytesIO(await self.store.read_bytes(k))) for k in params.vectors_keys]
        vectors = np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)
        if len(vectors) != len(chunks):
            raise permanent("INDEX_MISMATCH", f"{len(vectors)} vectors for {len(chunks)} chunks")
        row = await self._file(params.ref)
        async with self.sessions() as session, session.begin():
            ids = await self._upsert_chunks(session, row, chunks)
            if params.finish is not None:
                await self._apply_finish(session, params.finish)
            rows = [
                VectorRow(ids[i], row.id, row.project_id, vectors[i].tolist())
                for i in range(len(chunks))
            ]
            await self.index.upsert(session, row.tenant_id, params.model, rows)
        return IndexResult(chunks=len(chunks), vectors=len(rows))

    @staticmethod
    async def _upsert_chunks(
        session: AsyncSession, row: File, chunks: list[dict[str, Any]]
    ) -> list[str]:
        """Chunk rows keyed by (file, index): a re-run updates, never duplicates."""
        existing = {
            c.chunk_index: c
            for c in (await session.scalars(select(Chunk).where(Chunk.file_id == row.id))).all()
        }
        await session.execute(
            delete(Chunk).where(Chunk.file_id == row.id, Chunk.chunk_index >= len(chunks))
        )
        ids = []
        for item in chunks:
            current = existing.get(item["index"])
            if current is None:
                current = Chunk(tenant_id=row.tenant_id, file_id=row.id, chunk_index=item["index"])
                session.add(current)
            elif current.text != item["text"]:  # re-chunked: vectors of the old text are stale
                await session.execute(delete(ChunkVector).where(ChunkVector.chunk_id == current.id))
            current.text, current.page, current.token_count = (
                item["text"],
                item["page"],
                item["tokens"],
            )
            await session.flush()
            ids.append(current.id)
        return ids

    @FINISH_DOCUMENT.defn
    async def finish_document(self, params: FinishInput) -> None:
        async with self.sessions() as session, session.begin():
            await self._apply_finish(session, params)

    @staticmethod
    async def _apply_finish(session: AsyncSession, params: FinishInput) -> None:
        """The file's final state and its events (once per run, however often retried)."""
        run_id = activity.info().workflow_run_id
        row = await session.get(File, params.ref.file_id)
        if row is None:  # deleted while processing: nothing to report on
            return
        row.workflow_id = params.workflow_id
        row.status = "processed" if params.ok else "failed"
        row.error_code, row.error_message = params.error_code, params.error_message
        if params.ok:
            row.pages = params.pages or row.pages
            row.chunks, row.embedding_model = params.chunks, params.model
            row.ocr_pages, row.ocr_excerpt = params.ocr_pages, params.excerpt
            row.processed_at = datetime.now(UTC)

        async def emit(kind: EventType, data: dict[str, Any], subject: str) -> None:
            await outbox.emit(
                session, row.tenant_id, kind, data, subject=subject, dedupe_key=f"{run_id}:{kind}"
            )

        execution = {"execution_id": params.workflow_id}
        if params.ok:
            await emit(EventType.FILE_PROCESSED, {
                "file_id": row.id, "ocr_text": params.excerpt, "embedding_id": f"emb_{row.id}",
                "pages": row.pages, "chunks": params.chunks,
            }, row.id)  # fmt: skip
            result = {"file_id": row.id, "chunks": params.chunks}
            completed = {**execution, "status": "completed", "result": result}
            await emit(EventType.WORKFLOW_COMPLETED, completed, params.workflow_id)
        else:
            error = {"code": params.error_code, "message": params.error_message}
            await emit(EventType.WORKFLOW_FAILED, {**execution, "file_id": row.id, "error": error},
                       params.workflow_id)  # fmt: skip
