"""System operations: an end-to-end check of the task queues."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.deps import Caller, TemporalDep, requires
from api.envelope import ok
from engine.queues import ACTIVITY_QUEUES, TaskQueue, queue_name
from engine.temporal import run_attributes
from workflows.system_check import SystemCheckInput, SystemCheckWorkflow

router = APIRouter(prefix="/api/v1/system", tags=["system"])


class SystemCheckRequest(BaseModel):
    queues: list[TaskQueue] = Field(default_factory=lambda: list(ACTIVITY_QUEUES))
    timeout_seconds: float = Field(default=30, gt=0, le=120)


@router.post("/check", summary="Run SystemCheckWorkflow through every activity queue")
async def create_system_check(
    client: TemporalDep,
    caller: Annotated[Caller, requires("admin")],
    request_body: Annotated[SystemCheckRequest | None, Body()] = None,
) -> JSONResponse:
    params = request_body or SystemCheckRequest()
    prefix = caller.settings.task_queue_prefix
    workflow_id = f"check-{uuid.uuid4().hex}"
    result = await client.execute_workflow(
        SystemCheckWorkflow.run,
        SystemCheckInput(queues=[queue_name(queue, prefix) for queue in params.queues]),
        id=workflow_id,
        task_queue=queue_name(TaskQueue.WORKFLOWS, prefix),
        execution_timeout=timedelta(seconds=params.timeout_seconds),
        search_attributes=run_attributes(
            tenant_id=caller.tenant_id, kind="system_check", started_by=caller.principal.user_id
        ),
        static_summary="System check of the task queues",
    )
    return ok({"workflow_id": workflow_id, **result.model_dump()})
