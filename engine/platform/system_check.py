"""The end-to-end check of the task queues (``SystemCheckWorkflow``)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio.client import Client

from engine.platform.queues import TaskQueue, queue_name
from engine.platform.runs import RunOptions, execute_run
from engine.platform.settings import Settings
from workflows.system_check import SystemCheckInput, SystemCheckWorkflow


async def run_system_check(
    client: Client,
    settings: Settings,
    queues: Sequence[TaskQueue],
    *,
    within: timedelta,
    tenant_id: str,
    started_by: str,
) -> dict[str, Any]:
    """Run one activity on each of ``queues`` and wait (at most ``within``) for every answer."""
    prefix = settings.task_queue_prefix
    run = RunOptions(
        workflow_id=f"check-{uuid.uuid4().hex}",
        kind="system_check",
        tenant_id=tenant_id,
        started_by=started_by,
        summary="System check of the task queues",
        execution_timeout=within,
    )
    params = SystemCheckInput(queues=[queue_name(queue, prefix) for queue in queues])
    result = await execute_run(client, settings, SystemCheckWorkflow.run, params, run)
    return {"workflow_id": run.workflow_id, **result.model_dump()}
