"""DocumentProcessingWorkflow (``doc-{file_id}``): extract → chunk → embed → index.

Large documents are split into page batches (extraction) and chunk batches
(embedding), each its own activity with heartbeats, so a 500-page PDF makes
steady, visible progress and a crash repeats one batch, not the document. A
document that can never be read fails the run at once (non-retryable error
types below); everything else is retried by Temporal.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TypeVar

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from engine.documents.chunking import ChunkingConfig
    from engine.platform.queues import TaskQueue
    from workflows.activities import (
        CHUNK_TEXT,
        EMBED_CHUNKS,
        EXTRACT_TEXT,
        FINISH_DOCUMENT,
        INDEX_CHUNKS,
        ActivityDef,
    )
    from workflows.document_payloads import (
        ChunkInput,
        ChunkResult,
        DocumentRef,
        EmbeddingSpec,
        EmbedInput,
        ExtractInput,
        ExtractResult,
        FinishInput,
        IndexInput,
    )

ArgT = TypeVar("ArgT")
ResultT = TypeVar("ResultT")
PAGES_PER_BATCH = 20
CHUNKS_PER_BATCH = 128  # DESIGN.md: embed 64+ chunks per activity
PERMANENT = [
    "CORRUPT_FILE",
    "ENCRYPTED_FILE",
    "EMPTY_DOCUMENT",
    "NO_TEXT",
    "UNSUPPORTED_TYPE",
    "IMAGE_TOO_LARGE",
    "FILE_MISSING",
    "MODEL_NOT_AVAILABLE",
    "EGRESS_DENIED",
    "ENDPOINT_INACTIVE",
    "OCR_UNAVAILABLE",
]
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=8,
    non_retryable_error_types=PERMANENT,
)


def _queue(queue: TaskQueue) -> str:
    """An activity queue with this run's queue prefix (read from its own queue)."""
    own = workflow.info().task_queue
    return own[: len(own) - len(TaskQueue.WORKFLOWS.value)] + queue.value


class DocumentProcessingInput(BaseModel):
    tenant_id: str
    file_id: str
    ocr: bool = True
    embedding: EmbeddingSpec | None = Field(default_factory=EmbeddingSpec)
    chunking: ChunkingConfig = Field(default_factory=ChunkingConfig)
    # Set when the text is already chunked: re-embed with another model only.
    reuse_chunks_key: str | None = None
    reuse_chunks: int = 0


class DocumentProcessingResult(BaseModel):
    file_id: str
    pages: int
    chunks: int
    ocr_pages: int
    ocr_text: str
    embedding_id: str | None
    model: str | None
    chunks_key: str


class DocumentProgress(BaseModel):
    stage: str
    pages_done: int
    pages_total: int
    chunks_done: int
    chunks_total: int


