"""PipelineWorkflow (``run-{execution_id}``): one durable run of a pipeline definition.

The definition is copied into the run's input when it starts, so editing the
stored definition never disturbs a running execution. The workflow is an
interpreter of the DAG: a step starts as soon as every step it depends on is
done, so independent branches run in parallel. Model, HTTP and e-mail steps
are activities on ``weft-io`` (each with a summary naming the step, so the
Web UI timeline reads as the pipeline); ``transform`` and ``condition`` are
pure and computed here; ``human_approval`` waits for the ``approve`` update;
``wait_for_callback`` opens a one-time callback URL (activity ``open_callback``)
and waits for the ``callback`` signal it delivers; ``sub_workflow`` and
``document_processor`` are child workflows. The ``status`` query answers
progress, per-step results with tokens and cost, and the log.

While it runs, a top-level run reports each completed step
(``workflow.step_completed``) and each step that starts to wait for a person or
a callback (``workflow.progress``) to the events outbox through a local
activity; events that arise together go in one batch, so a wide DAG costs a
few inserts, not one per node. Runs recorded before this (no ``step-events``
patch in their history) replay without it.

A failed step fails the run (its running siblings are cancelled). Cancelling
the run cancels the running activities through Temporal. Whatever the end,
one last activity writes the outcome (and its event) to the database's
execution index.

A definition that declares ``data_categories`` (z2 consent) processes one data
subject's data: before each step that touches categories, activity
``check_consent`` confirms the subject's consent still covers them (a step
without it does not run), and a ``consent_revoked`` signal (sent when the subject
revokes) stops the run at once. Either way the run's running steps are cancelled
and it fails with ``CONSENT_REVOKED``, naming the categories. Runs without
categories issue exactly the commands they did before.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
)

with workflow.unsafe.imports_passed_through():
    from engine.pipelines import templating
    from engine.pipelines.conditions import evaluate
    from engine.pipelines.definition import PipelineDefinition, StepSpec, StepType
    from engine.platform.queues import TaskQueue
    from workflows.a2a_payloads import RemoteAgentCall
    from workflows.activities import (
        CALL_API,
        CALL_MODEL,
        CALL_REMOTE_AGENT,
        CHECK_CONSENT,
        EMIT_STEP_EVENTS,
        LOAD_DEFINITION,
        OPEN_CALLBACK,
        RECORD_EXECUTION,
        SEND_EMAIL,
    )
    from workflows.document_payloads import EmbeddingSpec
    from workflows.document_processing import DocumentProcessingInput, DocumentProcessingWorkflow
    from workflows.pipeline_payloads import (
        CALLBACK_SIGNAL,
        CONSENT_REVOKED_SIGNAL,
        AgentSnapshot,
        CallbackReceived,
        ConsentCheck,
        ConsentRevoked,
        ExecutionRecord,
        FailedStep,
        LoadDefinitionInput,
        OpenCallbackInput,
        StepCall,
        StepEvent,
        StepEventKind,
        StepEvents,
        StepOutcome,
        StepRecord,
    )

MAX_DEPTH = 5  # sub-workflows inside sub-workflows
APPROVAL_TIMEOUT = timedelta(days=7)
CALLBACK_TIMEOUT = timedelta(days=7)  # a wait_for_callback step without timeout_seconds
A2A_WAIT_SECONDS = 120.0  # an a2a step without timeout_seconds
# Remote task states that fail an a2a step (input-required completes it: a later
# step can answer with the task's ids).
A2A_FAILED = {"failed": "A2A_TASK_FAILED", "rejected": "A2A_TASK_FAILED",
              "canceled": "A2A_TASK_FAILED", "auth-required": "A2A_AUTH_REQUIRED"}  # fmt: skip
# Runs started before step events existed replay without them.
STEP_EVENTS_PATCH = "step-events"
# A run whose data subject's consent no longer covers its data categories.
CONSENT_REVOKED = "CONSENT_REVOKED"
EVENT_BATCH = 250  # step events per local activity (a 500-step DAG: a few inserts)
# Failures another attempt cannot fix: a step that raises one of these fails at once.
PERMANENT = [
    "VALIDATION_ERROR",
    "TEMPLATE_ERROR",
    "MODEL_NOT_AVAILABLE",
    "INSUFFICIENT_CREDITS",
    "EGRESS_DENIED",
    "UPSTREAM_RESPONSE_TOO_LARGE",
    "NOT_FOUND",
    "HTTP_CLIENT_ERROR",
]
DEFAULT_TIMEOUTS = {
    StepType.AGENT: timedelta(minutes=10),
    StepType.AI_PROMPT: timedelta(minutes=10),
    StepType.API_CALL: timedelta(minutes=2),
    StepType.EMAIL: timedelta(minutes=2),
}
ACTIVITY_STEPS = {
    StepType.AGENT: CALL_MODEL,
    StepType.AI_PROMPT: CALL_MODEL,
    StepType.API_CALL: CALL_API,
    StepType.EMAIL: SEND_EMAIL,
}
DONE = ("completed", "skipped")

StepStatus = Literal[
    "pending",
    "running",
    "waiting_approval",
    "waiting_callback",
    "completed",
    "failed",
    "skipped",
    "cancelled",
]
WAITING = ("waiting_approval", "waiting_callback")
RunStatus = Literal["running", "completed", "failed", "cancelled", "timed_out"]
LogLevel = Literal["info", "warning", "error"]


class PipelineInput(BaseModel):
    execution_id: str
    tenant_id: str
    started_by: str
    definition_id: str | None = None
    name: str = ""
    definition: PipelineDefinition
    input_data: dict[str, Any] = Field(default_factory=dict)
    agents: dict[str, AgentSnapshot] = Field(default_factory=dict)
    depth: int = 0
    # Whose data the run processes, when its definition declares data categories
    # (none: the user who started it).
    data_subject_id: str | None = None


class Approval(BaseModel):
    approved: bool
    decided_by: str
    decided_at: datetime
    comment: str | None = None


class StepState(BaseModel):
    id: str
    name: str
    type: str
    status: StepStatus = "pending"
    output: Any = None
    error: str | None = None
    error_code: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    tokens_used: int = 0
    cost_usd: float = 0.0
    model: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)
    approval: Approval | None = None


class LogEntry(BaseModel):
    timestamp: datetime
    level: LogLevel
    message: str
    step_id: str | None = None


class Progress(BaseModel):
    completed_steps: int
    total_steps: int
    current_step: str | None


class PipelineStatus(BaseModel):
    execution_id: str
    status: RunStatus
    started_at: datetime
    completed_at: datetime | None = None
    progress: Progress
    steps: dict[str, StepState]
    logs: list[LogEntry]
    tokens_used: int = 0
    cost_usd: float = 0.0
    error_code: str | None = None
    error: str | None = None


class ApprovalInput(BaseModel):
    step_id: str
    approved: bool
    decided_by: str
    comment: str | None = Field(default=None, max_length=2000)


class PipelineResult(BaseModel):
    status: RunStatus
    outputs: dict[str, Any]
    tokens_used: int
    cost_usd: float


class StepFailed(Exception):
    def __init__(self, step: StepSpec, code: str, message: str) -> None:
        super().__init__(message)
        self.step, self.code, self.message = step, code, message


class ConsentWithdrawn(Exception):
    """A ``consent_revoked`` signal stops the run."""

    def __init__(self, revoked: ConsentRevoked) -> None:
        super().__init__(revoked.consent_id)
        self.revoked = revoked


def _categories(names: list[str]) -> str:
    return ", ".join(names)


def _retry(step: StepSpec) -> RetryPolicy:
    spec = step.retry
    return RetryPolicy(
        initial_interval=timedelta(seconds=spec.initial_interval_seconds if spec else 1),
        backoff_coefficient=spec.backoff if spec else 2.0,
        maximum_interval=timedelta(minutes=1),
        maximum_attempts=spec.max_attempts if spec else 3,
        non_retryable_error_types=PERMANENT,
    )


def _cause(err: BaseException) -> tuple[str, str]:
    """The error code and message behind an activity or child failure."""
    cause: BaseException | None = err
    while isinstance(cause, ActivityError | ChildWorkflowError) and cause.cause is not None:
        cause = cause.cause
    if isinstance(cause, ApplicationError):
        return cause.type or "STEP_FAILED", cause.message
    return "STEP_FAILED", str(cause or err)


@workflow.defn
class PipelineWorkflow:
    def __init__(self) -> None:
        self._steps: dict[str, StepState] = {}
        self._logs: list[LogEntry] = []
        self._status: RunStatus = "running"
        self._started_at: datetime | None = None
        self._completed_at: datetime | None = None
        self._error: tuple[str, str] | None = None
        self._decisions: dict[str, ApprovalInput] = {}
        self._callbacks: dict[str, CallbackReceived] = {}
        self._failed: FailedStep | None = None
        # Step events waiting for the flusher (a top-level run started with the patch).
        self._events_on = False
        self._events: list[StepEvent] = []
        self._closing = False
        self._flusher: asyncio.Task[None] | None = None
        # z2 consent: the data categories the run declares, and revocations received.
        self._categories: set[str] = set()
        self._revocations: list[ConsentRevoked] = []

    # --- reading and steering ------------------------------------------------

    @workflow.query
    def status(self) -> PipelineStatus:
        steps = self._steps.values()
        running = [s.name for s in steps if s.status == "running" or s.status in WAITING]
        return PipelineStatus(
            execution_id=workflow.info().workflow_id.removeprefix("run-"),
            status=self._status,
            started_at=self._started_at or workflow.info().start_time,
            completed_at=self._completed_at,
            progress=Progress(
                completed_steps=sum(1 for s in steps if s.status in DONE),
                total_steps=len(self._steps),
                current_step=running[0] if running else None,
            ),
            steps=dict(self._steps),
            logs=list(self._logs),
            tokens_used=sum(s.tokens_used for s in steps),
            cost_usd=round(sum(s.cost_usd for s in steps), 6),
            error_code=self._error[0] if self._error else None,
            error=self._error[1] if self._error else None,
        )

    @workflow.update
    async def approve(self, decision: ApprovalInput) -> Approval:
        """Approve or reject a step that waits for a human."""
        self._decisions[decision.step_id] = decision
        await workflow.wait_condition(lambda: self._steps[decision.step_id].approval is not None)
        approval = self._steps[decision.step_id].approval
        if approval is None:  # unreachable: the condition above waits for it
            raise ApplicationError("approval not recorded", non_retryable=True)
        return approval

    @workflow.signal(name=CALLBACK_SIGNAL)
    def callback(self, received: CallbackReceived) -> None:
        """A callback this run opened was called (verified by the API). The first
        delivery of each callback counts; repeats are ignored."""
        self._callbacks.setdefault(received.callback_id, received)

    @workflow.signal(name=CONSENT_REVOKED_SIGNAL)
    def consent_revoked(self, revoked: ConsentRevoked) -> None:
        """The data subject revoked consent for some of the run's categories (sent by
        the API): the run stops. Repeats, and categories it does not touch, change nothing."""
        self._revocations.append(revoked)

    def _revoked(self) -> ConsentRevoked | None:
        """The first revocation that touches the run's data categories."""
        for revoked in self._revocations:
            if self._categories.intersection(revoked.categories):
                return revoked
        return None

    @approve.validator
    def _approvable(self, decision: ApprovalInput) -> None:
        state = self._steps.get(decision.step_id)
        if state is None:
            raise ValueError(f"no step {decision.step_id!r} in this execution")
        if state.status != "waiting_approval" or decision.step_id in self._decisions:
            raise ValueError(f"step {decision.step_id!r} is not waiting for approval")

    # --- the run ---------------------------------------------------------------

    @workflow.run
    async def run(self, params: PipelineInput) -> PipelineResult:
        self._started_at = workflow.now()
        self._steps = {
            s.id: StepState(id=s.id, name=s.title, type=s.type.value)
            for s in params.definition.steps
        }
        # Sub-runs have no execution of their own to report on.
        self._events_on = params.depth == 0 and workflow.patched(STEP_EVENTS_PATCH)
        if self._events_on:
            self._flusher = asyncio.create_task(self._flush_events(params))
        self._categories = set(params.definition.declared_categories())
        self._log("info", "Workflow execution started")
        scheduler = asyncio.create_task(self._schedule(params))
        timeout = params.definition.timeout_seconds
        try:
            # A revocation wakes these (without categories there is none to wait for).
            if timeout:
                await workflow.wait_condition(
                    lambda: scheduler.done() or self._revoked() is not None,
                    timeout=timedelta(seconds=timeout),
                )
            elif self._categories:
                await workflow.wait_condition(
                    lambda: scheduler.done() or self._revoked() is not None
                )
            revoked = self._revoked()
            if revoked is not None and not scheduler.done():
                raise ConsentWithdrawn(revoked)
            await scheduler
            self._status = "completed"
            self._log("info", "Workflow execution completed")
        except StepFailed as failed:
            if failed.code == CONSENT_REVOKED:  # the step did not run: no agent failed
                self._end("failed", failed.code, failed.message)
            else:
                self._failed = FailedStep(
                    step_id=failed.step.id,
                    step_type=failed.step.type.value,
                    agent_id=failed.step.agent_id,
                    code=failed.code,
                    message=failed.message,
                )
                self._end(
                    "failed", failed.code, f"Step '{failed.step.title}' failed: {failed.message}"
                )
        except ConsentWithdrawn as stop:
            scheduler.cancel()
            await self._settle(scheduler)
            names = [c for c in stop.revoked.categories if c in self._categories]
            self._end(
                "failed",
                CONSENT_REVOKED,
                f"Consent for the data categories {_categories(names)} was revoked; "
                "the execution stopped",
            )
        except TimeoutError:
            scheduler.cancel()
            await self._settle(scheduler)
            self._end("timed_out", "TIMEOUT", f"The execution ran past {timeout:g} seconds")
        except asyncio.CancelledError:
            scheduler.cancel()
            await self._settle(scheduler)
            self._end("cancelled", "CANCELLED", "The execution was cancelled")
            await self._record(params)
            raise
        await self._record(params)
        if self._status != "completed":
            code, message = self._error or ("FAILED", "failed")
            raise ApplicationError(message, type=code, non_retryable=True)
        return PipelineResult(
            status=self._status,
            outputs={sid: s.output for sid, s in self._steps.items() if s.status == "completed"},
            tokens_used=sum(s.tokens_used for s in self._steps.values()),
            cost_usd=round(sum(s.cost_usd for s in self._steps.values()), 6),
        )

    async def _schedule(self, params: PipelineInput) -> None:
        """Start each step once its dependencies are done; fail fast on a failed step."""
        pending = [step.id for step in params.definition.steps]
        running: dict[str, asyncio.Task[None]] = {}
        try:
            while pending or running:
                moved = False
                for step_id in list(pending):
                    step = params.definition.step(step_id)
                    if all(self._steps[d].status in DONE for d in step.depends_on):
                        pending.remove(step_id)
                        moved = True
                        if self._skipped(step):
                            self._steps[step_id].status = "skipped"
                            self._log("info", f"Step '{step.title}' skipped", step_id)
                            continue
                        running[step_id] = asyncio.create_task(self._run_step(params, step))
                if not running:
                    if not moved:  # validation rules this out (a cycle); never spin
                        raise ApplicationError("no step can start", non_retryable=True)
                    continue  # a skip made more steps ready
                await workflow.wait(list(running.values()), return_when=asyncio.FIRST_COMPLETED)
                for step_id, task in list(running.items()):
                    if task.done():
                        del running[step_id]
                        task.result()  # raises StepFailed
        finally:
            for task in running.values():
                task.cancel()
            for task in running.values():
                await self._settle(task)

    def _skipped(self, step: StepSpec) -> bool:
        """Skipped when every dependency was skipped, or a branch it needs was not taken."""
        deps = [self._steps[d] for d in step.depends_on]
        if deps and all(d.status == "skipped" for d in deps):
            return True
        for parent, wanted in step.when.items():
            state = self._steps[parent]
            taken = isinstance(state.output, dict) and state.output.get("result") is True
            if state.status == "skipped" or taken != wanted:
                return True
        return False

    async def _run_step(self, params: PipelineInput, step: StepSpec) -> None:
        state = self._steps[step.id]
        state.status, state.started_at = "running", workflow.now()
        self._log("info", f"Step '{step.title}' started", step.id)
        try:
            config = templating.render(step.config, self._context(params))
        except templating.TemplateError as exc:
            self._fail(state, "TEMPLATE_ERROR", str(exc))
            raise StepFailed(step, "TEMPLATE_ERROR", str(exc)) from None
        categories = params.definition.categories_of(step)
        try:
            if categories:
                await self._check_consent(params, step, categories)
            outcome = await self._execute(params, step, config)
        except asyncio.CancelledError:
            state.status, state.completed_at = "cancelled", workflow.now()
            raise
        except (ActivityError, ChildWorkflowError) as err:
            if isinstance(err.cause, CancelledError):  # the execution is being cancelled
                state.status, state.completed_at = "cancelled", workflow.now()
                raise asyncio.CancelledError() from None
            code, message = _cause(err)
            self._fail(state, code, message)
            raise StepFailed(step, code, message) from None
        except StepFailed as failed:
            self._fail(state, failed.code, failed.message)
            raise
        state.status, state.completed_at = "completed", workflow.now()
        state.output, state.model, state.detail = outcome.output, outcome.model, outcome.detail
        state.tokens_used, state.cost_usd = outcome.tokens_used, outcome.cost_usd
        self._log("info", f"Step '{step.title}' completed", step.id)
        self._step_event("step_completed", step)

    async def _check_consent(
        self, params: PipelineInput, step: StepSpec, categories: list[str]
    ) -> None:
        """The data subject's granted consents still cover the step's categories
        (activity ``check_consent``), or the step does not run."""
        held = await CHECK_CONSENT.execute(
            ConsentCheck(
                tenant_id=params.tenant_id,
                user_id=params.data_subject_id or params.started_by,
                categories=categories,
            ),
            task_queue=self._queue(TaskQueue.IO),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30)),
            summary=f"Consent for {step.title}",
        )
        if held.missing:
            raise StepFailed(
                step,
                CONSENT_REVOKED,
                f"Consent for the data categories {_categories(held.missing)} is no longer "
                f"granted; step '{step.title}' did not run",
            )

    async def _execute(
        self, params: PipelineInput, step: StepSpec, config: dict[str, Any]
    ) -> StepOutcome:
        if step.type is StepType.TRANSFORM:
            return StepOutcome(output=config.get("output", config.get("template", config)))
        if step.type is StepType.CONDITION:
            try:
                result = evaluate(config)
            except ValueError as exc:
                raise StepFailed(step, "VALIDATION_ERROR", str(exc)) from None
            self._log("info", f"Condition '{step.title}' is {str(result).lower()}", step.id)
            return StepOutcome(output={"result": result})
        if step.type is StepType.HUMAN_APPROVAL:
            return await self._await_approval(step, config)
        if step.type is StepType.WAIT_FOR_CALLBACK:
            return await self._await_callback(params, step, config)
        if step.type is StepType.SUB_WORKFLOW:
            return await self._sub_workflow(params, step, config)
        if step.type is StepType.DOCUMENT_PROCESSOR:
            return await self._process_document(params, step, config)
        if step.type is StepType.A2A:
            return await self._call_agent(params, step, config)
        call = StepCall(
            execution_id=params.execution_id,
            tenant_id=params.tenant_id,
            started_by=params.started_by,
            step_id=step.id,
            step_type=step.type.value,
            config=config,
            agent=params.agents.get(step.agent_id) if step.agent_id else None,
        )
        timeout = step.timeout_seconds
        return await ACTIVITY_STEPS[step.type].execute(
            call,
            task_queue=self._queue(TaskQueue.IO),
            start_to_close_timeout=(
                timedelta(seconds=timeout) if timeout else DEFAULT_TIMEOUTS[step.type]
            ),
            # Heartbeats carry cancellation to a long call within seconds.
            heartbeat_timeout=timedelta(seconds=20),
            retry_policy=_retry(step),
            summary=f"{step.title} ({step.type.value})",
        )

    async def _await_approval(self, step: StepSpec, config: dict[str, Any]) -> StepOutcome:
        state = self._steps[step.id]
        state.status = "waiting_approval"
        self._log("info", f"Step '{step.title}' waits for approval", step.id)
        self._step_event("waiting_approval", step)
        seconds = config.get("timeout_seconds")
        timeout = timedelta(seconds=float(seconds)) if seconds else APPROVAL_TIMEOUT
        try:
            await workflow.wait_condition(lambda: step.id in self._decisions, timeout=timeout)
        except TimeoutError:
            raise StepFailed(
                step, "APPROVAL_TIMEOUT", f"no decision within {timeout.total_seconds():g}s"
            ) from None
        decision = self._decisions[step.id]
        state.approval = Approval(
            approved=decision.approved,
            decided_by=decision.decided_by,
            decided_at=workflow.now(),
            comment=decision.comment,
        )
        verdict = "approved" if decision.approved else "rejected"
        self._log("info", f"Step '{step.title}' {verdict} by {decision.decided_by}", step.id)
        if not decision.approved:
            raise StepFailed(step, "APPROVAL_REJECTED", f"rejected by {decision.decided_by}")
        return StepOutcome(output=state.approval.model_dump(mode="json"))

    async def _await_callback(
        self, params: PipelineInput, step: StepSpec, config: dict[str, Any]
    ) -> StepOutcome:
        """Open a callback URL (announced to ``notify`` if given), then wait for the
        ``callback`` signal of that callback; its body is the step's output."""
        state = self._steps[step.id]
        seconds = config.get("timeout_seconds") or step.timeout_seconds
        try:
            timeout = timedelta(seconds=float(seconds)) if seconds else CALLBACK_TIMEOUT
        except (TypeError, ValueError):
            raise StepFailed(
                step, "VALIDATION_ERROR", f"timeout_seconds {seconds!r} is not a number"
            ) from None
        notify = config.get("notify")
        if notify is not None and not isinstance(notify, dict):
            raise StepFailed(step, "VALIDATION_ERROR", "notify must be an object")
        opened = await OPEN_CALLBACK.execute(
            OpenCallbackInput(
                execution_id=params.execution_id,
                tenant_id=params.tenant_id,
                step_id=step.id,
                workflow_id=workflow.info().workflow_id,
                timeout_seconds=timeout.total_seconds(),
                notify=notify,
            ),
            task_queue=self._queue(TaskQueue.IO),
            start_to_close_timeout=timedelta(minutes=2),
            heartbeat_timeout=timedelta(seconds=20),
            retry_policy=_retry(step),
            summary=f"{step.title} (wait_for_callback)",
        )
        callback_id = opened.callback_id
        state.status = "waiting_callback"
        state.detail = {"callback_id": callback_id, "callback_url": opened.callback_url}
        self._log("info", f"Step '{step.title}' waits for a callback", step.id)
        self._step_event("waiting_callback", step, callback_id=callback_id)
        try:
            await workflow.wait_condition(lambda: callback_id in self._callbacks, timeout=timeout)
        except TimeoutError:
            raise StepFailed(
                step, "CALLBACK_TIMEOUT", f"no callback within {timeout.total_seconds():g}s"
            ) from None
        received = self._callbacks[callback_id]
        state.status = "running"
        self._log("info", f"Step '{step.title}' received its callback", step.id)
        return StepOutcome(
            output=received.body,
            detail={
                **state.detail,
                "message_id": received.message_id,
                "received_at": received.received_at.isoformat(),
            },
        )

    async def _call_agent(
        self, params: PipelineInput, step: StepSpec, config: dict[str, Any]
    ) -> StepOutcome:
        """Send the step's message to a remote A2A agent (activity ``call_remote_agent``)
        and wait for its answer. The output is the answer (state, text, artifacts,
        task and context ids); the exchanged messages go into the step's detail."""
        try:
            call = RemoteAgentCall(
                tenant_id=params.tenant_id,
                card_url=str(config["agent_url"]),
                text=str(config.get("message") or ""),
                data=config.get("data"),
                context_id=config.get("context_id") or None,
                task_id=config.get("task_id") or None,
                timeout_seconds=config.get("timeout_seconds") or A2A_WAIT_SECONDS,
                protocol=config.get("protocol", "auto"),
                idempotency_key=f"{params.execution_id}:{step.id}",
            )
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(part) for part in problem["loc"])
            raise StepFailed(step, "VALIDATION_ERROR", f"{where}: {problem['msg']}") from None
        result = await CALL_REMOTE_AGENT.execute(
            call,
            task_queue=self._queue(TaskQueue.IO),
            start_to_close_timeout=timedelta(seconds=call.timeout_seconds + 30),
            heartbeat_timeout=timedelta(seconds=20),
            retry_policy=_retry(step),
            summary=f"{step.title} (a2a)",
        )
        detail = {"agent_url": call.card_url, "protocol": result.protocol,
                  "transcript": result.transcript}  # fmt: skip
        self._steps[step.id].detail = detail
        if result.state in A2A_FAILED:
            raise StepFailed(
                step,
                A2A_FAILED[result.state],
                f"the remote agent's task ended {result.state}"
                + (f": {result.text}" if result.text else ""),
            )
        level: LogLevel = "warning" if result.state == "input-required" else "info"
        self._log(
            level, f"Step '{step.title}': the remote agent answered ({result.state})", step.id
        )
        output = result.model_dump(include={"state", "text", "artifacts", "task_id", "context_id"})
        return StepOutcome(output=output, detail=detail)

    async def _sub_workflow(
        self, params: PipelineInput, step: StepSpec, config: dict[str, Any]
    ) -> StepOutcome:
        if params.depth >= MAX_DEPTH:
            raise StepFailed(step, "VALIDATION_ERROR", f"sub-workflows nest at most {MAX_DEPTH}")
        loaded = await LOAD_DEFINITION.execute(
            LoadDefinitionInput(
                tenant_id=params.tenant_id, definition_id=str(config["workflow_id"])
            ),
            task_queue=self._queue(TaskQueue.IO),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=_retry(step),
            summary=f"Load {step.title}",
        )
        child_id = f"{params.execution_id}-{step.id}"
        result: PipelineResult = await workflow.execute_child_workflow(
            PipelineWorkflow.run,
            PipelineInput(
                execution_id=child_id,
                tenant_id=params.tenant_id,
                started_by=params.started_by,
                definition_id=loaded.definition_id,
                name=loaded.name,
                definition=PipelineDefinition.model_validate(loaded.definition),
                input_data=dict(config.get("input_data") or {}),
                agents=loaded.agents,
                depth=params.depth + 1,
                data_subject_id=params.data_subject_id,
            ),
            id=f"run-{child_id}",
            static_summary=f"{step.title}: {loaded.name}",
        )
        return StepOutcome(
            output=result.outputs, tokens_used=result.tokens_used, cost_usd=result.cost_usd
        )

    async def _process_document(
        self, params: PipelineInput, step: StepSpec, config: dict[str, Any]
    ) -> StepOutcome:
        file_id = str(config["file_id"])
        result = await workflow.execute_child_workflow(
            DocumentProcessingWorkflow.run,
            DocumentProcessingInput(
                tenant_id=params.tenant_id,
                file_id=file_id,
                ocr=bool(config.get("ocr", True)),
                embedding=EmbeddingSpec(**config["embedding"]) if config.get("embedding") else None,
            ),
            id=f"run-{params.execution_id}-{step.id}",
            static_summary=f"{step.title}: process {file_id}",
        )
        return StepOutcome(
            output={
                "file_id": file_id,
                "pages": result.pages,
                "chunks": result.chunks,
                "model": result.model,
                "text": result.ocr_text,
            }
        )

    # --- helpers -----------------------------------------------------------------

    def _context(self, params: PipelineInput) -> dict[str, Any]:
        """What ``{{…}}`` may read: the input (also at top level) and finished steps."""
        steps = {
            sid: {"output": s.output, "status": s.status}
            for sid, s in self._steps.items()
            if s.status == "completed"
        }
        return {**params.input_data, "input": params.input_data, "steps": steps}

    def _queue(self, queue: TaskQueue) -> str:
        """An activity queue with this run's queue prefix (read from its own queue)."""
        own = workflow.info().task_queue
        return own[: len(own) - len(TaskQueue.WORKFLOWS.value)] + queue.value

    def _log(
        self, level: Literal["info", "warning", "error"], message: str, step: str | None = None
    ) -> None:
        self._logs.append(
            LogEntry(timestamp=workflow.now(), level=level, message=message, step_id=step)
        )

    def _fail(self, state: StepState, code: str, message: str) -> None:
        state.status, state.completed_at = "failed", workflow.now()
        state.error, state.error_code = message, code
        self._log("error", f"Step '{state.name}' failed: {message}", state.id)

    def _end(self, status: RunStatus, code: str, message: str) -> None:
        self._status, self._error = status, (code, message)
        self._log("error" if status != "cancelled" else "warning", message)

    def _step_event(
        self, kind: StepEventKind, step: StepSpec, *, callback_id: str | None = None
    ) -> None:
        """Queue a step event for the flusher (nothing for runs without step events)."""
        if not self._events_on:
            return
        self._events.append(
            StepEvent(
                kind=kind,
                step_id=step.id,
                step_name=step.title,
                step_type=step.type.value,
                completed_steps=sum(1 for s in self._steps.values() if s.status in DONE),
                total_steps=len(self._steps),
                callback_id=callback_id,
            )
        )

    async def _flush_events(self, params: PipelineInput) -> None:
        """Write queued step events in batches, one local activity at a time, until
        the run closes. Events are reports: one that cannot be written after its
        retries is logged and dropped, never a reason to fail the run."""
        while True:
            await workflow.wait_condition(lambda: bool(self._events) or self._closing)
            if not self._events:
                return
            batch, self._events = self._events[:EVENT_BATCH], self._events[EVENT_BATCH:]
            try:
                await EMIT_STEP_EVENTS.execute_local(
                    StepEvents(
                        execution_id=params.execution_id,
                        tenant_id=params.tenant_id,
                        definition_id=params.definition_id,
                        events=batch,
                    ),
                    # SQLite may keep a writer waiting up to 30 s (its busy timeout).
                    start_to_close_timeout=timedelta(seconds=40),
                    retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=10),
                                             maximum_attempts=10),
                    summary=f"Step events ({len(batch)})",
                )  # fmt: skip
            except ActivityError as err:
                workflow.logger.warning("step events not recorded: %s", _cause(err)[1])

    async def _settle(self, task: asyncio.Task[Any]) -> None:
        """Wait for a cancelled task to finish unwinding (its activities cancelled)."""
        with contextlib.suppress(asyncio.CancelledError, StepFailed):
            await task

    async def _record(self, params: PipelineInput) -> None:
        self._completed_at = workflow.now()
        if self._flusher is not None:  # step events go out before the outcome's
            self._closing = True
            await self._flusher
        code, message = self._error or (None, None)
        await RECORD_EXECUTION.execute(
            ExecutionRecord(
                execution_id=params.execution_id,
                tenant_id=params.tenant_id,
                status=self._status,
                completed_at=self._completed_at,
                tokens_used=sum(s.tokens_used for s in self._steps.values()),
                cost_usd=round(sum(s.cost_usd for s in self._steps.values()), 6),
                error_code=code,
                error_message=message,
                results={
                    sid: StepRecord(
                        status=s.status,
                        output=s.output,
                        error=s.error,
                        tokens_used=s.tokens_used,
                        cost_usd=s.cost_usd,
                        started_at=s.started_at,
                        completed_at=s.completed_at,
                    )
                    for sid, s in self._steps.items()
                },
                failed_step=self._failed,
            ),
            task_queue=self._queue(TaskQueue.IO),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30)),
            summary="Record the outcome",
        )
