"""Pipeline executions: start, read, list, cancel, approve.

Each execution is one ``PipelineWorkflow`` run (``run-{execution_id}``) whose
input carries a copy of the definition and of the agents it uses, so editing
either never disturbs a running execution. The ``executions`` table indexes
runs for listing and analytics and keeps each run's outcome after Temporal's
retention; while a run is open, Temporal is the truth and reads query it.

Every execution reports through the events outbox (``engine.events.outbox``):
``workflow.started`` with the index row, ``workflow.step_completed`` and
``workflow.progress`` (a step waits for a person or a callback) from the run
while it runs, and ``workflow.completed``/``failed``/``cancelled`` (plus
``agent.error`` for a failed agent step) with the outcome. Each is written in
the transaction of the change it reports, once (a dedupe key per execution
and kind), so a retried activity never repeats one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client, WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.common import Priority
from temporalio.service import RPCError, RPCStatusCode

from engine.consent.consents import require_consent
from engine.db.scope import TenantScope
from engine.db.tables import Agent, Event, Execution, PipelineDefinitionRow
from engine.events import callbacks, outbox
from engine.events.catalog import EventType
from engine.pipelines.definition import PipelineDefinition, validate
from engine.pipelines.store import WorkflowNotFound, get_definition
from engine.platform.errors import Conflict, InvalidInput, NotFound
from engine.platform.ids import new_id
from engine.platform.runs import RunOptions, cancel_run, is_not_found, start_run
from engine.platform.settings import Settings
from workflows.pipeline import (
    ApprovalInput,
    LogEntry,
    PipelineInput,
    PipelineStatus,
    PipelineWorkflow,
    Progress,
)
from workflows.pipeline_payloads import (
    AgentSnapshot,
    ExecutionRecord,
    LoadedDefinition,
    StepEvent,
    StepEvents,
)

# auterity's priority names onto Temporal task priority (1 is served first).
PRIORITIES = {"urgent": 1, "high": 2, "normal": 3, "low": 4}
OPEN = ("scheduled", "running")


class ExecutionNotFound(NotFound):
    code = "EXECUTION_NOT_FOUND"


def snapshot(agent: Agent) -> AgentSnapshot:
    prefs = dict(agent.config.get("model_preferences") or {})
    return AgentSnapshot(
        id=agent.id,
        name=agent.name,
        type=agent.type,
        system_prompt=agent.system_prompt,
        model=prefs.get("primary") or agent.config.get("model"),
        fallback_model=prefs.get("fallback"),
        temperature=agent.config.get("temperature"),
        max_tokens=agent.config.get("max_tokens"),
    )


async def agents_for(
    session: AsyncSession, tenant_id: str, definition: PipelineDefinition
) -> dict[str, AgentSnapshot]:
    """Snapshots of the tenant's agents the definition names (unknown ones are left out)."""
    ids = definition.agent_ids()
    if not ids:
        return {}
    rows = await session.scalars(
        select(Agent).where(Agent.tenant_id == tenant_id, Agent.id.in_(ids))
    )
    return {row.id: snapshot(row) for row in rows}


