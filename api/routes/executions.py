"""Executing pipelines and reading, cancelling and approving their executions:
z2 ``/api/v1/workflows/{id}/execute`` and ``…/executions/{execution_id}``,
auterity ``/api/workflows/{id}/execute`` and ``/api/executions/{id}``, and the
canonical ``/api/v1/executions`` (listing, cancel, approvals)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse

from api.deps import Caller, SettingsDep, TemporalDep, requires
from api.envelope import Envelope, ok
from api.query import PageNumber
from api.schemas.executions import (
    ApprovalPublic,
    ApprovalRequest,
    AuterityExecuteRequest,
    CancelPublic,
    ExecutionListPublic,
    ExecutionPublic,
    ExecutionStartedPublic,
    Z2ExecuteRequest,
    Z2ExecutionPublic,
    execution_public,
    started_public,
    z2_execution_public,
)
from engine.pipelines import executions
from engine.pipelines.executions import ExecutionView
from engine.platform.temporal import ui_link

v1 = APIRouter(prefix="/api/v1", tags=["executions"])
auterity = APIRouter(prefix="/api", tags=["executions (auterity)"])
IdempotencyKey = Annotated[str | None, Header(max_length=200)]


@v1.post(
    "/workflows/{workflow_id}/execute",
    status_code=202,
    response_model=Envelope[ExecutionStartedPublic],
    summary="Execute a workflow (one durable PipelineWorkflow run)",
)
async def create_execution(
    request: Request,
    workflow_id: str,
    body: Z2ExecuteRequest,
    caller: Annotated[Caller, requires("workflows:execute")],
    client: TemporalDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    row = await executions.execute(
        caller.db,
        client,
        caller.settings,
        workflow_id,
        input_data=body.input_data,
        started_by=caller.principal.user_id,
        timeout_seconds=body.options.timeout_seconds,
        idempotency_key=idempotency_key,
    )
    view = executions.view_of(row, None)
    started = started_public(
        view,
        scheduled_at=row.scheduled_at,
        ui_url=ui_link(caller.settings, view.temporal_workflow_id),
    )
    return ok(started, request_id=request.state.request_id, status_code=202)


@v1.get(
    "/workflows/{workflow_id}/executions/{execution_id}",
    response_model=Envelope[Z2ExecutionPublic],
    summary="Status, progress, trace and results of an execution (z2 shape)",
)
async def read_workflow_execution(
    request: Request,
    workflow_id: str,
    execution_id: str,
    caller: Annotated[Caller, requires("workflows:read")],
    client: TemporalDep,
) -> JSONResponse:
    view = await executions.read(caller.db, client, execution_id, definition_id=workflow_id)
    ui_url = ui_link(caller.settings, view.temporal_workflow_id)
    return ok(z2_execution_public(view, ui_url), request_id=request.state.request_id)


@v1.get(
    "/executions",
    response_model=Envelope[ExecutionListPublic],
    summary="List executions (filter by workflow and status)",
)
async def read_executions(
    request: Request,
    caller: Annotated[Caller, requires("workflows:read")],
    workflow_id: str | None = None,
    status: str | None = None,
    page: PageNumber = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> JSONResponse:
    listing = await _listing(caller, workflow_id, status, page, limit)
    return ok(listing, request_id=request.state.request_id)


@v1.get(
    "/executions/{execution_id}",
    response_model=Envelope[ExecutionPublic],
    summary="Status, progress, per-step results, logs and trace of an execution",
)
async def read_execution(
    request: Request,
    execution_id: str,
    caller: Annotated[Caller, requires("workflows:read")],
    client: TemporalDep,
) -> JSONResponse:
    view = await executions.read(caller.db, client, execution_id)
    ui_url = ui_link(caller.settings, view.temporal_workflow_id)
    return ok(execution_public(view, ui_url), request_id=request.state.request_id)


@v1.post(
    "/executions/{execution_id}/cancel",
    status_code=202,
    response_model=Envelope[CancelPublic],
    summary="Cancel a running execution (its running steps are cancelled)",
)
async def cancel_execution(
    request: Request,
    execution_id: str,
    caller: Annotated[Caller, requires("workflows:execute")],
    client: TemporalDep,
) -> JSONResponse:
    row = await executions.cancel(caller.db, client, execution_id)
    answer = CancelPublic(id=row.id, execution_id=row.id, status="cancelling")
    return ok(answer, request_id=request.state.request_id, status_code=202)


@v1.post(
    "/executions/{execution_id}/approvals/{step_id}",
    response_model=Envelope[ApprovalPublic],
    summary="Approve or reject a human_approval step that is waiting",
)
async def create_approval(
    request: Request,
    execution_id: str,
    step_id: str,
    body: ApprovalRequest,
    caller: Annotated[Caller, requires("workflows:execute")],
    client: TemporalDep,
) -> JSONResponse:
    decision = await executions.decide(
        caller.db,
        client,
        execution_id,
        step_id,
        approved=body.approved,
        decided_by=caller.principal.user_id,
        comment=body.comment,
    )
    return ok(ApprovalPublic.model_validate(decision), request_id=request.state.request_id)


# --- auterity: bare bodies ----------------------------------------------------------


@auterity.post(
    "/workflows/{workflow_id}/execute",
    status_code=202,
    response_model=ExecutionStartedPublic,
    summary="Execute a workflow (auterity shape; priority and scheduled_at)",
)
async def create_auterity_execution(
    workflow_id: str,
    body: AuterityExecuteRequest,
    caller: Annotated[Caller, requires("workflows:execute")],
    client: TemporalDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> ExecutionStartedPublic:
    row = await executions.execute(
        caller.db,
        client,
        settings,
        workflow_id,
        input_data=body.input_data,
        started_by=caller.principal.user_id,
        priority=body.priority,
        scheduled_at=body.scheduled_at,
        idempotency_key=idempotency_key,
    )
    view = executions.view_of(row, None)
    ui_url = ui_link(settings, view.temporal_workflow_id)
    return started_public(view, scheduled_at=row.scheduled_at, ui_url=ui_url)


@auterity.get(
    "/executions",
    response_model=ExecutionListPublic,
    summary="List executions (auterity pagination)",
)
async def read_auterity_executions(
    caller: Annotated[Caller, requires("workflows:read")],
    workflow_id: str | None = None,
    status: str | None = None,
    page: PageNumber = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> ExecutionListPublic:
    return await _listing(caller, workflow_id, status, page, limit)


@auterity.get(
    "/executions/{execution_id}",
    response_model=ExecutionPublic,
    summary="Execution status, results and logs (auterity shape)",
)
async def read_auterity_execution(
    execution_id: str,
    caller: Annotated[Caller, requires("workflows:read")],
    client: TemporalDep,
) -> ExecutionPublic:
    view = await executions.read(caller.db, client, execution_id)
    return execution_public(view, ui_link(caller.settings, view.temporal_workflow_id))


@auterity.post(
    "/executions/{execution_id}/cancel",
    status_code=202,
    response_model=CancelPublic,
    summary="Cancel a running execution (auterity shape)",
)
async def cancel_auterity_execution(
    execution_id: str,
    caller: Annotated[Caller, requires("workflows:execute")],
    client: TemporalDep,
) -> CancelPublic:
    row = await executions.cancel(caller.db, client, execution_id)
    return CancelPublic(id=row.id, execution_id=row.id, status="cancelling")


async def _listing(
    caller: Caller, workflow_id: str | None, status: str | None, page: int, limit: int
) -> ExecutionListPublic:
    rows, total = await executions.list_executions(
        caller.db,
        definition_id=workflow_id,
        status=status,
        limit=limit,
        offset=(page - 1) * limit,
    )
    return ExecutionListPublic(
        executions=[_listed(caller, executions.view_of(row, None)) for row in rows],
        total=total,
        page=page,
        limit=limit,
        has_next=page * limit < total,
    )


def _listed(caller: Caller, view: ExecutionView) -> ExecutionPublic:
    return execution_public(view, ui_link(caller.settings, view.temporal_workflow_id))
