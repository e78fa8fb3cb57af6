"""Files and document processing (zentoria ``/mcp/upload``, ``/mcp/files``, ``/mcp/workflow``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Header, Query, Request, Response, UploadFile
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, Field
from temporalio.client import WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from api.deps import Caller, ResourcesDep, TemporalDep, requires
from api.envelope import ok
from engine import documents
from engine.chunking import ChunkingConfig
from engine.errors import InvalidInput, NotFound
from engine.models import File as FileRow
from engine.queues import TaskQueue, queue_name
from engine.temporal import run_attributes
from workflows.document_processing import (
    DocumentProcessingInput,
    DocumentProcessingResult,
    DocumentProcessingWorkflow,
)
from workflows.documents import EmbeddingSpec

router = APIRouter(prefix="/api/v1/mcp", tags=["files"])
WORKFLOW_NAME = "document_processor"
STATUS = {
    WorkflowExecutionStatus.RUNNING: "running",
    WorkflowExecutionStatus.COMPLETED: "completed",
    WorkflowExecutionStatus.FAILED: "failed",
    WorkflowExecutionStatus.CANCELED: "cancelled",
    WorkflowExecutionStatus.TERMINATED: "terminated",
    WorkflowExecutionStatus.TIMED_OUT: "failed",
    WorkflowExecutionStatus.CONTINUED_AS_NEW: "running",
}


def file_public(row: FileRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "file_id": row.id,
        "filename": row.filename,
        "size": row.size,
        "mime_type": row.mime_type,
        "sha256": row.sha256,
        "project_id": row.project_id,
        "status": row.status,
        "pages": row.pages,
        "chunks": row.chunks,
        "embedding_model": row.embedding_model,
        "error": {"code": row.error_code, "message": row.error_message} if row.error_code else None,
        "uploaded_at": row.created_at.isoformat(),
        "processed_at": row.processed_at.isoformat() if row.processed_at else None,
        "url": f"/api/v1/mcp/files/{row.id}/download",
    }


def workflow_id_for(file_id: str) -> str:
    return f"doc-{file_id}"


class ProcessOptions(BaseModel):
    ocr: bool = True
    embedding: bool | EmbeddingSpec = True
    chunking: ChunkingConfig = Field(default_factory=ChunkingConfig)


async def start_processing(
    caller: Caller, client: TemporalDep, row: FileRow, options: ProcessOptions
) -> str:
    """Start (or join) ``doc-{file_id}``; re-embedding reuses existing chunks."""
    spec: EmbeddingSpec | None
    if options.embedding is True:
        spec = EmbeddingSpec(model=caller.settings.default_embedding_model)
    elif options.embedding is False:
        spec = None
    else:
        spec = options.embedding
    if spec is not None and spec.endpoint_id:
        from engine.models import EmbeddingEndpoint

        endpoint = await caller.db.get(EmbeddingEndpoint, spec.endpoint_id, what="endpoint")
        spec = spec.model_copy(update={"model": endpoint.model})
    params = DocumentProcessingInput(
        tenant_id=row.tenant_id,
        file_id=row.id,
        ocr=options.ocr,
        embedding=spec,
        chunking=options.chunking,
    )
    if row.status == "processed" and row.chunks and spec and spec.model != row.embedding_model:
        from engine.storage import work_prefix

        params.reuse_chunks_key = f"{work_prefix(row.tenant_id, row.id)}/chunks.json"
        params.reuse_chunks = row.chunks
    workflow_id = workflow_id_for(row.id)
    await client.start_workflow(
        DocumentProcessingWorkflow.run,
        params,
        id=workflow_id,
        task_queue=queue_name(TaskQueue.WORKFLOWS, caller.settings.task_queue_prefix),
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=run_attributes(
            tenant_id=row.tenant_id,
            kind=WORKFLOW_NAME,
            started_by=caller.principal.user_id,
            definition_id=row.id,
        ),
        static_summary=f"Process {row.filename}",
    )
    row.status, row.workflow_id = "processing", workflow_id
    await caller.session.commit()
    return workflow_id


@router.post("/upload", status_code=201, summary="Upload a file (and start processing it)")
async def create_file(
    request: Request,
    caller: Annotated[Caller, requires("files:write")],
    resources: ResourcesDep,
    client: TemporalDep,
    file: Annotated[UploadFile, File()],
    filename: Annotated[str | None, Form()] = None,
    project_id: Annotated[str | None, Form(max_length=200)] = None,
    process: Annotated[bool, Form()] = True,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JSONResponse:
    upload = await documents.store_upload(
        caller.session,
        resources.store,
        tenant_id=caller.tenant_id,
        user_id=caller.principal.user_id,
        source=file.file,
        filename=filename or file.filename or "",
        content_type=file.content_type,
        project_id=project_id,
        idempotency_key=idempotency_key,
        max_bytes=caller.settings.max_upload_bytes,
    )
    data = file_public(upload.file)
    if upload.created and process:
        data["execution_id"] = await start_processing(caller, client, upload.file, ProcessOptions())
        data["status"] = upload.file.status
    elif upload.file.workflow_id:
        data["execution_id"] = upload.file.workflow_id
    status = 201 if upload.created else 200
    return ok(data, request_id=request.state.request_id, status_code=status)


@router.get("/files", summary="List files")
async def read_files(
    request: Request,
    caller: Annotated[Caller, requires("files:read")],
    project_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
    sort: str = "created_at:desc",
) -> JSONResponse:
    rows, total = await documents.list_files(
        caller.db, project_id=project_id, limit=limit, offset=offset, sort=sort
    )
    items = [file_public(row) for row in rows]
    pagination = {
        "total": total,
        "limit": limit,
        "offset": offset,
        "has_more": offset + len(rows) < total,
    }
    return ok(
        {"files": items, "items": items, "pagination": pagination},
        request_id=request.state.request_id,
    )


@router.get("/files/{file_id}", summary="Read a file's metadata")
async def read_file(
    request: Request, file_id: str, caller: Annotated[Caller, requires("files:read")]
) -> JSONResponse:
    row = await caller.db.get(FileRow, file_id, what="file")
    return ok(file_public(row), request_id=request.state.request_id)


@router.get("/files/{file_id}/download", summary="Download a file")
async def download_file(
    file_id: str, caller: Annotated[Caller, requires("files:read")], resources: ResourcesDep
) -> Response:
    row = await caller.db.get(FileRow, file_id, what="file")
    path = resources.store.local_path(row.blob_key)
    if path is not None:
        if not path.exists():
            raise NotFound(f"file {file_id} has no content")
        # FileResponse streams from disk and encodes the name safely (RFC 6266/5987).
        return FileResponse(
            path, media_type=row.mime_type, filename=row.filename,
            content_disposition_type="attachment",
        )  # fmt: skip
    if not await resources.store.exists(row.blob_key):
        raise NotFound(f"file {file_id} has no content")
    disposition = FileResponse("", filename=row.filename).headers["content-disposition"]
    return StreamingResponse(
        resources.store.stream(row.blob_key),
        media_type=row.mime_type,
        headers={"Content-Disposition": disposition, "Content-Length": str(row.size)},
    )


@router.delete("/files/{file_id}", status_code=204, summary="Delete a file, its chunks and vectors")
async def delete_file(
    file_id: str,
    caller: Annotated[Caller, requires("files:write")],
    resources: ResourcesDep,
    client: TemporalDep,
) -> Response:
    row = await caller.db.get(FileRow, file_id, what="file")
    if row.status == "processing":
        try:
            await client.get_workflow_handle(workflow_id_for(row.id)).cancel()
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
    await documents.delete_file(caller.db, resources.store, resources.index, row.id)
    return Response(status_code=204)


class WorkflowTrigger(BaseModel):
    workflow_name: str
    input_data: dict[str, Any] = Field(default_factory=dict)
    options: ProcessOptions | None = None


@router.post("/workflow", status_code=202, summary="Trigger a workflow (document_processor)")
async def create_workflow_run(
    request: Request,
    body: WorkflowTrigger,
    caller: Annotated[Caller, requires("workflows:execute")],
    client: TemporalDep,
) -> JSONResponse:
    if body.workflow_name != WORKFLOW_NAME:
        raise InvalidInput(
            f"unknown workflow {body.workflow_name!r} (available: {WORKFLOW_NAME})",
            details={"field": "workflow_name"},
        )
    file_id = body.input_data.get("file_id")
    if not isinstance(file_id, str):
        raise InvalidInput(
            "input_data.file_id is required", details={"field": "input_data.file_id"}
        )
    options = body.options or ProcessOptions.model_validate(body.input_data.get("options") or {})
    row = await caller.db.get(FileRow, file_id, what="file")
    execution_id = await start_processing(caller, client, row, options)
    data = {
        "execution_id": execution_id,
        "workflow_name": WORKFLOW_NAME,
        "status": "running",
        "started_at": row.updated_at.isoformat(),
    }
    return ok(data, request_id=request.state.request_id, status_code=202)


@router.get("/workflow/{execution_id}", summary="Status, progress and result of a run")
async def read_workflow_run(
    request: Request,
    execution_id: str,
    caller: Annotated[Caller, requires("workflows:read")],
    client: TemporalDep,
) -> JSONResponse:
    if not execution_id.startswith("doc-"):
        raise NotFound(f"workflow run {execution_id} not found")
    row = await caller.db.get(FileRow, execution_id.removeprefix("doc-"), what="workflow run")
    handle = client.get_workflow_handle_for(DocumentProcessingWorkflow.run, execution_id)
    try:
        described = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise NotFound(f"workflow run {execution_id} not found") from None
        raise
    status = STATUS.get(described.status or WorkflowExecutionStatus.RUNNING, "running")
    data: dict[str, Any] = {
        "execution_id": execution_id,
        "workflow_name": WORKFLOW_NAME,
        "status": status,
        "started_at": described.start_time.isoformat() if described.start_time else None,
        "finished_at": described.close_time.isoformat() if described.close_time else None,
        "file_id": row.id,
    }
    if status == "running":
        progress = await handle.query(DocumentProcessingWorkflow.progress)
        data["progress"] = progress.model_dump()
    elif status == "completed":
        result: DocumentProcessingResult = await handle.result()
        data["result"] = {
            "ocr_text": result.ocr_text,
            "embedding_id": result.embedding_id,
            "pages": result.pages,
            "chunks": result.chunks,
            "model": result.model,
            "ocr_pages": result.ocr_pages,
        }
        data["progress"] = {
            "stage": "completed",
            "pages_done": result.pages,
            "pages_total": result.pages,
            "chunks_done": result.chunks,
            "chunks_total": result.chunks,
        }
    else:
        data["error"] = {"code": row.error_code or status.upper(), "message": row.error_message}
    return ok(data, request_id=request.state.request_id)