async def execute(
    db: TenantScope,
    client: Client,
    settings: Settings,
    definition_id: str,
    *,
    input_data: dict[str, Any],
    started_by: str,
    priority: str = "normal",
    scheduled_at: datetime | None = None,
    timeout_seconds: float | None = None,
    idempotency_key: str | None = None,
) -> Execution:
    """Start an execution of a stored definition.

    A repeated ``idempotency_key`` returns the first execution instead of
    starting another — and starts its run if the first call stopped between
    writing the row and starting the run (a crash, or Temporal unreachable).

    A definition that declares ``data_categories`` starts only while its data
    subject (``input_data.data_subject_id``, else ``started_by``) has granted
    consent for every one of them (``ConsentRequired`` otherwise, before any row
    or run exists); the subject and categories are kept on the execution.
    """
    row = await get_definition(db, definition_id)
    existing = None
    if idempotency_key:
        existing = await db.session.scalar(
            db.select(Execution).where(Execution.idempotency_key == idempotency_key)
        )
        if isinstance(existing, Execution) and await run_exists(client, existing.workflow_id):
            return existing
    if priority not in PRIORITIES:
        raise InvalidInput(
            f"priority must be one of {', '.join(PRIORITIES)}", details={"field": "priority"}
        )
    definition = PipelineDefinition.model_validate(row.definition)
    if timeout_seconds:
        definition = definition.model_copy(update={"timeout_seconds": timeout_seconds})
    agents = await agents_for(db.session, row.tenant_id, definition)
    validate(definition, known_agents=set(agents), input_names=set(input_data))
    categories = definition.declared_categories()
    subject = None
    if categories:
        subject = await require_consent(
            db.session,
            row.tenant_id,
            input_data=input_data,
            started_by=started_by,
            categories=categories,
        )
    now = datetime.now(UTC)
    delay = scheduled_at - now if scheduled_at and scheduled_at > now else None
    execution_id = existing.id if isinstance(existing, Execution) else new_id("exe")
    if isinstance(existing, Execution):  # its run never started: start it now
        await db.session.delete(existing)
        await db.session.flush()
    execution = Execution(
        id=execution_id,
        workflow_id=f"run-{execution_id}",
        tenant_id=row.tenant_id,
        definition_id=row.id,
        status="scheduled" if delay else "running",
        priority=priority,
        input_data=input_data,
        total_steps=len(definition.steps),
        scheduled_at=scheduled_at,
        started_at=scheduled_at if delay else now,
        idempotency_key=idempotency_key,
        created_by=started_by,
        data_subject_id=subject,
        data_categories=categories or None,
    )
    db.add(execution)
    started: dict[str, Any] = {
        "execution_id": execution_id,
        "workflow_id": row.id,
        "workflow_name": row.name,
        "status": execution.status,
        "total_steps": execution.total_steps,
    }
    if delay:
        started["scheduled_at"] = scheduled_at.isoformat() if scheduled_at else None
    await outbox.emit(
        db.session,
        row.tenant_id,
        EventType.WORKFLOW_STARTED,
        started,
        subject=execution_id,
        dedupe_key=f"{execution_id}:started",
    )
    await db.session.commit()
    params = PipelineInput(
        execution_id=execution.id,
        tenant_id=row.tenant_id,
        started_by=started_by,
        definition_id=row.id,
        name=row.name,
        definition=definition,
        input_data=input_data,
        agents=agents,
        data_subject_id=subject,
    )
    run = RunOptions(
        workflow_id=execution.workflow_id,
        kind="pipeline",
        tenant_id=row.tenant_id,
        started_by=started_by,
        definition_id=row.id,
        summary=f"{row.name} ({len(definition.steps)} steps)",
        priority=Priority(priority_key=PRIORITIES[priority]),
        start_delay=delay,
    )
    try:
        await start_run(client, settings, PipelineWorkflow.run, params, run)
    except Exception:
        execution.status, execution.error_code = "failed", "START_FAILED"
        execution.error_message = "the execution could not be started"
        await db.session.commit()
        raise
    return execution


async def run_exists(client: Client, workflow_id: str) -> bool:
    try:
        await client.get_workflow_handle(workflow_id).describe()
    except RPCError as exc:
        if is_not_found(exc):
            return False
        raise
    return True


async def execution_of(db: TenantScope, execution_id: str) -> Execution:
    row = await db.find(Execution, execution_id)
    if row is None:
        raise ExecutionNotFound(f"Execution {execution_id} not found")
    return row


async def live_status(client: Client, row: Execution) -> PipelineStatus | None:
    """The run's own account (open or closed, while Temporal still has it)."""
    if row.status == "scheduled" and row.scheduled_at and row.scheduled_at > datetime.now(UTC):
        return None
    handle = client.get_workflow_handle_for(PipelineWorkflow.run, row.workflow_id)
    try:
        return await handle.query(PipelineWorkflow.status, rpc_timeout=timedelta(seconds=10))
    except WorkflowQueryFailedError:
        return None
    except RPCError as exc:
        # Gone past retention, finished by the index's own account, or no worker
        # answers the query just now: the index answers. An open run whose
        # server is unreachable is not answered from a stale index row
        # ("running", no steps): the caller gets 503.
        if is_not_found(exc) or row.status not in OPEN or await _server_answers(client):
            return None
        raise


