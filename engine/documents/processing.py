"""Document processing runs (``doc-{file_id}``): start, read, cancel.

A file has at most one processing run at a time: the run id derives from the
file id and a start while one is going joins it. Choosing another embedding
model for a processed file re-embeds the chunks it already has, without
extracting the text again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, StrictBool
from temporalio.client import Client, WorkflowExecutionStatus

from engine.db.scope import TenantScope
from engine.db.tables import EmbeddingEndpoint, File
from engine.documents.chunking import ChunkingConfig
from engine.documents.files import delete_file
from engine.platform.errors import NotFound
from engine.platform.runs import RunOptions, cancel_run, describe_run, start_run
from engine.platform.settings import Settings
from engine.storage.base import BlobStore, work_prefix
from engine.vectors.base import VectorIndex
from workflows.document_payloads import EmbeddingSpec
from workflows.document_processing import (
    DocumentProcessingInput,
    DocumentProcessingResult,
    DocumentProcessingWorkflow,
)

KIND = "document_processor"
STATUS = {
    WorkflowExecutionStatus.RUNNING: "running",
    WorkflowExecutionStatus.COMPLETED: "completed",
    WorkflowExecutionStatus.FAILED: "failed",
    WorkflowExecutionStatus.CANCELED: "cancelled",
    WorkflowExecutionStatus.TERMINATED: "terminated",
    WorkflowExecutionStatus.TIMED_OUT: "failed",
    WorkflowExecutionStatus.CONTINUED_AS_NEW: "running",
}


def workflow_id_for(file_id: str) -> str:
    return f"doc-{file_id}"


class EmbeddingChoice(EmbeddingSpec):
    """The embedding a request asks for: as the run's ``EmbeddingSpec``, but
    ``normalize`` must be a JSON boolean (0 or "yes" are refused, not read as one)."""

    normalize: StrictBool = True


class ProcessOptions(BaseModel):
    ocr: StrictBool = True
    embedding: StrictBool | EmbeddingChoice = True
    chunking: ChunkingConfig = Field(default_factory=ChunkingConfig)


class DocumentRunResult(BaseModel):
    ocr_text: str
    embedding_id: str | None
    pages: int
    chunks: int
    model: str | None
    ocr_pages: int


class DocumentRunProgress(BaseModel):
    stage: str
    pages_done: int
    pages_total: int
    chunks_done: int
    chunks_total: int


class RunError(BaseModel):
    code: str
    message: str | None


class DocumentRunPublic(BaseModel):
    """A processing run as zentoria's ``/mcp/workflow/{id}`` shows it."""

    execution_id: str
    workflow_name: str = KIND
    status: str
    started_at: datetime | None = None
    finished_at: datetime | None = None
    file_id: str | None = None
    progress: DocumentRunProgress | None = None
    result: DocumentRunResult | None = None
    error: RunError | None = None
    temporal_ui_url: str | None = None  # the run in the Temporal Web UI


async def _embedding_spec(
    db: TenantScope, settings: Settings, options: ProcessOptions
) -> EmbeddingSpec | None:
    if options.embedding is True:
        return EmbeddingSpec(model=settings.default_embedding_model)
    if options.embedding is False:
        return None
    spec = options.embedding
    if spec.endpoint_id:
        endpoint = await db.get(EmbeddingEndpoint, spec.endpoint_id, what="endpoint")
        spec = spec.model_copy(update={"model": endpoint.model})
    return spec


async def start_processing(
    db: TenantScope,
    client: Client,
    settings: Settings,
    row: File,
    options: ProcessOptions,
    *,
    started_by: str,
) -> str:
    """Start (or join) ``doc-{file_id}`` and mark the file as processing; returns the run id."""
    spec = await _embedding_spec(db, settings, options)
    params = DocumentProcessingInput(
        tenant_id=row.tenant_id,
        file_id=row.id,
        ocr=options.ocr,
        embedding=spec,
        chunking=options.chunking,
    )
    if row.status == "processed" and row.chunks and spec and spec.model != row.embedding_model:
        params.reuse_chunks_key = f"{work_prefix(row.tenant_id, row.id)}/chunks.json"
        params.reuse_chunks = row.chunks
    run = RunOptions(
        workflow_id=workflow_id_for(row.id),
        kind=KIND,
        tenant_id=row.tenant_id,
        started_by=started_by,
        definition_id=row.id,
        summary=f"Process {row.filename}",
        join_existing=True,
    )
    handle = await start_run(client, settings, DocumentProcessingWorkflow.run, params, run)
    row.status, row.workflow_id = "processing", handle.id
    await db.session.commit()
    return handle.id


