"""The activity behind a schedule's tick: start one execution for the schedule's tenant."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from engine.db.scope import TenantScope
from engine.pipelines import executions
from engine.platform.errors import WeftError
from engine.platform.settings import Settings
from workflows.activities import START_SCHEDULED_RUN, ScheduledStart, ScheduledStarted


class ScheduleActivities:
    def __init__(self, settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.settings, self.sessions = settings, sessions

    @START_SCHEDULED_RUN.defn
    async def start_scheduled_run(self, params: ScheduledStart) -> ScheduledStarted:
        """Start the execution exactly as the execute route does, in the schedule's
        tenant; the same ``idempotency_key`` again returns the execution already started."""
        async with self.sessions() as session:
            db = TenantScope(session, params.tenant_id, all_tenants=False)
            try:
                row = await executions.execute(
                    db,
                    activity.client(),  # the worker's own client (pydantic data converter)
                    self.settings,
                    params.definition_id,
                    input_data=params.input_data,
                    started_by=params.started_by,
                    priority=params.priority,
                    idempotency_key=params.idempotency_key,
                )
            except WeftError as exc:
                if getattr(exc, "retryable", False):
                    raise
                # A deleted definition or an input that no longer fits it: no retry helps.
                raise ApplicationError(
                    exc.message, exc.details, type=exc.code, non_retryable=True
                ) from None
            activity.logger.info("schedule %s started execution %s", params.schedule_id, row.id)
            return ScheduledStarted(
                execution_id=row.id, workflow_id=row.workflow_id, status=row.status
            )
