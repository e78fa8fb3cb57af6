"""Pipeline schedules (``/api/v1/schedules``): Temporal Schedules that execute a stored
workflow on a cron string or an interval; each run is an ordinary execution."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from api.deps import Caller, TemporalDep, requires
from api.envelope import Envelope, ok
from api.query import PageNumber
from api.schemas.schedules import ScheduleCreate, ScheduleNote, SchedulePublic, SchedulesPublic
from engine.pipelines import schedules

router = APIRouter(prefix="/api/v1/schedules", tags=["schedules"])

Reader = Annotated[Caller, requires("workflows:read")]
Executor = Annotated[Caller, requires("workflows:execute")]


@router.post(
    "",
    status_code=201,
    response_model=Envelope[SchedulePublic],
    summary="Schedule a workflow on a cron string or an interval",
)
async def create_schedule(
    request: Request, body: ScheduleCreate, caller: Executor, client: TemporalDep
) -> JSONResponse:
    view = await schedules.create_schedule(
        caller.db,
        client,
        caller.settings,
        body.workflow_id,
        cron=body.cron,
        interval_seconds=body.interval_seconds,
        timezone=body.timezone,
        input_data=body.input_data,
        created_by=caller.principal.user_id,
        priority=body.priority,
        paused=body.paused,
        note=body.note,
    )
    return ok(SchedulePublic.of(view), request_id=request.state.request_id, status_code=201)


@router.get(
    "",
    response_model=Envelope[SchedulesPublic],
    summary="List schedules with their next run times (filter by workflow)",
)
async def read_schedules(
    request: Request,
    caller: Reader,
    client: TemporalDep,
    workflow_id: Annotated[str | None, Query(max_length=40)] = None,
    page: PageNumber = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> JSONResponse:
    views, total = await schedules.list_schedules(
        caller.db, client, definition_id=workflow_id, page=page, limit=limit
    )
    listing = SchedulesPublic(
        schedules=[SchedulePublic.of(view) for view in views],
        total=total,
        page=page,
        limit=limit,
        has_next=page * limit < total,
    )
    return ok(listing, request_id=request.state.request_id)


@router.get(
    "/{schedule_id}",
    response_model=Envelope[SchedulePublic],
    summary="Read a schedule: next run times and recent runs with their executions",
)
async def read_schedule(
    request: Request, schedule_id: str, caller: Reader, client: TemporalDep
) -> JSONResponse:
    view = await schedules.get_schedule(caller.db, client, schedule_id)
    return ok(SchedulePublic.of(view), request_id=request.state.request_id)


@router.post(
    "/{schedule_id}/pause",
    response_model=Envelope[SchedulePublic],
    summary="Pause a schedule (executions already started run on)",
)
async def pause_schedule(
    request: Request,
    schedule_id: str,
    caller: Executor,
    client: TemporalDep,
    body: ScheduleNote | None = None,
) -> JSONResponse:
    note = body.note if body else None
    view = await schedules.pause_schedule(caller.db, client, schedule_id, note=note)
    return ok(SchedulePublic.of(view), request_id=request.state.request_id)


@router.post(
    "/{schedule_id}/resume",
    response_model=Envelope[SchedulePublic],
    summary="Resume a paused schedule from its next due time",
)
async def resume_schedule(
    request: Request,
    schedule_id: str,
    caller: Executor,
    client: TemporalDep,
    body: ScheduleNote | None = None,
) -> JSONResponse:
    note = body.note if body else None
    view = await schedules.resume_schedule(caller.db, client, schedule_id, note=note)
    return ok(SchedulePublic.of(view), request_id=request.state.request_id)


@router.delete("/{schedule_id}", status_code=204, summary="Delete a schedule")
async def delete_schedule(schedule_id: str, caller: Executor, client: TemporalDep) -> Response:
    await schedules.delete_schedule(caller.db, client, schedule_id)
    return Response(status_code=204)
