"""The Temporal Schedule that keeps partio's request history within its retention.

One schedule per deployment (``{task_queue_prefix}weft-history-purge``), not a
loop in every API replica: it starts ``HistoryPurgeWorkflow`` every hour, one
run at a time (overlap SKIP), and a tick missed while Temporal was down is run
once when it is back, never a pile of them. The worker serving the workflows
queue creates it at start-up; creating it again updates it to this definition
and keeps its paused state, so every start converges on the same schedule.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from engine.platform.queues import TaskQueue, queue_name
from engine.platform.settings import Settings
from engine.platform.temporal import SA_KIND
from workflows.history_purge import HistoryPurgeInput, HistoryPurgeWorkflow

SCHEDULE_ID = "weft-history-purge"
WORKFLOW_ID = "history-purge"  # Temporal appends each tick's time
KIND = "history_purge"
EVERY = timedelta(hours=1)
RUN_TIMEOUT = timedelta(hours=1)


def schedule_id(settings: Settings) -> str:
    return f"{settings.task_queue_prefix}{SCHEDULE_ID}"


def purge_schedule(settings: Settings, state: ScheduleState | None = None) -> Schedule:
    """The schedule as this version defines it (``state`` kept from an existing one)."""
    kind = TypedSearchAttributes([SearchAttributePair(SA_KIND, KIND)])
    return Schedule(
        action=ScheduleActionStartWorkflow(
            HistoryPurgeWorkflow.run,
            HistoryPurgeInput(),
            id=f"{settings.task_queue_prefix}{WORKFLOW_ID}",
            task_queue=queue_name(TaskQueue.WORKFLOWS, settings.task_queue_prefix),
            execution_timeout=RUN_TIMEOUT,
            typed_search_attributes=kind,
            static_summary="Delete request history past its retention",
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=EVERY)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=EVERY),
        state=state or ScheduleState(note="request-history retention (weft)"),
    )


async def ensure_purge_schedule(client: Client, settings: Settings) -> ScheduleHandle:
    """Create the schedule, or bring an existing one to this definition (idempotent)."""
    try:
        return await client.create_schedule(schedule_id(settings), purge_schedule(settings))
    except ScheduleAlreadyRunningError:
        handle = client.get_schedule_handle(schedule_id(settings))

        def converge(current: ScheduleUpdateInput) -> ScheduleUpdate:
            state = current.description.schedule.state
            return ScheduleUpdate(schedule=purge_schedule(settings, state))

        await handle.update(converge)
        return handle