async def _server_answers(client: Client) -> bool:
    try:
        return await client.service_client.check_health(timeout=timedelta(seconds=5))
    except RPCError:
        return False


async def cancel(db: TenantScope, client: Client, execution_id: str) -> Execution:
    row = await execution_of(db, execution_id)
    status = row.status
    if status in OPEN:  # the index learns the outcome a moment after the run ends
        live = await live_status(client, row)
        status = live.status if live is not None else status
    if status not in OPEN:
        raise Conflict(f"Execution {execution_id} is already {status}", details={"status": status})
    await cancel_run(client, row.workflow_id)
    return row


async def decide(
    db: TenantScope,
    client: Client,
    execution_id: str,
    step_id: str,
    *,
    approved: bool,
    decided_by: str,
    comment: str | None,
) -> dict[str, Any]:
    """Approve or reject a step that waits for a human (a Temporal update)."""
    row = await execution_of(db, execution_id)
    handle = client.get_workflow_handle_for(PipelineWorkflow.run, row.workflow_id)
    try:
        approval = await handle.execute_update(
            PipelineWorkflow.approve,
            ApprovalInput(
                step_id=step_id, approved=approved, decided_by=decided_by, comment=comment
            ),
        )
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        raise Conflict(str(getattr(cause, "message", cause) or exc)) from None
    except RPCError as exc:
        if exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            raise  # the workflow service is unreachable: 503, not a conflict
        raise Conflict(
            f"Execution {execution_id} is not waiting for approval: {exc.message}"
        ) from None
    return {"execution_id": row.id, "step_id": step_id, **approval.model_dump(mode="json")}


async def list_executions(
    db: TenantScope,
    *,
    definition_id: str | None = None,
    status: str | None = None,
    limit: int = 20,
    offset: int = 0,
) -> tuple[list[Execution], int]:
    query = db.select(Execution)
    if definition_id:
        query = query.where(Execution.definition_id == definition_id)
    if status:
        query = query.where(Execution.status == status)
    total = await db.session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await db.session.scalars(
        query.order_by(Execution.created_at.desc(), Execution.id).limit(limit).offset(offset)
    )
    return list(rows), int(total or 0)


async def load_for_run(
    session: AsyncSession, tenant_id: str, definition_id: str
) -> LoadedDefinition:
    """A stored definition for a ``sub_workflow`` step (the tenant's own only)."""
    row = await session.get(PipelineDefinitionRow, definition_id)
    if row is None or row.tenant_id != tenant_id or row.deleted_at is not None:
        raise WorkflowNotFound(f"Workflow {definition_id} not found")
    definition = PipelineDefinition.model_validate(row.definition)
    agents = await agents_for(session, tenant_id, definition)
    validate(definition, known_agents=set(agents))
    return LoadedDefinition(
        definition_id=row.id,
        name=row.name,
        definition=definition.model_dump(mode="json"),
        agents=agents,
    )


async def record_outcome(session: AsyncSession, record: ExecutionRecord) -> None:
    """Write a finished run's outcome to its index row (a sub-run has none), and
    its ``workflow.completed``/``failed``/``cancelled`` event (and ``agent.error``
    when an agent step failed it) in the same transaction."""
    row = await session.get(Execution, record.execution_id)
    if row is None or row.tenant_id != record.tenant_id:
        return
    row.status = record.status
    row.completed_at = record.completed_at
    row.tokens_used, row.cost_usd = record.tokens_used, record.cost_usd
    row.error_code, row.error_message = record.error_code, record.error_message
    row.results = {sid: step.model_dump(mode="json") for sid, step in record.results.items()}
    await _emit_outcome(session, row, record)


