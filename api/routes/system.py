"""System operations: an end-to-end check of the task queues."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.deps import Caller, TemporalDep, requires
from api.envelope import Envelope, ok
from api.schemas.health import SystemCheckPublic
from engine.platform.queues import ACTIVITY_QUEUES, TaskQueue
from engine.platform.system_check import run_system_check

router = APIRouter(prefix="/api/v1/system", tags=["system"])


class SystemCheckRequest(BaseModel):
    queues: list[TaskQueue] = Field(default_factory=lambda: list(ACTIVITY_QUEUES))
    timeout_seconds: float = Field(default=30, gt=0, le=120)


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
