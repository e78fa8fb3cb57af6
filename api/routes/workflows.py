"""Workflow definitions on z2's ``/api/v1/workflows``: ``definition.nodes/edges``
in, the same graph back (whichever seed wrote the definition)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from api.deps import Caller, requires
from api.envelope import Envelope, ok
from api.query import PageNumber
from api.schemas.workflows import (
    WorkflowCreate,
    WorkflowPublic,
    WorkflowsPublic,
    WorkflowSummaryPublic,
    WorkflowUpdate,
    Z2Status,
)
from engine.pipelines import store

router = APIRouter(prefix="/api/v1/workflows", tags=["workflows"])

Reader = Annotated[Caller, requires("workflows:read")]
Writer = Annotated[Caller, requires("workflows:write")]


@router.get("", response_model=Envelope[WorkflowsPublic], summary="List workflows")
async def read_workflows(
    request: Request,
    caller: Reader,
    status: Z2Status | None = None,
    page: PageNumber = 1,
    limit: Annotated[int | None, Query(ge=1, le=store.MAX_PAGE_SIZE)] = None,
) -> JSONResponse:
    """Every workflow of the tenant, newest first; ``limit`` (and ``page``) page them."""
    found = await store.list_definitions(caller.db, status=status, page=page, limit=limit)
    data = WorkflowsPublic(
        workflows=[WorkflowSummaryPublic.of(row) for row in found.rows], total=found.total
    )
    return ok(data, request_id=request.state.request_id)


@router.post(
    "", status_code=201, response_model=Envelope[WorkflowPublic], summary="Create a workflow"
)
async def create_workflow(request: Request, caller: Writer, body: WorkflowCreate) -> JSONResponse:
    row = await store.create_definition(
        caller.db,
        body.definition.shape(body.data_categories),
        name=body.name,
        description=body.description,
        status=body.status,
        created_by=caller.principal.user_id,
    )
    return ok(WorkflowPublic.of_row(row), request_id=request.state.request_id, status_code=201)


@router.get("/{workflow_id}", response_model=Envelope[WorkflowPublic], summary="Read a workflow")
async def read_workflow(request: Request, workflow_id: str, caller: Reader) -> JSONResponse:
    row = await store.get_definition(caller.db, workflow_id)
    return ok(WorkflowPublic.of_row(row), request_id=request.state.request_id)


@router.put(
    "/{workflow_id}",
    response_model=Envelope[WorkflowPublic],
    summary="Update a workflow (a new definition is validated again; the version goes up)",
)
async def update_workflow(
    request: Request, workflow_id: str, caller: Writer, body: WorkflowUpdate
) -> JSONResponse:
    row = await store.update_definition(
        caller.db,
        workflow_id,
        shape=body.definition.shape() if body.definition else None,
        name=body.name,
        description=body.description,
        status=body.status,
        data_categories=body.data_categories,
    )
    return ok(WorkflowPublic.of_row(row), request_id=request.state.request_id)


@router.delete("/{workflow_id}", status_code=204, summary="Delete a workflow (soft delete)")
async def delete_workflow(workflow_id: str, caller: Writer) -> Response:
    await store.delete_definition(caller.db, workflow_id)
    return Response(status_code=204)
