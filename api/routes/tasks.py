"""sutazai's task queue on the canonical ``/api/v1/tasks``: submit, status, result,
cancel. Each task is a durable pipeline execution."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from api.deps import Caller, TemporalDep, requires
from api.envelope import Envelope, ok
from api.schemas.tasks import (
    TaskCreate,
    TaskCreatedEnvelope,
    TaskCreatedPublic,
    TaskPublic,
    TaskResultPublic,
)
from engine.pipelines import tasks
from engine.platform.errors import Forbidden

router = APIRouter(prefix="/api/v1/tasks", tags=["tasks"])

Reader = Annotated[Caller, requires("tasks:read")]
Writer = Annotated[Caller, requires("tasks:write")]


@router.post(
    "",
    status_code=201,
    response_model=TaskCreatedEnvelope,
    summary="Submit a task (a kind or a stored workflow, with a payload and a priority)",
)
async def create_task(
    request: Request, body: TaskCreate, caller: Writer, client: TemporalDep
) -> JSONResponse:
    if body.task_type not in tasks.KINDS and not caller.principal.allows("workflows:execute"):
        raise Forbidden("Running a stored workflow as a task needs the 'workflows:execute' scope")
    task = await tasks.submit(
        caller.db,
        client,
        caller.settings,
        task_type=body.task_type,
        payload=body.payload,
        priority=body.priority,
        started_by=caller.principal.user_id,
    )
    return ok(
        TaskCreatedPublic.of(task),
        request_id=request.state.request_id,
        status_code=201,
        top_level={"task_id": task.task_id},
    )


@router.get("/{task_id}", response_model=Envelope[TaskPublic], summary="A task's status")
async def read_task(
    request: Request, task_id: str, caller: Reader, client: TemporalDep
) -> JSONResponse:
    task = await tasks.read_task(caller.db, client, task_id)
    return ok(TaskPublic.of(task), request_id=request.state.request_id)


@router.get(
    "/{task_id}/result",
    response_model=Envelope[TaskResultPublic],
    summary="A finished task's result (an error while it is queued or running)",
)
async def read_task_result(
    request: Request, task_id: str, caller: Reader, client: TemporalDep
) -> JSONResponse:
    task = await tasks.read_result(caller.db, client, task_id)
    return ok(TaskResultPublic.of(task), request_id=request.state.request_id)


@router.delete("/{task_id}", status_code=204, summary="Cancel a queued or running task")
async def delete_task(task_id: str, caller: Writer, client: TemporalDep) -> Response:
    await tasks.cancel_task(caller.db, client, task_id)
    return Response(status_code=204)
