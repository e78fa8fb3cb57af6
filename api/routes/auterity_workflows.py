"""Workflow definitions on auterity's ``/api/workflows``: ``steps`` in, the same
steps back (ids sent or ``step-N``, with ``dependencies``), as bare objects.
Errors keep the common envelope; a missing workflow is auterity's ``NOT_FOUND``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Query, Response

from api.deps import Caller, requires
from api.query import PageNumber
from api.schemas.workflows import (
    AuterityStatus,
    AuterityWorkflowCreate,
    AuterityWorkflowPublic,
    AuterityWorkflowsPublic,
    AuterityWorkflowUpdate,
    steps_shape,
)
from engine.pipelines import store
from engine.platform.errors import NotFound

router = APIRouter(prefix="/api/workflows", tags=["workflows (auterity)"])

Reader = Annotated[Caller, requires("workflows:read")]
Writer = Annotated[Caller, requires("workflows:write")]


@contextmanager
def auterity_codes() -> Iterator[None]:
    """auterity has one code for anything missing: ``NOT_FOUND``."""
    try:
        yield
    except store.WorkflowNotFound as exc:
        raise NotFound(exc.message) from None


@router.get("", response_model=AuterityWorkflowsPublic, summary="List workflows (auterity)")
async def read_auterity_workflows(
    caller: Reader,
    page: PageNumber = 1,
    limit: Annotated[int, Query(ge=1, le=store.MAX_PAGE_SIZE)] = 20,
    status: AuterityStatus | None = None,
    category: Annotated[str | None, Query(max_length=100)] = None,
) -> AuterityWorkflowsPublic:
    found = await store.list_definitions(
        caller.db, status=status, category=category, page=page, limit=limit
    )
    return AuterityWorkflowsPublic(
        workflows=[AuterityWorkflowPublic.of(row) for row in found.rows],
        total=found.total,
        page=found.page,
        limit=limit,
        has_next=found.has_next,
    )


@router.post(
    "",
    status_code=201,
    response_model=AuterityWorkflowPublic,
    summary="Create a workflow from steps (auterity)",
)
async def create_auterity_workflow(
    caller: Writer, body: AuterityWorkflowCreate
) -> AuterityWorkflowPublic:
    row = await store.create_definition(
        caller.db,
        steps_shape(body.steps, body.data_categories),
        name=body.name,
        description=body.description,
        category=body.category,
        status=body.status,
        created_by=caller.principal.user_id,
    )
    return AuterityWorkflowPublic.of(row)


@router.get(
    "/{workflow_id}", response_model=AuterityWorkflowPublic, summary="Read a workflow (auterity)"
)
async def read_auterity_workflow(workflow_id: str, caller: Reader) -> AuterityWorkflowPublic:
    with auterity_codes():
        row = await store.get_definition(caller.db, workflow_id)
    return AuterityWorkflowPublic.of(row)


@router.put(
    "/{workflow_id}",
    response_model=AuterityWorkflowPublic,
    summary="Update a workflow (auterity; new steps are validated again)",
)
async def update_auterity_workflow(
    workflow_id: str, caller: Writer, body: AuterityWorkflowUpdate
) -> AuterityWorkflowPublic:
    with auterity_codes():
        row = await store.update_definition(
            caller.db,
            workflow_id,
            shape=steps_shape(body.steps) if body.steps is not None else None,
            name=body.name,
            description=body.description,
            category=body.category,
            status=body.status,
            data_categories=body.data_categories,
        )
    return AuterityWorkflowPublic.of(row)


@router.delete(
    "/{workflow_id}", status_code=204, summary="Delete a workflow (auterity; soft delete)"
)
async def delete_auterity_workflow(workflow_id: str, caller: Writer) -> Response:
    with auterity_codes():
        await store.delete_definition(caller.db, workflow_id)
    return Response(status_code=204)
