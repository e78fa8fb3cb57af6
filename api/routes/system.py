"""System operations: an end-to-end check of the task queues, and sutazai's
``/system/info``, ``/system/config`` and ``/system/reload`` (global administrators)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StrictFloat

from api.deps import Caller, Operator, ResourcesDep, TemporalDep, requires
from api.envelope import Envelope, ok
from api.schemas.health import SystemCheckPublic
from api.schemas.system import ReloadPublic, SystemConfigPublic, SystemInfoPublic
from engine.platform.queues import TaskQueue
from engine.platform.system_check import run_system_check
from engine.platform.system_info import public_config, system_info

router = APIRouter(prefix="/api/v1/system", tags=["system"])


# Only activity queues can be pinged: the workflow queue has no activity worker
# (asking for it failed the run with 502), and every check runs on it anyway.
ActivityQueue = Literal[TaskQueue.IO, TaskQueue.CPU, TaskQueue.ML]


def _every_activity_queue() -> list[ActivityQueue]:
    return [TaskQueue.IO, TaskQueue.CPU, TaskQueue.ML]


class SystemCheckRequest(BaseModel):
    queues: list[ActivityQueue] = Field(default_factory=_every_activity_queue)
    timeout_seconds: StrictFloat = Field(default=30, gt=0, le=120)


@router.post(
    "/check",
    response_model=Envelope[SystemCheckPublic],
    summary="Run SystemCheckWorkflow through every activity queue",
)
async def create_system_check(
    request: Request,
    client: TemporalDep,
    caller: Annotated[Caller, requires("admin")],
    request_body: Annotated[SystemCheckRequest | None, Body()] = None,
) -> JSONResponse:
    params = request_body or SystemCheckRequest()
    result = await run_system_check(
        client,
        caller.settings,
        params.queues,
        within=timedelta(seconds=params.timeout_seconds),
        tenant_id=caller.tenant_id,
        started_by=caller.principal.user_id,
    )
    return ok(SystemCheckPublic.model_validate(result), request_id=request.state.request_id)


@router.get(
    "/info",
    response_model=Envelope[SystemInfoPublic],
    summary="Version, runtime, database, Temporal and task queues of this deployment",
)
async def read_system_info(
    request: Request, resources: ResourcesDep, operator: Operator
) -> JSONResponse:
    info = system_info(resources.settings)
    data = SystemInfoPublic(**info, uptime_seconds=round(resources.uptime_seconds, 3))
    return ok(data, request_id=request.state.request_id)


@router.get(
    "/config",
    response_model=Envelope[SystemConfigPublic],
    summary="The settings in force (secrets shown as ***)",
)
async def read_system_config(
    request: Request, resources: ResourcesDep, operator: Operator
) -> JSONResponse:
    data = SystemConfigPublic(settings=public_config(resources.settings))
    return ok(data, request_id=request.state.request_id)


@router.post(
    "/reload",
    response_model=Envelope[ReloadPublic],
    summary="Re-read what can change without a restart (model providers)",
)
async def create_system_reload(
    request: Request, resources: ResourcesDep, operator: Operator
) -> JSONResponse:
    resources.models.registry.invalidate()
    data = ReloadPublic(
        reloaded=["model_providers"],
        note="settings are read at start-up; restart the process to apply changed settings",
    )
    return ok(data, request_id=request.state.request_id)