async def _emit_outcome(session: AsyncSession, row: Execution, record: ExecutionRecord) -> None:
    execution_id = row.id
    base: dict[str, Any] = {"execution_id": execution_id, "workflow_id": row.definition_id}
    if row.started_at is not None:
        took = record.completed_at - row.started_at
        base["duration_ms"] = max(0, int(took.total_seconds() * 1000))
    else:
        base["duration_ms"] = None
    error = {"code": record.error_code, "message": record.error_message}
    kind: EventType
    if record.status == "completed":
        outputs = {
            sid: step.output for sid, step in record.results.items() if step.status == "completed"
        }
        # z2 reads output_data, zentoria result: both are sent.
        data = {**base, "status": "completed", "output_data": outputs, "result": outputs}
        kind = EventType.WORKFLOW_COMPLETED
    elif record.status == "cancelled":
        data, kind = {**base, "status": "cancelled"}, EventType.WORKFLOW_CANCELLED
    else:  # failed, or timed_out (a failure with its own code)
        data, kind = {**base, "status": "failed", "error": error}, EventType.WORKFLOW_FAILED
    await outbox.emit(
        session,
        row.tenant_id,
        kind,
        data,
        subject=execution_id,
        dedupe_key=f"{execution_id}:{kind.value}",
    )
    failed = record.failed_step
    if failed is not None and failed.agent_id and failed.step_type == "agent":
        await outbox.emit(
            session,
            row.tenant_id,
            EventType.AGENT_ERROR,
            {
                "execution_id": execution_id,
                "workflow_id": row.definition_id,
                "step_id": failed.step_id,
                "agent_id": failed.agent_id,
                "error": {"code": failed.code, "message": failed.message},
            },
            subject=execution_id,
            dedupe_key=f"{execution_id}:{failed.step_id}:agent_error",
        )


STEP_EVENT_TYPES = {
    "step_completed": EventType.WORKFLOW_STEP_COMPLETED,
    "waiting_approval": EventType.WORKFLOW_PROGRESS,
    "waiting_callback": EventType.WORKFLOW_PROGRESS,
}


def _step_event_data(batch: StepEvents, event: StepEvent) -> dict[str, Any]:
    data: dict[str, Any] = {
        "execution_id": batch.execution_id,
        "workflow_id": batch.definition_id,
        "step_id": event.step_id,
        "step_name": event.step_name,
        "step_type": event.step_type,
        "status": "completed" if event.kind == "step_completed" else event.kind,
        "progress": {
            "completed_steps": event.completed_steps,
            "total_steps": event.total_steps,
        },
    }
    if event.callback_id:
        data["callback_id"] = event.callback_id
    return data


async def record_step_events(session: AsyncSession, batch: StepEvents) -> int:
    """A run's step events into the outbox, each once however often retried; how
    many were new (the caller commits).

    The same outbox rows, dedupe keys and doorbell as ``outbox.emit``, in one
    ``INSERT … ON CONFLICT (dedupe_key) DO NOTHING``: this runs once per step of
    every pipeline, and ``emit``'s look-up, savepoint and ORM flush per event
    cost about twice the CPU (and a wide DAG reports a batch at a time).
    """
    rows = [
        {
            "id": new_id("evt"),
            "tenant_id": batch.tenant_id,
            "type": STEP_EVENT_TYPES[event.kind].value,
            "subject": batch.execution_id,
            "data": _step_event_data(batch, event),
            "dedupe_key": f"{batch.execution_id}:{event.step_id}:{event.kind}",
        }
        for event in batch.events
    ]
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    inserted = await session.scalars(
        insert(Event)
        .values(rows)
        .on_conflict_do_nothing(index_elements=[Event.dedupe_key])
        .returning(Event.id)
    )
    added = len(inserted.all())
    if added:
        session.info[outbox.PENDING] = True  # the commit rings the doorbell, as emit's does
    return added


@dataclass(frozen=True)
class ExecutionCallback:
    """A callback one of the execution's steps opened (URL and secret while it waits)."""

    callback_id: str
    execution_id: str
    step_id: str | None
    status: str
    callback_url: str | None
    secret: str | None
    expires_at: datetime
    created_at: datetime
    received_at: datetime | None
    message_id: str | None


