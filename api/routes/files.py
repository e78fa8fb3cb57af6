"""Files and document processing (zentoria ``/mcp/upload``, ``/mcp/files``, ``/mcp/workflow``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Header, Query, Request, Response, UploadFile
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from api.deps import Caller, ResourcesDep, TemporalDep, requires
from api.envelope import ok
from engine.db.tables import File as FileRow
from engine.documents import files, processing
from engine.platform.errors import InvalidInput, NotFound

router = APIRouter(prefix="/api/v1/mcp", tags=["files"])


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
    upload = await files.store_upload(
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
        data["execution_id"] = await processing.start_processing(
            caller.db,
            client,
            caller.settings,
            upload.file,
            processing.ProcessOptions(),
            started_by=caller.principal.user_id,
        )
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
    rows, total = await files.list_files(
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
    await processing.remove_file(caller.db, client, resources.store, resources.index, file_id)
    return Response(status_code=204)


class WorkflowTrigger(BaseModel):
    workflow_name: str
    input_data: dict[str, Any] = Field(default_factory=dict)
    options: processing.ProcessOptions | None = None


@router.post("/workflow", status_code=202, summary="Trigger a workflow (document_processor)")
async def create_workflow_run(
    request: Request,
    body: WorkflowTrigger,
    caller: Annotated[Caller, requires("workflows:execute")],
    client: TemporalDep,
) -> JSONResponse:
    if body.workflow_name != processing.KIND:
        raise InvalidInput(
            f"unknown workflow {body.workflow_name!r} (available: {processing.KIND})",
            details={"field": "workflow_name"},
        )
    file_id = body.input_data.get("file_id")
    if not isinstance(file_id, str):
        raise InvalidInput(
            "input_data.file_id is required", details={"field": "input_data.file_id"}
        )
    options = body.options or processing.ProcessOptions.model_validate(
        body.input_data.get("options") or {}
    )
    view = await processing.start_processing_file(
        caller.db, client, caller.settings, file_id, options, started_by=caller.principal.user_id
    )
    return ok(
        processing.run_public_json(view), request_id=request.state.request_id, status_code=202
    )


@router.get("/workflow/{execution_id}", summary="Status, progress and result of a run")
async def read_workflow_run(
    request: Request,
    execution_id: str,
    caller: Annotated[Caller, requires("workflows:read")],
    client: TemporalDep,
) -> JSONResponse:
    view = await processing.read_run(caller.db, client, execution_id)
    return ok(processing.run_public_json(view), request_id=request.state.request_id)