async def start_processing_file(
    db: TenantScope,
    client: Client,
    settings: Settings,
    file_id: str,
    options: ProcessOptions,
    *,
    started_by: str,
) -> DocumentRunPublic:
    """Start processing one of the tenant's files by id (zentoria ``/mcp/workflow``)."""
    row = await db.get(File, file_id, what="file")
    execution_id = await start_processing(db, client, settings, row, options, started_by=started_by)
    return DocumentRunPublic(execution_id=execution_id, status="running", started_at=row.updated_at)


async def read_run(db: TenantScope, client: Client, execution_id: str) -> DocumentRunPublic:
    """Status, progress and result of one of the tenant's processing runs."""
    if not execution_id.startswith("doc-"):
        raise NotFound(f"workflow run {execution_id} not found")
    row = await db.get(File, execution_id.removeprefix("doc-"), what="workflow run")
    handle = client.get_workflow_handle_for(DocumentProcessingWorkflow.run, execution_id)
    try:
        described = await describe_run(handle, "workflow run")
    except NotFound:
        if row.status not in ("processed", "failed"):
            raise
        return _kept_run(row, execution_id)
    status = STATUS.get(described.status or WorkflowExecutionStatus.RUNNING, "running")
    view = DocumentRunPublic(
        execution_id=execution_id,
        status=status,
        started_at=described.start_time,
        finished_at=described.close_time,
        file_id=row.id,
    )
    if status == "running":
        progress = await handle.query(DocumentProcessingWorkflow.progress)
        view.progress = DocumentRunProgress.model_validate(progress.model_dump())
    elif status == "completed":
        result: DocumentProcessingResult = await handle.result()
        view.result = DocumentRunResult.model_validate(result.model_dump())
        view.progress = DocumentRunProgress(
            stage="completed",
            pages_done=result.pages,
            pages_total=result.pages,
            chunks_done=result.chunks,
            chunks_total=result.chunks,
        )
    else:
        view.error = RunError(code=row.error_code or status.upper(), message=row.error_message)
    return view


def _kept_run(row: File, execution_id: str) -> DocumentRunPublic:
    """A finished run Temporal no longer keeps (past the namespace's retention), as
    the file's row remembers it."""
    view = DocumentRunPublic(
        execution_id=execution_id,
        status="completed" if row.status == "processed" else "failed",
        finished_at=row.processed_at or row.updated_at,
        file_id=row.id,
    )
    if row.status == "failed":
        view.error = RunError(code=row.error_code or "FAILED", message=row.error_message)
        return view
    pages, chunks = row.pages or 0, row.chunks or 0
    view.result = DocumentRunResult(
        ocr_text=row.ocr_excerpt or "",
        embedding_id=f"emb_{row.id}" if row.embedding_model else None,
        pages=pages,
        chunks=chunks,
        model=row.embedding_model,
        ocr_pages=row.ocr_pages or 0,
    )
    view.progress = DocumentRunProgress(stage="completed", pages_done=pages, pages_total=pages,
                                        chunks_done=chunks, chunks_total=chunks)  # fmt: skip
    return view


async def remove_file(
    db: TenantScope, client: Client, store: BlobStore, index: VectorIndex, file_id: str
) -> None:
    """Cancel the file's processing run if it is going, then delete the file,
    its chunks, vectors and blobs."""
    row = await db.get(File, file_id, what="file")
    if row.status == "processing":
        await cancel_run(client, workflow_id_for(row.id))
    await delete_file(db, store, index, row.id)


def run_public_json(view: DocumentRunPublic) -> dict[str, Any]:
    """The run as JSON, leaving out the parts that do not apply to its status."""
    data = view.model_dump(mode="json", exclude={"progress", "result", "error"})
    for part in ("progress", "result", "error"):
        value = getattr(view, part)
        if value is not None:
            data[part] = value.model_dump(mode="json")
    return data
