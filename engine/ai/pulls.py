"""Model pulls (``ModelPullWorkflow``): start one, read its progress.

Pulls change what a provider serves for every tenant, so only a global
administrator starts them (the route checks the role); a second start for the
same provider and model joins the running pull.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

from engine.ai import listings
from engine.ai.providers.base import ModelNotAvailable
from engine.ai.runtime import ModelRuntime
from engine.platform.errors import NotFound
from engine.platform.runs import RunOptions, describe_run, start_run
from engine.platform.settings import Settings
from workflows.model_pull import ModelPullInput, ModelPullWorkflow, workflow_id_for

QUERY_TIMEOUT = timedelta(seconds=10)


async def start_pull(
    rt: ModelRuntime,
    client: Client,
    settings: Settings,
    *,
    model: str,
    provider: str | None,
    tenant_id: str | None,
    started_by: str,
) -> dict[str, Any]:
    """Start (or join) the pull of ``model`` onto ``provider`` (default: the one serving it)."""
    if provider:
        entry = await rt.registry.get(provider)
    else:
        try:
            entry = (await rt.registry.resolve(model)).entry
        except ModelNotAvailable:  # nobody has it yet: the first Ollama pulls it
            pullers = [e for e in await rt.registry.entries() if e.kind == "ollama"]
            if not pullers:
                raise
            entry = pullers[0]
    refused = listings.pull_target_error(entry)
    if refused is not None:
        raise refused
    run = RunOptions(
        workflow_id=workflow_id_for(entry.name, model),
        kind="model_pull",
        tenant_id=tenant_id or "global",
        started_by=started_by,
        summary=f"Pull {model} onto {entry.name}",
        join_existing=True,
    )
    params = ModelPullInput(provider=entry.name, model=model)
    handle = await start_run(client, settings, ModelPullWorkflow.run, params, run)
    return {"workflow_id": handle.id, "model": model, "provider": entry.name, "status": "pulling"}


async def read_pull(rt: ModelRuntime, client: Client, workflow_id: str) -> dict[str, Any]:
    """The pull's progress and the run's status."""
    if not workflow_id.startswith("pull-"):
        raise NotFound(f"Model pull {workflow_id} not found")
    handle: WorkflowHandle[Any, Any] = client.get_workflow_handle(workflow_id)
    description = await describe_run(handle, "Model pull")
    progress = await handle.query(ModelPullWorkflow.progress, rpc_timeout=QUERY_TIMEOUT)
    status = (description.status or WorkflowExecutionStatus.RUNNING).name.lower()
    if progress.phase != "pulling":
        rt.registry.invalidate()  # the provider's model list changed
    return {
        "workflow_id": workflow_id,
        **progress.model_dump(),
        "percent": progress.percent,
        "workflow_status": status,
    }
