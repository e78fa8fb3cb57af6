"""Files and document processing (zentoria ``/mcp/upload``, ``/mcp/files``, ``/mcp/workflow``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Header, Query, Request, Response, UploadFile
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from api.deps import Caller, ResourcesDep, TemporalDep, requires
from api.envelope import Envelope, ok
from api.links import base_url
from api.query import Offset
from api.schemas.documents import FilePublic, FilesPublic, FileUploadPublic, PaginationPublic
from engine.db.tables import File as FileRow
from engine.documents import files, processing
from engine.platform.errors import InvalidInput, NotFound
from engine.platform.temporal import ui_link

router = APIRouter(prefix="/api/v1/mcp", tags=["files"])


@router.post(
    "/upload",
    status_code=201,
    response_model=Envelope[FileUploadPublic],
    responses={200: {"model": Envelope[FileUploadPublic], "description": "Already uploaded"}},
    summary="Upload a file (and start processing it)",
)
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
        base_url=base_url(request, caller.settings),
    )
    execution_id = upload.file.workflow_id or None
    # A repeat of an upload whose run never started (the first request failed after
    # the file was kept) starts it now; doc-{file_id} is started once either way.
    if process and (upload.created or upload.file.status == "uploaded"):
        execution_id = await processing.start_processing(
            caller.db,
            client,
            caller.settings,
            upload.file,
            processing.ProcessOptions(),
            started_by=caller.principal.user_id,
        )
    data = FileUploadPublic(
        **FilePublic.of(upload.file, base_url(request, caller.settings)).model_dump(),
        execution_id=execution_id,
        temporal_ui_url=ui_link(caller.settings, execution_id),
    )
    # No run started or joined (or no Web UI): those keys are left out, not null.
    body = data.model_dump(mode="json")
    for key in ("execution_id", "temporal_ui_url"):
        if body[key] is None:
            del body[key]
    status = 201 if upload.created else 200
    return ok(body, request_id=request.state.request_id, status_code=status)


@router.get("/files", response_model=Envelope[FilesPublic], summary="List files")
async def read_files(
    request: Request,
    caller: Annotated[Caller, requires("files:read")],
    project_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Offset = 0,
    sort: str = "created_at:desc",
) -> JSONResponse:
    rows, total = await files.list_files(
        caller.db, project_id=project_id, limit=limit, offset=offset, sort=sort
    )
    base = base_url(request, caller.settings)
    items = [FilePublic.of(row, base) for row in rows]
    pagination = PaginationPublic(
        total=total, limit=limit, offset=offset, has_more=offset + len(rows) < total
    )
    data = FilesPublic(files=items, items=items, pagination=pagination)
    return ok(data, request_id=request.state.request_id)


@router.get(
    "/files/{file_id}", response_model=Envelope[FilePublic], summary="Read a file's metadata"
)
async def read_file(
    request: Request, file_id: str, caller: Annotated[Caller, requires("files:read")]
) -> JSONResponse:
    row = await caller.db.get(FileRow, file_id, what="file")
    data = FilePublic.of(row, base_url(request, caller.settings))
    return ok(data, request_id=request.state.request_id)


@router.get(
    "/files/{file_id}/download",
    response_class=Response,
    responses={
        200: {
            "description": "The file's bytes, with its own media type",
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
    summary="Download a file",
)
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


@router.post(
    "/workflow",
    status_code=202,
    response_model=Envelope[processing.DocumentRunPublic],
    summary="Trigger a workflow (document_processor)",
)
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
    return ok(_run_json(caller, view), request_id=request.state.request_id, status_code=202)


@router.get(
    "/workflow/{execution_id}",
    response_model=Envelope[processing.DocumentRunPublic],
    summary="Status, progress and result of a run",
)
async def read_workflow_run(
    request: Request,
    execution_id: str,
    caller: Annotated[Caller, requires("workflows:read")],
    client: TemporalDep,
) -> JSONResponse:
    view = await processing.read_run(caller.db, client, execution_id)
    return ok(_run_json(caller, view), request_id=request.state.request_id)


def _run_json(caller: Caller, view: processing.DocumentRunPublic) -> dict[str, Any]:
    """The run with its link in the Temporal Web UI (the run id is the workflow id)."""
    link = ui_link(caller.settings, view.execution_id)
    return processing.run_public_json(view.model_copy(update={"temporal_ui_url": link}))
