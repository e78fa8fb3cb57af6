"""Tasks (sutazai ``/api/v1/tasks``): submit work as a type, a payload and an
integer priority; read its status and its result; cancel it.

A task is a pipeline execution (``Execution.kind = "task"``), so it is durable,
visible in the Temporal Web UI and listed with the tenant's executions; its
``task_…`` id is the execution's id with the task prefix. ``task_type`` is
either a registered kind, which runs a pipeline built from the payload, or the
id of one of the tenant's stored workflows, which runs with the payload as its
``input_data``. A kind's pipeline is stored as an internal definition
(``source="task"``), deleted at once so no workflow listing shows it; like any
deleted definition it stays for the execution that ran it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel
from temporalio.client import Client

from engine.db.scope import TenantScope
from engine.db.tables import Execution, PipelineDefinitionRow
from engine.pipelines import executions, store
from engine.pipelines.definition import StepType, validate
from engine.pipelines.templating import TemplateError, references
from engine.platform.errors import InvalidInput, NotFound, WeftError
from engine.platform.settings import Settings

KIND = "task"
SOURCE = "task"
TASK_PREFIX, EXECUTION_PREFIX = "task_", "exe_"
# sutazai's integer priority, higher first; its examples send 1, the normal one.
PRIORITY_NAMES = ("low", "normal", "high", "urgent")
DEFAULT_PRIORITY = 1
# A kind per step type that runs on its own (an approval needs a person: a workflow).
STEP_KINDS = tuple(t.value for t in StepType if t is not StepType.HUMAN_APPROVAL)
KINDS = ("automation", *STEP_KINDS)
# With no finished task to learn from, a step is expected to take this long.
SECONDS_PER_STEP = 10.0
HISTORY = 20  # finished tasks the estimate averages


class TaskNotFound(NotFound):
    """sutazai's ``TASK_NOT_FOUND``."""

    code = "TASK_NOT_FOUND"

    def __init__(self, task_id: str) -> None:
        super().__init__(
            f"Task {task_id} not found", details={"reason": "TASK_NOT_FOUND", "task_id": task_id}
        )


class TaskNotCompleted(WeftError):
    """A result asked for before the task finished."""

    code = "TASK_NOT_COMPLETED"


class TaskView(BaseModel):
    """One task as the engine knows it (status from the run while Temporal has it)."""

    task_id: str
    execution_id: str
    task_type: str
    workflow_id: str | None  # the stored workflow a task_type named, if it did
    priority: int
    execution_priority: str
    status: str
    progress: float  # 0–1
    completed_steps: int
    total_steps: int
    current_step: str | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    estimated_completion: datetime | None
    outputs: dict[str, Any]
    result: Any
    tokens_used: int
    cost_usd: float
    error_code: str | None
    error: str | None

    @property
    def finished(self) -> bool:
        return self.status not in ("queued", "scheduled", "running")


def task_id_of(execution_id: str) -> str:
    return TASK_PREFIX + execution_id.removeprefix(EXECUTION_PREFIX)


def execution_id_of(task_id: str) -> str | None:
    if not task_id.startswith(TASK_PREFIX):
        return None
    return EXECUTION_PREFIX + task_id.removeprefix(TASK_PREFIX)


def priority_name(priority: int) -> str:
    if not 0 <= priority < len(PRIORITY_NAMES):
        raise InvalidInput(
            f"priority must be 0 (low) to {len(PRIORITY_NAMES) - 1} (urgent)",
            details={"field": "priority", "reason": "out of range"},
        )
    return PRIORITY_NAMES[priority]


def _read_by(steps: list[dict[str, Any]], data: dict[str, Any]) -> dict[str, Any]:
    """The payload keys the steps' ``{{variables}}`` read: the run's input, without
    a second copy of the rest (both travel in the run's start payload)."""
    try:
        roots = {ref.root for step in steps for ref in references(step.get("config") or {})}
    except TemplateError:  # validation answers it, with where
        return data
    return {key: value for key, value in data.items() if key in roots}