@workflow.defn
class DocumentProcessingWorkflow:
    def __init__(self) -> None:
        self._progress = DocumentProgress(
            stage="starting", pages_done=0, pages_total=0, chunks_done=0, chunks_total=0
        )

    @workflow.query
    def progress(self) -> DocumentProgress:
        return self._progress

    @workflow.run
    async def run(self, params: DocumentProcessingInput) -> DocumentProcessingResult:
        ref = DocumentRef(tenant_id=params.tenant_id, file_id=params.file_id)
        try:
            result = await self._process(ref, params)
        except ActivityError as err:
            cause = err.cause
            code = cause.type if isinstance(cause, ApplicationError) and cause.type else "FAILED"
            message = cause.message if isinstance(cause, ApplicationError) else str(err)
            await self._finish(ref, ok=False, error_code=code, error_message=message)
            raise ApplicationError(message, type=code, non_retryable=True) from err
        self._progress.stage = "completed"
        return result

    async def _process(
        self, ref: DocumentRef, params: DocumentProcessingInput
    ) -> DocumentProcessingResult:
        pages, ocr_pages, excerpt = 0, 0, ""
        if params.reuse_chunks_key:
            chunked = ChunkResult(
                chunks_key=params.reuse_chunks_key, chunks=params.reuse_chunks, tokens=0
            )
        else:
            self._progress.stage = "extracting"
            first = await self._extract(ref, params, 1, chunking=params.chunking)
            pages, ocr_pages, excerpt = first.pages_total, first.ocr_pages, first.excerpt
            self._progress.pages_total = pages
            if first.chunked is not None:
                chunked = first.chunked
            else:
                pages_keys = [first.pages_key]
                for start in range(PAGES_PER_BATCH + 1, pages + 1, PAGES_PER_BATCH):
                    batch = await self._extract(ref, params, start, chunking=None)
                    pages_keys.append(batch.pages_key)
                    ocr_pages += batch.ocr_pages
                self._progress.stage = "chunking"
                chunk_input = ChunkInput(ref=ref, pages_keys=pages_keys, chunking=params.chunking)
                chunked = await self._cpu(CHUNK_TEXT, chunk_input)
        chunks_key = chunked.chunks_key
        total = chunked.chunks
        model = None
        finish = FinishInput(
            ref=ref, workflow_id=workflow.info().workflow_id, ok=True, pages=pages,
            chunks=total, excerpt=excerpt, ocr_pages=ocr_pages,
        )  # fmt: skip
        if params.embedding is not None:
            total, model = await self._embed_and_index(ref, params.embedding, chunks_key, finish)
        else:
            await self._finish(ref, ok=True, pages=pages, chunks=total, excerpt=excerpt,
                               ocr_pages=ocr_pages)  # fmt: skip
        return DocumentProcessingResult(
            file_id=ref.file_id,
            pages=pages,
            chunks=total,
            ocr_pages=ocr_pages,
            ocr_text=excerpt,
            embedding_id=f"emb_{ref.file_id}" if model else None,
            model=model,
            chunks_key=chunks_key,
        )

    async def _extract(
        self,
        ref: DocumentRef,
        params: DocumentProcessingInput,
        first_page: int,
        *,
        chunking: ChunkingConfig | None,
    ) -> ExtractResult:
        batch = ExtractInput(
            ref=ref,
            first_page=first_page,
            last_page=first_page + PAGES_PER_BATCH - 1,
            ocr=params.ocr,
            chunking=chunking,
        )
        result = await self._cpu(EXTRACT_TEXT, batch)
        self._progress.pages_done += result.pages
        return result

    async def _embed_and_index(
        self, ref: DocumentRef, spec: EmbeddingSpec, chunks_key: str, finish: FinishInput
    ) -> tuple[int, str]:
        total = finish.chunks
        self._progress.stage = "embedding"
        self._progress.chunks_total = total
        vectors_keys, model = [], spec.model
        for start in range(0, total, CHUNKS_PER_BATCH):
            batch = EmbedInput(
                ref=ref,
                chunks_key=chunks_key,
                start=start,
                end=min(start + CHUNKS_PER_BATCH, total),
                embedding=spec,
                workflow_id=workflow.info().workflow_id,
            )
            embedded = await EMBED_CHUNKS.execute(
                batch,
                task_queue=_queue(TaskQueue.ML),
                start_to_close_timeout=timedelta(minutes=15),
                heartbeat_timeout=timedelta(seconds=15),
                retry_policy=RETRY,
            )
            vectors_keys.append(embedded.vectors_key)
            model = embedded.model
            self._progress.chunks_done += embedded.count
        self._progress.stage = "indexing"
        indexed = await INDEX_CHUNKS.execute(
            IndexInput(
                ref=ref,
                chunks_key=chunks_key,
                vectors_keys=vectors_keys,
                model=model,
                finish=finish.model_copy(update={"model": model}),
            ),
            task_queue=_queue(TaskQueue.IO),
            start_to_close_timeout=timedelta(minutes=10),
            retry_policy=RETRY,
        )
        return indexed.chunks, model

    async def _cpu(self, activity: ActivityDef[ArgT, ResultT], arg: ArgT) -> ResultT:
        """Run a long CPU activity (extraction, chunking): heartbeating, on weft-cpu."""
        return await activity.execute(
            arg,
            task_queue=_queue(TaskQueue.CPU),
            start_to_close_timeout=timedelta(minutes=30),
            heartbeat_timeout=timedelta(seconds=60),
            retry_policy=RETRY,
        )

    async def _finish(self, ref: DocumentRef, **fields: object) -> None:
        await FINISH_DOCUMENT.execute(
            FinishInput(ref=ref, workflow_id=workflow.info().workflow_id, **fields),
            task_queue=_queue(TaskQueue.IO),
            start_to_close_timeout=timedelta(minutes=2),
            retry_policy=RetryPolicy(maximum_attempts=10),
        )
