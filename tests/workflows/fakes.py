"""Same-named fake activities, so workflow logic is tested on its own.

Every fake registers with the real activity's contract (``@EXTRACT_TEXT.defn``:
the same name, argument and result type), so a workflow cannot tell it from a
worker; but it needs no model, database or blob storage. Each call is recorded with its attempt
number, ``failures`` are raised before an activity answers, and ``hold`` stops
one chosen call until the test releases it (to look at a run mid-way).

``serve`` starts the workflows the way ``workers/main.py`` registers them, on a
fresh set of prefixed task queues, with these fakes on the activity queues.
"""

from __future__ import annotations

import asyncio
import contextlib
import platform
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel
from temporalio import activity
from temporalio.client import Client, WorkflowFailureError
from temporalio.worker import Worker

from engine.platform.queues import TaskQueue, queue_name
from workers.main import WORKFLOW_RUNNER, WORKFLOWS
from workflows.a2a_exchange_payloads import A2ASessionRecord
from workflows.a2a_payloads import (
    A2AAgentCall,
    A2AAnswer,
    A2AFollowUp,
    A2APipelineCall,
    A2ATaskRecord,
    RemoteAgentCall,
    RemoteResult,
)
from workflows.activities import (
    ANSWER_A2A_AGENT,
    ASSEMBLE_CELLS,
    CALL_API,
    CALL_MODEL,
    CALL_REMOTE_AGENT,
    CHECK_CONSENT,
    CHUNK_CELLS,
    CHUNK_TEXT,
    DELIVER_WEBHOOK,
    DISPATCH_EVENTS,
    EMBED_CHUNKS,
    EMIT_STEP_EVENTS,
    EXTRACT_TEXT,
    FINISH_DOCUMENT,
    INDEX_CHUNKS,
    LOAD_DEFINITION,
    OPEN_CALLBACK,
    PING_QUEUE,
    PULL_MODEL,
    PURGE_REQUEST_HISTORY,
    RECORD_A2A_SESSION,
    RECORD_A2A_TASK,
    RECORD_COMMAND,
    RECORD_EXECUTION,
    RUN_A2A_PIPELINE,
    RUN_COMMAND,
    SEND_EMAIL,
    START_SCHEDULED_RUN,
    WEBHOOK_EXHAUSTED,
    Activity,
    HistoryPurgeBatch,
    HistoryPurged,
    PingInput,
    PingResult,
    PullModelInput,
    PullModelResult,
    ScheduledStart,
    ScheduledStarted,
)
from workflows.command_payloads import CommandInput, CommandOutcome, CommandRecord
from workflows.document_payloads import (
    AssembleInput,
    AssembleResult,
    CellChunksResult,
    CellsInput,
    ChunkInput,
    ChunkResult,
    EmbedInput,
    EmbedResult,
    ExtractInput,
    ExtractResult,
    FinishInput,
    IndexInput,
    IndexResult,
)
from workflows.event_payloads import (
    AttemptInput,
    AttemptResult,
    DispatchBatch,
    DispatchResult,
    ExhaustedInput,
)
from workflows.model_pull import ModelPullProgress, ModelPullWorkflow
from workflows.pipeline_payloads import (
    CALLBACK_SIGNAL,
    CONSENT_REVOKED_SIGNAL,
    CallbackOpened,
    CallbackReceived,
    ConsentCheck,
    ConsentHeld,
    ConsentRevoked,
    ExecutionRecord,
    LoadDefinitionInput,
    LoadedDefinition,
    OpenCallbackInput,
    StepCall,
    StepEvent,
    StepEvents,
    StepOutcome,
)

FAKE_WORKER = "fake-worker"
PULL_TOTAL = 1_000


@dataclass(frozen=True)
class Call:
    activity: Activity
    params: BaseModel
    attempt: int
    workflow_id: str


@dataclass
class Hold:
    """Stop the ``nth`` call of ``activity`` (1-based) until ``release`` is set."""

    activity: Activity
    nth: int = 1
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)


