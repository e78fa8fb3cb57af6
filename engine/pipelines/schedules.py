"""Pipeline schedules: Temporal Schedules that start an execution of a stored
definition on a cron string or a fixed interval.

Temporal holds everything about a schedule, so there is no table to keep in
step with it: the schedule ``sched-{id}`` carries its tenant, kind and
definition as search attributes (the Web UI filters by them, and listing
queries them), the original cron or interval in its memo, and the rest in its
action's input. Every read describes the schedule and checks its tenant, so
another tenant's schedule is simply not there. Listing goes through Temporal's
visibility store, which is eventually consistent: a new schedule appears there
within a moment, while reading it by id works at once.

Each tick starts a ``ScheduledRunWorkflow``, whose one activity starts the
execution as the execute route does (its own ``Execution`` row, tenant-scoped,
idempotent per tick). The schedule runs the definition as stored at each tick.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from pydantic import BaseModel
from temporalio.api.common.v1 import Payload
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    ScheduleDescription,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
)
from temporalio.service import RPCError, RPCStatusCode

from engine.db.scope import TenantScope
from engine.db.tables import Execution
from engine.pipelines import executions, store
from engine.pipelines.cron import check_cron
from engine.pipelines.definition import PipelineDefinition, validate
from engine.platform.errors import Forbidden, InvalidInput, NotFound
from engine.platform.ids import new_id
from engine.platform.queues import TaskQueue, queue_name
from engine.platform.runs import is_not_found
from engine.platform.settings import Settings
from engine.platform.temporal import SA_DEFINITION, SA_KIND, SA_TENANT, run_attributes
from workflows.scheduled_run import ScheduledRunInput, ScheduledRunWorkflow

KIND = "schedule"
SCHEDULE_ID = re.compile(r"^sch_[0-9a-f]{24}$")
QUERY_VALUE = re.compile(r"^[A-Za-z0-9_\-]{1,100}$")  # safe inside a visibility query
MAX_INTERVAL_SECONDS = 366 * 86_400
MAX_NOTE = 1000
NEXT_RUNS_SHOWN = 5
# After Temporal was unreachable, a tick missed by longer than this is skipped
# rather than run late (and never more than one at a time: overlap SKIP).
CATCHUP_WINDOW = timedelta(hours=1)
# A scheduled run only starts an execution; this bounds one stuck on retries.
RUN_TIMEOUT = timedelta(hours=1)
DESCRIBE_CONCURRENCY = 10


class ScheduleNotFound(NotFound):
    pass


class ScheduledRun(BaseModel):
    """One tick: when it was due, when it started, and the execution it started."""

    scheduled_at: datetime
    started_at: datetime
    run_workflow_id: str  # the ScheduledRunWorkflow run (the execution's idempotency key)
    execution_id: str | None  # None until the run has started it


class ScheduleView(BaseModel):
    id: str
    workflow_id: str  # the definition it executes
    cron: str | None
    interval_seconds: int | None
    timezone: str | None
    input_data: dict[str, Any]
    priority: str
    paused: bool
    note: str | None
    next_run_at: datetime | None
    next_run_times: list[datetime]
    recent_runs: list[ScheduledRun]
    total_runs: int
    created_at: datetime
    created_by: str
    temporal_schedule_id: str


@dataclass(frozen=True)
class Timing:
    """When a schedule fires: a cron string or an interval in seconds, not both."""

    cron: str | None = None
    interval_seconds: int | None = None
    timezone: str | None = None

    @classmethod
    def checked(
        cls, *, cron: str | None, interval_seconds: int | None, timezone: str | None = None
    ) -> Timing:
        """``InvalidInput`` (HTTP 422) unless exactly one of cron and interval is given
        and it is well-formed."""
        if (cron is None) == (interval_seconds is None):
            raise InvalidInput(
                "give exactly one of cron and interval_seconds",
                details={"field": "cron", "issue": "exactly one of cron, interval_seconds"},
            )
        if interval_seconds is not None:
            if not 1 <= interval_seconds <= MAX_INTERVAL_SECONDS:
                raise InvalidInput(
                    f"interval_seconds must be between 1 and {MAX_INTERVAL_SECONDS}",
                    details={"field": "interval_seconds"},
                )
            if timezone:
                raise InvalidInput(
                    "timezone applies to a cron schedule only", details={"field": "timezone"}
                )
            return cls(interval_seconds=interval_seconds)
        return cls(cron=check_cron(str(cron)), timezone=timezone or None)

    def spec(self) -> ScheduleSpec:
        if self.interval_seconds is not None:
            every = timedelta(seconds=self.interval_seconds)
            return ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)])
        return ScheduleSpec(cron_expressions=[str(self.cron)], time_zone_name=self.timezone)

    def memo(self) -> dict[str, Any]:
        # Temporal compiles cron strings into calendars; the memo keeps what was sent.
        memo: dict[str, Any] = {"cron": self.cron, "interval_seconds": self.interval_seconds}
        if self.timezone:
            memo["timezone"] = self.timezone
        return memo


def temporal_id(schedule_id: str) -> str:
    return f"sched-{schedule_id}"


def _tenant(db: TenantScope) -> str:
    if db.tenant_id is None:
        raise Forbidden("Schedules belong to a tenant: use a tenant's credential")
    return db.tenant_id


async def create_schedule(
    db: TenantScope,
    client: Client,
    settings: Settings,
    definition_id: str,
    *,
    cron: str | None = None,
    interval_seconds: int | None = None,
    timezone: str | None = None,
    input_data: dict[str, Any],
    created_by: str,
    priority: str = "normal",
    paused: bool = False,
    note: str | None = None,
) -> ScheduleView:
    """Create a schedule of the caller's tenant for one of its definitions: on ``cron``
    (with an optional IANA ``timezone``) or every ``interval_seconds``, not both.

    The input must fit the definition now (as an execute call would check), so
    a schedule that could never start an execution is refused at once.
    """
    tenant_id = _tenant(db)
    timing = Timing.checked(cron=cron, interval_seconds=interval_seconds, timezone=timezone)
    if priority not in executions.PRIORITIES:
        raise InvalidInput(
            f"priority must be one of {', '.join(executions.PRIORITIES)}",
            details={"field": "priority"},
        )
    row = await store.get_definition(db, definition_id)
    definition = PipelineDefinition.model_validate(row.definition)
    agents = await executions.agents_for(db.session, tenant_id, definition)
    validate(definition, known_agents=set(agents), input_names=set(input_data))
    schedule_id = new_id("sch")
    params = ScheduledRunInput(
        schedule_id=schedule_id,
        tenant_id=tenant_id,
        definition_id=row.id,
        started_by=created_by,
        input_data=input_data,
        priority=priority,
    )
    action = ScheduleActionStartWorkflow(
        ScheduledRunWorkflow.run,
        params,
        id=temporal_id(schedule_id),  # Temporal appends each tick's time
        task_queue=queue_name(TaskQueue.WORKFLOWS, settings.task_queue_prefix),
        execution_timeout=RUN_TIMEOUT,
        typed_search_attributes=run_attributes(
            tenant_id=tenant_id, kind="scheduled_run", started_by=created_by, definition_id=row.id
        ),
        static_summary=f"{row.name} (schedule {schedule_id})",
    )
    schedule = Schedule(
        action=action,
        spec=timing.spec(),
        # A tick that cannot start its execution (the definition was deleted, the
        # input no longer fits) pauses the schedule instead of failing on every tick.
        policy=SchedulePolicy(
            overlap=ScheduleOverlapPolicy.SKIP,
            catchup_window=CATCHUP_WINDOW,
            pause_on_failure=True,
        ),
        state=ScheduleState(paused=paused, note=note or ""),
    )
    try:
        handle = await client.create_schedule(
            temporal_id(schedule_id),
            schedule,
            memo={**timing.memo(), "created_at": datetime.now(UTC).isoformat()},
            search_attributes=run_attributes(
                tenant_id=tenant_id, kind=KIND, started_by=created_by, definition_id=row.id
            ),
        )
    except RPCError as exc:
        if exc.status != RPCStatusCode.INVALID_ARGUMENT:
            raise
        field = "cron" if timing.cron is not None else "interval_seconds"
        raise InvalidInput(
            f"Temporal refused the schedule: {exc.message}",
            details={"field": field, "issue": exc.message},
        ) from None
    description = await handle.describe()
    if not description.info.next_action_times:
        await handle.delete()
        raise InvalidInput(
            f"the schedule would never run: {timing.cron!r} matches no time from now on",
            details={"field": "cron", "issue": "no future time matches"},
        )
    return await _view(db, client, description)


async def _describe(db: TenantScope, client: Client, schedule_id: str) -> ScheduleDescription:
    """The caller's schedule, described by Temporal (another tenant's: not found)."""
    tenant_id = _tenant(db)
    missing = ScheduleNotFound(f"Schedule {schedule_id} not found")
    if not SCHEDULE_ID.match(schedule_id):
        raise missing
    try:
        description = await client.get_schedule_handle(temporal_id(schedule_id)).describe()
    except RPCError as exc:
        if is_not_found(exc):
            raise missing from None
        raise
    if description.typed_search_attributes.get(SA_TENANT) != tenant_id:
        raise missing
    return description


async def _executions_by_key(db: TenantScope, keys: Sequence[str]) -> dict[str, str]:
    """The executions started by these scheduled runs (run workflow id → execution id)."""
    if not keys:
        return {}
    rows = await db.session.scalars(
        db.select(Execution).where(Execution.idempotency_key.in_(list(keys)))
    )
    return {str(row.idempotency_key): row.id for row in rows}


async def _view(db: TenantScope, client: Client, description: ScheduleDescription) -> ScheduleView:
    action = description.schedule.action
    if not isinstance(action, ScheduleActionStartWorkflow):
        raise ScheduleNotFound(f"Schedule {description.id} not found")
    payloads = cast(Sequence[Payload], action.args)
    (params,) = await client.data_converter.decode(list(payloads), [ScheduledRunInput])
    run: ScheduledRunInput = params
    memo = await description.memo()
    info, state = description.info, description.schedule.state
    recent = [
        (result, result.action.workflow_id)
        for result in info.recent_actions
        if isinstance(result.action, ScheduleActionExecutionStartWorkflow)
    ]
    started = await _executions_by_key(db, [workflow_id for _, workflow_id in recent])
    created = memo.get("created_at")
    upcoming = [] if state.paused else list(info.next_action_times[:NEXT_RUNS_SHOWN])
    return ScheduleView(
        id=run.schedule_id,
        workflow_id=run.definition_id,
        cron=memo.get("cron"),
        interval_seconds=memo.get("interval_seconds"),
        timezone=memo.get("timezone"),
        input_data=run.input_data,
        priority=run.priority,
        paused=state.paused,
        note=state.note,
        next_run_at=upcoming[0] if upcoming else None,
        next_run_times=upcoming,
        recent_runs=[
            ScheduledRun(
                scheduled_at=result.scheduled_at,
                started_at=result.started_at,
                run_workflow_id=workflow_id,
                execution_id=started.get(workflow_id),
            )
            for result, workflow_id in reversed(recent)  # newest first
        ],
        total_runs=info.num_actions,
        created_at=datetime.fromisoformat(created) if created else info.created_at,
        created_by=run.started_by,
        temporal_schedule_id=description.id,
    )


async def get_schedule(db: TenantScope, client: Client, schedule_id: str) -> ScheduleView:
    return await _view(db, client, await _describe(db, client, schedule_id))


async def list_schedules(
    db: TenantScope,
    client: Client,
    *,
    definition_id: str | None = None,
    page: int = 1,
    limit: int = 20,
) -> tuple[list[ScheduleView], int]:
    """The tenant's schedules, newest first, one page of them (and how many there are)."""
    tenant_id = _tenant(db)
    # Only ids of safe characters are quoted into the query (no escaping to get wrong).
    if not QUERY_VALUE.match(tenant_id) or not QUERY_VALUE.match(definition_id or "-"):
        return [], 0
    query = f"{SA_TENANT.name} = '{tenant_id}' AND {SA_KIND.name} = '{KIND}'"
    if definition_id is not None:
        query += f" AND {SA_DEFINITION.name} = '{definition_id}'"
    listed = [entry async for entry in await client.list_schedules(query)]
    created = {entry.id: str((await entry.memo()).get("created_at") or "") for entry in listed}
    ordered = sorted(listed, key=lambda entry: (created[entry.id], entry.id), reverse=True)
    chosen = ordered[(page - 1) * limit : page * limit]
    gate = asyncio.Semaphore(DESCRIBE_CONCURRENCY)

    async def describe(temporal_schedule_id: str) -> ScheduleDescription | None:
        async with gate:
            try:
                return await client.get_schedule_handle(temporal_schedule_id).describe()
            except RPCError as exc:
                if is_not_found(exc):  # deleted since the (eventually consistent) listing
                    return None
                raise

    found = await asyncio.gather(*(describe(entry.id) for entry in chosen))
    views = [
        await _view(db, client, description)
        for description in found
        if description is not None
        and description.typed_search_attributes.get(SA_TENANT) == tenant_id
    ]
    return views, len(listed)


async def pause_schedule(
    db: TenantScope, client: Client, schedule_id: str, *, note: str | None = None
) -> ScheduleView:
    """Stop starting executions (the running ones go on) until resumed."""
    description = await _describe(db, client, schedule_id)
    await client.get_schedule_handle(description.id).pause(note=note or "Paused through the API")
    return await get_schedule(db, client, schedule_id)


async def resume_schedule(
    db: TenantScope, client: Client, schedule_id: str, *, note: str | None = None
) -> ScheduleView:
    """Start executions again from the next due time (missed ticks are not made up)."""
    description = await _describe(db, client, schedule_id)
    await client.get_schedule_handle(description.id).unpause(note=note or "Resumed through the API")
    return await get_schedule(db, client, schedule_id)


async def delete_schedule(db: TenantScope, client: Client, schedule_id: str) -> None:
    """Delete the schedule; executions it already started are kept and run on."""
    description = await _describe(db, client, schedule_id)
    try:
        await client.get_schedule_handle(description.id).delete()
    except RPCError as exc:
        if not is_not_found(exc):
            raise
