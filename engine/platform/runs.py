"""Starting, reading and cancelling runs: the one place that builds a run's
start options (id, queue, search attributes, summary, id policies) and maps
Temporal's "not found" to the engine's own error.

Services call these; routes never see Temporal start options.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.common import Priority, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, FailureError
from temporalio.exceptions import TimeoutError as TemporalTimeout
from temporalio.service import RPCError, RPCStatusCode
from temporalio.types import MethodAsyncSingleParam

from engine.platform.errors import NotFound, WeftError
from engine.platform.queues import TaskQueue, queue_name
from engine.platform.settings import Settings
from engine.platform.temporal import run_attributes

SelfT = TypeVar("SelfT")
ArgT = TypeVar("ArgT")
ResultT = TypeVar("ResultT")


class RunTimedOut(WeftError):
    """A run the caller waits for did not finish within its time limit."""

    code = "GATEWAY_TIMEOUT"


class RunFailed(WeftError):
    """A run the caller waits for failed. ``code`` is the failure's own error
    code where it names one the API maps (``EGRESS_DENIED``, ``MODEL_NOT_AVAILABLE``…),
    else ``RUN_FAILED``."""

    code = "RUN_FAILED"


# Failure codes an activity raises that keep their meaning (and HTTP status) for the caller.
PASSED_THROUGH = frozenset(
    {
        "EGRESS_DENIED",
        "MODEL_NOT_AVAILABLE",
        "MODEL_API_ERROR",
        "UPSTREAM_RESPONSE_TOO_LARGE",
        "UPSTREAM_UNREACHABLE",
        "GATEWAY_TIMEOUT",
    }
)
_ERROR_CODE = re.compile(r"^[A-Z][A-Z0-9_]+$")


def run_failure(exc: WorkflowFailureError, workflow_id: str) -> WeftError:
    """The engine error for a failed run: a timeout anywhere in the failure chain
    is ``RunTimedOut``; otherwise the innermost application error decides."""
    details: dict[str, Any] = {"workflow_id": workflow_id}
    causes: list[BaseException] = []
    cause: BaseException | None = exc.cause
    while cause is not None and len(causes) < 10:
        causes.append(cause)
        cause = cause.cause if isinstance(cause, FailureError) else None
    if any(isinstance(c, TemporalTimeout) for c in causes):
        return RunTimedOut("The run did not finish within its time limit", details=details)
    failures = [c for c in causes if isinstance(c, ApplicationError)]
    if not failures:
        return RunFailed("The run failed", details=details)
    failure = failures[-1]
    kind = failure.type or ""
    if not _ERROR_CODE.match(kind):  # an unexpected exception: its text stays in the run
        return RunFailed("The run failed", details={**details, "reason": kind or "unknown"})
    error = RunFailed(failure.message, details={**details, "reason": kind})
    if kind in PASSED_THROUGH:
        error.code = kind
    return error


@dataclass(frozen=True)
class RunOptions:
    """How one run starts and how the Web UI shows it.

    ``workflow_id`` derives from a domain key, so a repeated start is
    idempotent; ``join_existing`` makes a start while the run is still going
    return that run instead of failing (and allows a new run after it closed).
    """

    workflow_id: str
    kind: str
    tenant_id: str
    started_by: str
    summary: str
    definition_id: str | None = None
    join_existing: bool = False
    execution_timeout: timedelta | None = None
    priority: Priority | None = None  # Temporal task priority (1 first)
    start_delay: timedelta | None = None  # a delayed start (scheduled_at)
    start_signal: str | None = None  # signal-with-start: deliver this signal too
    once: bool = False  # this id runs once: never again after its run closed

    def start_kwargs(self, settings: Settings) -> dict[str, Any]:
        options: dict[str, Any] = {
            "id": self.workflow_id,
            "task_queue": queue_name(TaskQueue.WORKFLOWS, settings.task_queue_prefix),
            "search_attributes": run_attributes(
                tenant_id=self.tenant_id,
                kind=self.kind,
                started_by=self.started_by,
                definition_id=self.definition_id,
            ),
            "static_summary": self.summary,
        }
        if self.join_existing:
            options["id_reuse_policy"] = WorkflowIDReusePolicy.ALLOW_DUPLICATE
            options["id_conflict_policy"] = WorkflowIDConflictPolicy.USE_EXISTING
        if self.once:
            options["id_reuse_policy"] = WorkflowIDReusePolicy.REJECT_DUPLICATE
        if self.execution_timeout is not None:
            options["execution_timeout"] = self.execution_timeout
        if self.priority is not None:
            options["priority"] = self.priority
        if self.start_delay is not None:
            options["start_delay"] = self.start_delay
        if self.start_signal is not None:
            options["start_signal"] = self.start_signal
        return options


async def start_run(
    client: Client,
    settings: Settings,
    run: MethodAsyncSingleParam[SelfT, ArgT, ResultT],
    arg: ArgT,
    options: RunOptions,
) -> WorkflowHandle[SelfT, ResultT]:
    """Start a run (answers at once with its handle)."""
    return await client.start_workflow(run, arg, **options.start_kwargs(settings))


async def execute_run(
    client: Client,
    settings: Settings,
    run: MethodAsyncSingleParam[SelfT, ArgT, ResultT],
    arg: ArgT,
    options: RunOptions,
) -> ResultT:
    """Start a run and wait for its result; a failed run raises ``RunTimedOut``
    or ``RunFailed`` (see ``run_failure``), never Temporal's own exception."""
    try:
        return await client.execute_workflow(run, arg, **options.start_kwargs(settings))
    except WorkflowFailureError as exc:
        raise run_failure(exc, options.workflow_id) from exc


def is_not_found(exc: RPCError) -> bool:
    return exc.status == RPCStatusCode.NOT_FOUND


async def describe_run(handle: WorkflowHandle[Any, Any], what: str) -> WorkflowExecutionDescription:
    """The run's description; a run Temporal does not know is ``NotFound`` naming ``what``."""
    try:
        return await handle.describe()
    except RPCError as exc:
        if is_not_found(exc):
            raise NotFound(f"{what} {handle.id} not found") from None
        raise


async def cancel_run(client: Client, workflow_id: str) -> None:
    """Ask a run to cancel; a run that no longer exists needs nothing."""
    try:
        await client.get_workflow_handle(workflow_id).cancel()
    except RPCError as exc:
        if not is_not_found(exc):
            raise