def kind_steps(
    task_type: str, payload: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A kind's steps (auterity's shape) and the run's ``input_data``.

    ``automation`` runs ``payload.steps`` when given (with ``payload.input_data``,
    or the rest of the payload, as input); without steps it acknowledges the
    payload as its result. A step-type kind runs one step whose config is the
    payload, and whose ``{{variables}}`` read the payload's other keys.
    """
    data = dict(payload)
    if task_type != "automation":
        step: dict[str, Any] = {"type": task_type, "name": f"Task: {task_type}", "config": data}
        if data.get("agent_id"):
            step["agent_id"] = data["agent_id"]
        return [step], _read_by([step], data)
    steps = data.get("steps")
    if steps is None:
        name = f"Automation: {data.get('action') or 'payload'}"
        acknowledge = [{"type": "transform", "name": name, "config": {"output": data}}]
        return acknowledge, _read_by(acknowledge, data)
    if not isinstance(steps, list) or not all(isinstance(s, Mapping) for s in steps):
        raise InvalidInput(
            "payload.steps must be a list of steps",
            details={"field": "payload.steps", "reason": "not a list of objects"},
        )
    given = data.get("input_data")
    if isinstance(given, Mapping):
        return [dict(step) for step in steps], dict(given)
    return [dict(step) for step in steps], {k: v for k, v in data.items() if k != "steps"}


async def _stored(db: TenantScope, task_type: str) -> PipelineDefinitionRow:
    row = await db.find(PipelineDefinitionRow, task_type)
    if row is None or row.deleted_at is not None or row.source == SOURCE:
        raise InvalidInput(
            f"task_type {task_type!r} is neither a task kind nor one of your workflows",
            details={"field": "task_type", "reason": "unknown task type", "kinds": list(KINDS)},
        )
    return row


async def submit(
    db: TenantScope,
    client: Client,
    settings: Settings,
    *,
    task_type: str,
    payload: Mapping[str, Any],
    priority: int = DEFAULT_PRIORITY,
    started_by: str,
) -> TaskView:
    """Start a task; it answers at once, queued."""
    named = priority_name(priority)
    internal: PipelineDefinitionRow | None = None
    if task_type in KINDS:
        steps, input_data = kind_steps(task_type, payload)
        shape = store.Shape(steps)
        definition = await store.checked(db, shape)
        # Refuse a payload whose templates name missing input before storing anything.
        validate(
            definition,
            known_agents=await store.known_agents(db, definition),
            input_names=set(input_data),
        )
        internal = PipelineDefinitionRow(
            name=f"Task: {task_type}",
            description="",
            category=KIND,
            status="active",
            source=SOURCE,
            raw={**shape.raw(), "task_type": task_type},
            definition=definition.model_dump(mode="json"),
            created_by=started_by,
        )
        db.add(internal)
        await db.session.commit()
        definition_id = internal.id
    else:
        definition_id = (await _stored(db, task_type)).id
        input_data = dict(payload)
    try:
        execution = await executions.execute(
            db,
            client,
            settings,
            definition_id,
            input_data=input_data,
            started_by=started_by,
            priority=named,
        )
        execution.kind = KIND
    finally:
        if internal is not None:
            internal.deleted_at = datetime.now(UTC)
        await db.session.commit()
    return await _view(db, execution, None)


async def task_of(db: TenantScope, task_id: str) -> Execution:
    execution_id = execution_id_of(task_id)
    row = await db.find(Execution, execution_id) if execution_id else None
    if row is None or row.kind != KIND:
        raise TaskNotFound(task_id)
    return row


async def read_task(db: TenantScope, client: Client, task_id: str) -> TaskView:
    row = await task_of(db, task_id)
    return await _view(db, row, await executions.read(db, client, row.id))


async def read_result(db: TenantScope, client: Client, task_id: str) -> TaskView:
    """A finished task (``TaskNotCompleted`` while it is still queued or running)."""
    task = await read_task(db, client, task_id)
    if not task.finished:
        raise TaskNotCompleted(
            f"Task {task_id} is {task.status}; its result is ready once it finishes",
            details={
                "reason": "TASK_NOT_COMPLETED",
                "status": task.status,
                "progress": task.progress,
                "estimated_completion": task.estimated_completion.isoformat()
                if task.estimated_completion
                else None,
            },
        )
    return task


async def cancel_task(db: TenantScope, client: Client, task_id: str) -> None:
    """Cancel a queued or running task (``Conflict`` once it has finished)."""
    row = await task_of(db, task_id)
    await executions.cancel(db, client, row.id)


async def _typical_seconds(db: TenantScope) -> float | None:
    """How long the tenant's last finished tasks took, on average."""
    rows = (
        await db.session.execute(
            db.select(Execution)
            .with_only_columns(Execution.started_at, Execution.completed_at)
            .where(Execution.kind == KIND, Execution.status == "completed")
            .where(Execution.started_at.is_not(None), Execution.completed_at.is_not(None))
            .order_by(Execution.completed_at.desc())
            .limit(HISTORY)
        )
    ).all()
    spans = [(end - start).total_seconds() for start, end in rows if start and end]
    return sum(spans) / len(spans) if spans else None


async def _view(db: TenantScope, row: Execution, view: executions.ExecutionView | None) -> TaskView:
    view = view or executions.view_of(row, None)
    definition = await db.find(PipelineDefinitionRow, row.definition_id or "")
    internal = definition is not None and definition.source == SOURCE
    task_type = str(definition.raw.get("task_type")) if definition and internal else None
    progress = view.progress
    status = view.status
    if status == "running" and all(r.status == "pending" for r in view.results.values()):
        status = "queued"  # no step has started yet
    outputs = {sid: r.output for sid, r in view.results.items() if r.status == "completed"}
    result: Any = outputs
    if progress.total_steps == 1:
        result = next(iter(outputs.values()), None)
    estimate: datetime | None = view.completed_at
    if status in ("queued", "running"):
        typical = await _typical_seconds(db)
        seconds = typical if typical is not None else SECONDS_PER_STEP * progress.total_steps
        estimate = (view.started_at or row.created_at) + timedelta(seconds=seconds)
    total = progress.total_steps
    return TaskView(
        task_id=task_id_of(row.id),
        execution_id=row.id,
        task_type=task_type or str(row.definition_id),
        workflow_id=None if internal else row.definition_id,
        priority=PRIORITY_NAMES.index(row.priority) if row.priority in PRIORITY_NAMES else 1,
        execution_priority=row.priority,
        status=status,
        progress=round(progress.completed_steps / total, 4) if total else 0.0,
        completed_steps=progress.completed_steps,
        total_steps=total,
        current_step=progress.current_step,
        created_at=row.created_at,
        started_at=view.started_at,
        completed_at=view.completed_at,
        estimated_completion=estimate,
        outputs=outputs,
        result=result,
        tokens_used=view.tokens_used,
        cost_usd=view.cost_usd,
        error_code=view.error_code,
        error=view.error,
    )