class FakeActivities:
    """A document of ``pages`` pages that chunks into ``chunks`` chunks (or cells).

    Args:
        pages: the document's page count.
        chunks: how many chunks chunking makes (of the text, or of the cells).
        scanned: the pages that need OCR.
        cells: how many cells a semantic-cells batch has.
        failures: errors raised, in order, by the next calls of an activity.
        hold: one call to stop until the test releases it.
        callback_bodies: what ``open_callback`` delivers to the run right away, one
            signal per body for the callback it opened (after one for a callback
            the run never opened); none: the test signals itself.
        a2a_follow_ups: the next user messages ``record_a2a_task`` hands an A2A task
            (the ``message`` update), one each time the task waits for input.
        consent_missing: what ``check_consent`` answers, call by call (the
            categories no longer covered); once used up, the consent holds.
        revoke_on_check: the ``check_consent`` call (1-based) after which the run
            gets a ``consent_revoked`` signal, as the API sends it on a revoke.
        expired_history: request-history rows past their retention, which
            ``purge_request_history`` deletes a batch at a time.
    """

    def __init__(
        self,
        *,
        pages: int = 1,
        chunks: int = 10,
        scanned: Sequence[int] = (),
        cells: int = 3,
        failures: Mapping[Activity, Sequence[BaseException]] | None = None,
        hold: Hold | None = None,
        definitions: Mapping[str, LoadedDefinition] | None = None,
        callback_bodies: Sequence[Any] = (),
        a2a_follow_ups: Sequence[A2AFollowUp] = (),
        delivery_fails: int = 0,
        consent_missing: Sequence[Sequence[str]] = (),
        revoke_on_check: int | None = None,
        expired_history: int = 0,
    ) -> None:
        self.pages, self.chunks, self.scanned, self.cells = pages, chunks, set(scanned), cells
        self.failures = {name: list(errors) for name, errors in (failures or {}).items()}
        self.hold = hold
        self.definitions = dict(definitions or {})  # for sub_workflow steps
        self.callback_bodies = list(callback_bodies)
        self.a2a_follow_ups = list(a2a_follow_ups)  # sent when an A2A task waits
        self.delivery_fails = delivery_fails  # webhook attempts that fail before one succeeds
        self.consent_missing = [list(missing) for missing in consent_missing]
        self.revoke_on_check = revoke_on_check
        self.expired_history = expired_history
        self.calls: list[Call] = []

    def called(self, name: Activity) -> list[Any]:
        """The parameters of every call of ``name``, in order (retries included)."""
        return [call.params for call in self.calls if call.activity is name]

    def attempts(self, name: Activity) -> list[int]:
        return [call.attempt for call in self.calls if call.activity is name]

    def step_events(self) -> list[StepEvent]:
        """Every step event the runs emitted, in order (retried batches included)."""
        return [
            event
            for batch in self.called(Activity.EMIT_STEP_EVENTS)
            if isinstance(batch, StepEvents)
            for event in batch.events
        ]

    def workflow_ids(self) -> set[str]:
        """The runs that have called any of these activities."""
        return {call.workflow_id for call in self.calls}

    async def _enter(self, name: Activity, params: BaseModel) -> None:
        info = activity.info()
        self.calls.append(Call(name, params, info.attempt, info.workflow_id or ""))
        if self.failures.get(name):
            raise self.failures[name].pop(0)
        hold = self.hold
        if hold is not None and hold.activity is name and len(self.called(name)) == hold.nth:
            hold.reached.set()
            await hold.release.wait()

    def by_queue(self) -> dict[TaskQueue, list[Callable[..., Any]]]:
        """The activity queues as ``workers.main.activities_by_queue`` lays them out."""
        return {
            # Local activities run by the workflows' own worker.
            TaskQueue.WORKFLOWS: [self.emit_step_events],
            TaskQueue.IO: [self.ping_queue, self.index_chunks, self.finish_document,
                           self.pull_model, self.call_model, self.call_api, self.send_email,
                           self.load_definition, self.record_execution,
                           self.start_scheduled_run, self.open_callback, self.check_consent,
                           self.run_command, self.record_command,
                           self.answer_a2a_agent, self.run_a2a_pipeline, self.record_a2a_task,
                           self.call_remote_agent, self.record_a2a_session,
                           self.dispatch_events, self.deliver_webhook,
                           self.webhook_exhausted, self.purge_request_history],
            TaskQueue.CPU: [self.ping_queue, self.extract_text, self.chunk_text,
                            self.chunk_cells, self.assemble_cells],
            TaskQueue.ML: [self.ping_queue, self.embed_chunks],
        }  # fmt: skip

    # --- pipeline steps: a model that answers with its prompt, an API that echoes ---

    @CALL_MODEL.defn
    async def call_model(self, params: StepCall) -> StepOutcome:
        await self._enter(Activity.CALL_MODEL, params)
        prompt = params.config.get("prompt", "")
        return StepOutcome(
            output=f"answer to: {prompt}", tokens_used=10, cost_usd=0.001, model="fake-model"
        )

    @CALL_API.defn
    async def call_api(self, params: StepCall) -> StepOutcome:
        await self._enter(Activity.CALL_API, params)
        return StepOutcome(output={"received": params.config.get("body")},
                           detail={"status_code": 200})  # fmt: skip

    @SEND_EMAIL.defn
    async def send_email(self, params: StepCall) -> StepOutcome:
        await self._enter(Activity.SEND_EMAIL, params)
        return StepOutcome(output="Email stored", detail={"recipients": [params.config["to"]]})

    @LOAD_DEFINITION.defn
    async def load_definition(self, params: LoadDefinitionInput) -> LoadedDefinition:
        await self._enter(Activity.LOAD_DEFINITION, params)
        return self.definitions[params.definition_id]

    @RECORD_EXECUTION.defn
    async def record_execution(self, params: ExecutionRecord) -> None:
        await self._enter(Activity.RECORD_EXECUTION, params)

    @EMIT_STEP_EVENTS.defn
    async def emit_step_events(self, params: StepEvents) -> None:
        await self._enter(Activity.EMIT_STEP_EVENTS, params)

    @OPEN_CALLBACK.defn
    async def open_callback(self, params: OpenCallbackInput) -> CallbackOpened:
        # Like the API does once a caller's request is verified: signal the run
        # (before the run even has this activity's answer).
        await self._enter(Activity.OPEN_CALLBACK, params)
        callback_id = f"cbk_{params.step_id}"
        if self.callback_bodies:
            handle = activity.client().get_workflow_handle(params.workflow_id)
            deliveries = [("cbk_not_this_one", "ignored"), *((callback_id, body)
                          for body in self.callback_bodies)]  # fmt: skip
            for number, (target, body) in enumerate(deliveries):
                received = CallbackReceived(callback_id=target, body=body,
                                            message_id=f"msg_{number}",
                                            received_at=datetime.now(UTC))  # fmt: skip
                await handle.signal(CALLBACK_SIGNAL, received)
        return CallbackOpened(callback_id=callback_id,
                              callback_url=f"/api/v1/callbacks/tok_{params.step_id}")  # fmt: skip

    @CHECK_CONSENT.defn
    async def check_consent(self, params: ConsentCheck) -> ConsentHeld:
        await self._enter(Activity.CHECK_CONSENT, params)
        if len(self.called(Activity.CHECK_CONSENT)) == self.revoke_on_check:
            handle = activity.client().get_workflow_handle(activity.info().workflow_id or "")
            revoked = ConsentRevoked(consent_id="cns_replay", categories=params.categories)
            await handle.signal(CONSENT_REVOKED_SIGNAL, revoked)
        return ConsentHeld(missing=self.consent_missing.pop(0) if self.consent_missing else [])

    # --- natural-language commands: the intent's work answers with what it was given ---

    @RUN_COMMAND.defn
    async def run_command(self, params: CommandInput) -> CommandOutcome:
        await self._enter(Activity.RUN_COMMAND, params)
        return CommandOutcome(
            status="completed",
            result={"intent": params.intent, "entities": params.entities, "count": 1},
            message=f"did {params.intent}",
        )

    @RECORD_COMMAND.defn
    async def record_command(self, params: CommandRecord) -> None:
        await self._enter(Activity.RECORD_COMMAND, params)

    @START_SCHEDULED_RUN.defn
    async def start_scheduled_run(self, params: ScheduledStart) -> ScheduledStarted:
        await self._enter(Activity.START_SCHEDULED_RUN, params)
        execution_id = f"exe_for_{params.idempotency_key}"
        return ScheduledStarted(
            execution_id=execution_id, workflow_id=f"run-{execution_id}", status="running"
        )

    # --- A2A: an agent that answers the last turn, a pipeline that echoes ---

    @ANSWER_A2A_AGENT.defn
    async def answer_a2a_agent(self, params: A2AAgentCall) -> A2AAnswer:
        await self._enter(Activity.ANSWER_A2A_AGENT, params)
        return A2AAnswer(text=f"answer to: {params.turns[-1].text}", model="fake-model")

    @RUN_A2A_PIPELINE.defn
    async def run_a2a_pipeline(self, params: A2APipelineCall) -> A2AAnswer:
        await self._enter(Activity.RUN_A2A_PIPELINE, params)
        execution_id = f"exe_{params.task_id}_{params.turn}"
        outputs = {"say": params.text, **params.data}
        return A2AAnswer(text=params.text, data={"execution_id": execution_id, "outputs": outputs},
                         execution_id=execution_id)  # fmt: skip

    @RECORD_A2A_TASK.defn
    async def record_a2a_task(self, params: A2ATaskRecord) -> None:
        # Like a client that answers as soon as it sees the task wait for input.
        await self._enter(Activity.RECORD_A2A_TASK, params)
        if params.view.state == "input-required" and self.a2a_follow_ups:
            handle = activity.client().get_workflow_handle(activity.info().workflow_id or "")
            await handle.execute_update("message", self.a2a_follow_ups.pop(0))

    @CALL_REMOTE_AGENT.defn
    async def call_remote_agent(self, params: RemoteAgentCall) -> RemoteResult:
        await self._enter(Activity.CALL_REMOTE_AGENT, params)
        return RemoteResult(state="completed", text=f"remote answer to: {params.text}",
                            task_id="remote-task", protocol="1.0")  # fmt: skip

    @RECORD_A2A_SESSION.defn
    async def record_a2a_session(self, params: A2ASessionRecord) -> None:
        await self._enter(Activity.RECORD_A2A_SESSION, params)

    # --- events: a dispatcher round that finds nothing more; a receiver down at
    # first (a failed attempt, then delivered when ``delivery_fails`` runs out) ---

    @DISPATCH_EVENTS.defn
    async def dispatch_events(self, params: DispatchBatch) -> DispatchResult:
        await self._enter(Activity.DISPATCH_EVENTS, params)
        rounds = len(self.called(Activity.DISPATCH_EVENTS))
        return DispatchResult(sequenced=rounds, dispatched=rounds, deliveries=rounds, more=False)

    @DELIVER_WEBHOOK.defn
    async def deliver_webhook(self, params: AttemptInput) -> AttemptResult:
        await self._enter(Activity.DELIVER_WEBHOOK, params)
        if params.attempt <= self.delivery_fails:
            if params.next_delay_seconds is None:
                return AttemptResult(outcome="failed", status_code=503)
            return AttemptResult(
                outcome="retry", status_code=503, retry_in_seconds=params.next_delay_seconds
            )
        return AttemptResult(outcome="delivered", status_code=200)

    @WEBHOOK_EXHAUSTED.defn
    async def webhook_exhausted(self, params: ExhaustedInput) -> None:
        await self._enter(Activity.WEBHOOK_EXHAUSTED, params)

    @PING_QUEUE.defn
    async def ping_queue(self, params: PingInput) -> PingResult:
        await self._enter(Activity.PING_QUEUE, params)
        return PingResult(
            queue=activity.info().task_queue, worker=FAKE_WORKER, python=platform.python_version()
        )

    @EXTRACT_TEXT.defn
    async def extract_text(self, params: ExtractInput) -> ExtractResult:
        await self._enter(Activity.EXTRACT_TEXT, params)
        work = f"work/{params.ref.tenant_id}/{params.ref.file_id}"
        numbers = range(params.first_page, min(params.last_page, self.pages) + 1)
        chunked = None
        if params.chunking is not None and params.last_page >= self.pages:
            chunked = ChunkResult(chunks_key=f"{work}/chunks.json", chunks=self.chunks, tokens=0)
        return ExtractResult(
            pages_key=f"{work}/pages/{params.first_page:05d}.json",
            pages=len(numbers),
            pages_total=self.pages,
            chars=100 * len(numbers),
            ocr_pages=sum(1 for number in numbers if number in self.scanned),
            excerpt=f"text from page {params.first_page}",
            chunked=chunked,
        )

    @CHUNK_TEXT.defn
    async def chunk_text(self, params: ChunkInput) -> ChunkResult:
        await self._enter(Activity.CHUNK_TEXT, params)
        work = f"work/{params.ref.tenant_id}/{params.ref.file_id}"
        return ChunkResult(chunks_key=f"{work}/chunks.json", chunks=self.chunks, tokens=0)

    @EMBED_CHUNKS.defn
    async def embed_chunks(self, params: EmbedInput) -> EmbedResult:
        await self._enter(Activity.EMBED_CHUNKS, params)
        work = f"work/{params.ref.tenant_id}/{params.ref.file_id}"
        return EmbedResult(
            vectors_key=f"{work}/vectors/{params.start:06d}.npy",
            count=params.end - params.start,
            tokens=params.end - params.start,
            model=params.embedding.model,
            dimensions=384,
        )

    @INDEX_CHUNKS.defn
    async def index_chunks(self, params: IndexInput) -> IndexResult:
        await self._enter(Activity.INDEX_CHUNKS, params)
        return IndexResult(chunks=self.chunks, vectors=self.chunks)

    @FINISH_DOCUMENT.defn
    async def finish_document(self, params: FinishInput) -> None:
        await self._enter(Activity.FINISH_DOCUMENT, params)

    @CHUNK_CELLS.defn
    async def chunk_cells(self, params: CellsInput) -> CellChunksResult:
        await self._enter(Activity.CHUNK_CELLS, params)
        work = f"work/{params.tenant_id}/cells-{params.batch_id}"
        return CellChunksResult(chunks_key=f"{work}/chunks.json", chunks=self.chunks)

    @ASSEMBLE_CELLS.defn
    async def assemble_cells(self, params: AssembleInput) -> AssembleResult:
        await self._enter(Activity.ASSEMBLE_CELLS, params)
        work = f"work/{params.ref.tenant_id}/{params.ref.file_id}"
        return AssembleResult(
            result_key=f"{work}/result.json", cells=self.cells, chunks=self.chunks
        )

    @PULL_MODEL.defn
    async def pull_model(self, params: PullModelInput) -> PullModelResult:
        # Like the real activity: tell the workflow how far the pull is before the
        # (held) rest of the download, then answer with the final line's status.
        handle = activity.client().get_workflow_handle(activity.info().workflow_id or "")
        halfway = ModelPullProgress(status="pulling layers", completed=PULL_TOTAL // 2,
                                    total=PULL_TOTAL)  # fmt: skip
        await handle.signal(ModelPullWorkflow.report_progress, halfway)
        await self._enter(Activity.PULL_MODEL, params)
        return PullModelResult(
            provider=params.provider,
            model=params.model,
            status="success",
            total=PULL_TOTAL,
            completed=PULL_TOTAL - 1,  # Ollama's last line may lag behind the total
        )

    @PURGE_REQUEST_HISTORY.defn
    async def purge_request_history(self, params: HistoryPurgeBatch) -> HistoryPurged:
        await self._enter(Activity.PURGE_REQUEST_HISTORY, params)
        deleted = min(params.batch_size, self.expired_history)
        self.expired_history -= deleted
        return HistoryPurged(deleted=deleted, cutoff=params.as_of - timedelta(days=7))