async def execution_callbacks(
    db: TenantScope, settings: Settings, execution_id: str
) -> list[ExecutionCallback]:
    """The callbacks of an execution's ``wait_for_callback`` steps (sub-workflows'
    included), for a caller that did not use ``notify`` to hand them on."""
    row = await execution_of(db, execution_id)
    found = []
    for info in await callbacks.callbacks_of(db, settings, row.workflow_id):
        run, _, step_id = (info.dedupe_key or "").rpartition(":")
        found.append(
            ExecutionCallback(
                callback_id=info.id,
                execution_id=run or info.workflow_id.removeprefix("run-"),
                step_id=step_id or None,
                status=info.status,
                callback_url=info.url_path,
                secret=info.secret,
                expires_at=info.expires_at,
                created_at=info.created_at,
                received_at=info.received_at,
                message_id=info.message_id,
            )
        )
    return found


class StepResult(BaseModel):
    name: str
    type: str
    status: str
    agent_id: str | None = None
    output: Any = None
    error: str | None = None
    error_code: str | None = None
    tokens_used: int = 0
    cost_usd: float = 0.0
    model: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    detail: dict[str, Any] = Field(default_factory=dict)
    approval: dict[str, Any] | None = None


class ExecutionView(BaseModel):
    """One execution as the engine knows it; each seed's routes shape it their way."""

    id: str
    workflow_id: str | None  # the definition
    temporal_workflow_id: str
    status: str
    priority: str
    input_data: dict[str, Any]
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: int | None
    progress: Progress
    results: dict[str, StepResult]
    logs: list[LogEntry]
    tokens_used: int
    cost_usd: float
    error_code: str | None = None
    error: str | None = None


def view_of(
    row: Execution, live: PipelineStatus | None, agents: dict[str, str | None] | None = None
) -> ExecutionView:
    """The execution from the run itself when Temporal answers, else from the index
    (``agents``: the agent of each step, from the definition)."""
    if live is not None:
        status = live.status if row.status != "scheduled" or live.steps else row.status
        results = {
            sid: StepResult.model_validate(
                {**state.model_dump(), "approval": state.approval.model_dump(mode="json")
                 if state.approval else None}
            )
            for sid, state in live.steps.items()
        }  # fmt: skip
        progress, logs = live.progress, live.logs
        completed_at, tokens, cost = live.completed_at, live.tokens_used, live.cost_usd
        error_code, error = live.error_code, live.error
    else:
        status = row.status
        results = {
            sid: StepResult.model_validate({"name": sid, "type": "", **data})
            for sid, data in row.results.items()
        }
        done = sum(1 for r in results.values() if r.status in ("completed", "skipped"))
        progress = Progress(completed_steps=done, total_steps=row.total_steps, current_step=None)
        logs, completed_at = [], row.completed_at
        tokens, cost = row.tokens_used, row.cost_usd
        error_code, error = row.error_code, row.error_message
    for sid, result in results.items():
        result.agent_id = (agents or {}).get(sid)
    started = row.started_at
    duration = None
    if started is not None:
        end = completed_at or (datetime.now(UTC) if status == "running" else None)
        duration = int((end - started).total_seconds() * 1000) if end else None
    return ExecutionView(
        id=row.id,
        workflow_id=row.definition_id,
        temporal_workflow_id=row.workflow_id,
        status=status,
        priority=row.priority,
        input_data=row.input_data,
        started_at=started,
        completed_at=completed_at,
        duration_ms=duration,
        progress=progress,
        results=results,
        logs=logs,
        tokens_used=tokens,
        cost_usd=cost,
        error_code=error_code,
        error=error,
    )


async def read(
    db: TenantScope, client: Client, execution_id: str, *, definition_id: str | None = None
) -> ExecutionView:
    """One execution (``definition_id``: it must belong to that definition)."""
    row = await execution_of(db, execution_id)
    if definition_id is not None and row.definition_id != definition_id:
        raise ExecutionNotFound(f"Execution {execution_id} not found")
    agents: dict[str, str | None] = {}
    if row.definition_id:
        definition = await db.find(PipelineDefinitionRow, row.definition_id)
        if definition is not None:
            steps = PipelineDefinition.model_validate(definition.definition).steps
            agents = {step.id: step.agent_id for step in steps}
    return view_of(row, await live_status(client, row), agents)
