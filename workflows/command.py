"""CommandWorkflow (``cmd-{command_id}``): one zentoria natural-language command.

The API interprets the command (intent and entities, by the configured chat
model or by rules) before it starts this run, and announces it
(``workflow.started`` with subject ``command_id``). The run then does the
intent's work in one activity on ``weft-io`` (``run_command``: a search, a RAG
answer, a chat call, starting a pipeline execution, …), which reports
``workflow.progress`` as it begins, and records the outcome on the command's
row with its ``workflow.completed`` or ``workflow.failed`` event
(``record_command``). A command whose intent is unknown, or whose work fails
after its retries, is recorded as failed with a code and a message; then the
run fails too, so the Web UI shows it.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from engine.platform.queues import TaskQueue
    from workflows.activities import RECORD_COMMAND, RUN_COMMAND
    from workflows.command_payloads import (
        RUNNABLE,
        UNKNOWN_INTENT,
        CommandError,
        CommandInput,
        CommandOutcome,
        CommandRecord,
        CommandResult,
    )

# Failures another attempt cannot fix (raised by the engine as these codes).
PERMANENT = [
    "VALIDATION_ERROR",
    "NOT_FOUND",
    "FORBIDDEN",
    "WORKFLOW_NOT_FOUND",
    "EXECUTION_NOT_FOUND",
    "MODEL_NOT_AVAILABLE",
    "INSUFFICIENT_CREDITS",
    "EGRESS_DENIED",
]


def _cause(err: ActivityError) -> CommandError:
    cause = err.cause
    if isinstance(cause, ApplicationError):
        return CommandError(code=cause.type or "COMMAND_FAILED", message=cause.message)
    return CommandError(code="COMMAND_FAILED", message=str(cause or err))


@workflow.defn
class CommandWorkflow:
    @workflow.run
    async def run(self, params: CommandInput) -> CommandResult:
        if params.intent in RUNNABLE:
            outcome = await self._work(params)
        else:
            outcome = CommandOutcome(
                status="failed",
                error=CommandError(
                    code=UNKNOWN_INTENT,
                    message=(
                        "The command was not understood; try e.g. 'search my documents for "
                        "…', 'summarize report.pdf', 'run workflow …' or 'status of exe_…'"
                    ),
                ),
            )
        await RECORD_COMMAND.execute(
            CommandRecord(
                command_id=params.command_id,
                tenant_id=params.tenant_id,
                intent=params.intent,
                status=outcome.status,
                result=outcome.result,
                error=outcome.error,
                message=outcome.message,
            ),
            task_queue=self._queue(TaskQueue.IO),
            # SQLite may keep a writer waiting up to 30 s (its busy timeout).
            start_to_close_timeout=timedelta(seconds=40),
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=10)),
            summary="Record the outcome",
        )
        if outcome.status == "failed" and outcome.error is not None:
            error = outcome.error
            raise ApplicationError(error.message, type=error.code, non_retryable=True)
        return CommandResult(
            command_id=params.command_id,
            intent=params.intent,
            status=outcome.status,
            result=outcome.result,
            error=outcome.error,
            message=outcome.message,
        )

    async def _work(self, params: CommandInput) -> CommandOutcome:
        try:
            return await RUN_COMMAND.execute(
                params,
                task_queue=self._queue(TaskQueue.IO),
                start_to_close_timeout=timedelta(minutes=5),
                retry_policy=RetryPolicy(
                    maximum_attempts=3,
                    maximum_interval=timedelta(seconds=30),
                    non_retryable_error_types=PERMANENT,
                ),
                summary=params.intent,
            )
        except ActivityError as err:
            return CommandOutcome(status="failed", error=_cause(err))

    def _queue(self, queue: TaskQueue) -> str:
        """An activity queue with this run's queue prefix (read from its own queue)."""
        own = workflow.info().task_queue
        return own[: len(own) - len(TaskQueue.WORKFLOWS.value)] + queue.value