def new_prefix() -> str:
    """A task-queue prefix of its own, so no other test's worker takes these tasks."""
    return f"t-{uuid.uuid4().hex[:12]}-"


@asynccontextmanager
async def serve(client: Client, fakes: FakeActivities, prefix: str) -> AsyncIterator[str]:
    """The registered workflows on ``prefix`` + weft-workflows and ``fakes`` on the
    prefixed activity queues; yields the workflow task queue."""
    by_queue = fakes.by_queue()
    workers = [
        Worker(
            client,
            task_queue=queue_name(TaskQueue.WORKFLOWS, prefix),
            workflows=WORKFLOWS,
            # The workflows' local activities, as workers/main.py registers them.
            activities=by_queue.pop(TaskQueue.WORKFLOWS, []),
            workflow_runner=WORKFLOW_RUNNER,
        )
    ]
    for queue, activities in by_queue.items():
        workers.append(Worker(client, task_queue=queue_name(queue, prefix), activities=activities))
    async with AsyncExitStack() as stack:
        for worker in workers:
            await stack.enter_async_context(worker)
        try:
            yield queue_name(TaskQueue.WORKFLOWS, prefix)
        finally:
            await _finish_open_runs(client, fakes)


async def _finish_open_runs(client: Client, fakes: FakeActivities) -> None:
    """Let the runs a failed test left half-way finish, while the fakes still serve them.

    The test server stops its clock, for every later test too, while any activity
    is scheduled or running; a run abandoned mid-activity (its workers gone, or
    terminated) would keep it stopped, and later retry backoffs would take real time.
    """
    if fakes.hold is not None:
        fakes.hold.release.set()
    for workflow_id in fakes.workflow_ids():
        with contextlib.suppress(WorkflowFailureError):
            await client.get_workflow_handle(workflow_id).result()
