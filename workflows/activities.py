"""The activities that workflows call: each one's name (``Activity``) and, beside it,
its contract (``ActivityDef``: the name with its argument and result types).

Both sides use the contracts. A workflow schedules ``await EXTRACT_TEXT.execute(arg,
**options)``; the implementation in ``workers/activities`` registers with
``@EXTRACT_TEXT.defn``. mypy checks the argument and the result on both sides, and
nobody spells a name. Workflows cannot take typed references to the
implementations themselves: those modules import the database and HTTP clients,
which must never load into workflow code.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar, Unpack

from pydantic import BaseModel, Field
from temporalio import activity, workflow

from workflows.a2a_exchange_payloads import A2ASessionRecord
from workflows.a2a_payloads import (
    A2AAgentCall,
    A2AAnswer,
    A2APipelineCall,
    A2ATaskRecord,
    RemoteAgentCall,
    RemoteResult,
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
from workflows.pipeline_payloads import (
    CallbackOpened,
    ConsentCheck,
    ConsentHeld,
    ExecutionRecord,
    LoadDefinitionInput,
    LoadedDefinition,
    OpenCallbackInput,
    StepCall,
    StepEvents,
    StepOutcome,
)

ArgT = TypeVar("ArgT")
ResultT = TypeVar("ResultT")
SelfT = TypeVar("SelfT")


class Activity(StrEnum):
    """Activity names. They are part of every recorded history: renaming one breaks
    the replay of runs that are still open."""

    PING_QUEUE = "ping_queue"
    EXTRACT_TEXT = "extract_text"
    CHUNK_TEXT = "chunk_text"
    EMBED_CHUNKS = "embed_chunks"
    INDEX_CHUNKS = "index_chunks"
    FINISH_DOCUMENT = "finish_document"
    PULL_MODEL = "pull_model"
    CHUNK_CELLS = "chunk_cells"
    ASSEMBLE_CELLS = "assemble_cells"
    CALL_MODEL = "call_model"
    CALL_API = "call_api"
    SEND_EMAIL = "send_email"
    LOAD_DEFINITION = "load_definition"
    RECORD_EXECUTION = "record_execution"
    START_SCHEDULED_RUN = "start_scheduled_run"
    DISPATCH_EVENTS = "dispatch_events"
    DELIVER_WEBHOOK = "deliver_webhook"
    WEBHOOK_EXHAUSTED = "webhook_exhausted"
    EMIT_STEP_EVENTS = "emit_step_events"
    OPEN_CALLBACK = "open_callback"
    RUN_COMMAND = "run_command"
    RECORD_COMMAND = "record_command"
    ANSWER_A2A_AGENT = "answer_a2a_agent"
    RUN_A2A_PIPELINE = "run_a2a_pipeline"
    RECORD_A2A_TASK = "record_a2a_task"
    CALL_REMOTE_AGENT = "call_remote_agent"
    RECORD_A2A_SESSION = "record_a2a_session"
    CHECK_CONSENT = "check_consent"
    PURGE_REQUEST_HISTORY = "purge_request_history"


@dataclass(frozen=True)
class ActivityDef(Generic[ArgT, ResultT]):
    """An activity's contract: the name it is registered under, its argument and result types.

    Every activity takes exactly one payload argument, so the contract has one
    argument type.
    """

    name: Activity
    arg_type: type[ArgT]
    result_type: type[ResultT]

    async def execute(self, arg: ArgT, **options: Unpack[workflow.ActivityConfig]) -> ResultT:
        """Schedule this activity from a workflow and wait for its result.

        This issues exactly the command that ``workflow.execute_activity(name, arg,
        result_type=..., **options)`` does, with only the options given here, so
        histories recorded before these declarations existed still replay.

        Args:
            arg: The activity's one payload.
            **options: Timeouts, retry policy, task queue and the rest of
                ``workflow.execute_activity``'s keyword options.

        Returns:
            The activity's result, decoded as ``result_type``.
        """
        result: ResultT = await workflow.execute_activity(
            self.name, arg, result_type=self.result_type, **options
        )
        return result

    async def execute_local(
        self, arg: ArgT, **options: Unpack[workflow.LocalActivityConfig]
    ) -> ResultT:
        """Run this activity as a local activity of the workflow's own worker.

        For small, quick work (a database insert) that needs no task queue round
        trip; its result is recorded as a marker in the run's history. The
        implementation must be registered on the workflows queue's worker.

        Args:
            arg: The activity's one payload.
            **options: ``workflow.execute_local_activity``'s keyword options.

        Returns:
            The activity's result, decoded as ``result_type``.
        """
        result: ResultT = await workflow.execute_local_activity(
            self.name, arg, result_type=self.result_type, **options
        )
        return result

    def defn(
        self, fn: Callable[[SelfT, ArgT], Coroutine[Any, Any, ResultT]]
    ) -> Callable[[SelfT, ArgT], Coroutine[Any, Any, ResultT]]:
        """Register an activity method under this name (``activity.defn(name=...)``).

        mypy rejects a method whose parameter or result does not fit the contract.

        Args:
            fn: An ``async`` method of an activity class taking the one payload.

        Returns:
            ``fn`` itself, marked as this activity.
        """
        return activity.defn(name=self.name)(fn)


class PingInput(BaseModel):
    queue: str


class PingResult(BaseModel):
    queue: str
    worker: str
    python: str


class PullModelInput(BaseModel):
    """Pull ``model`` onto the named provider (resolved by the worker: no URL or key here)."""

    provider: str
    model: str


class PullModelResult(BaseModel):
    provider: str
    model: str
    status: str
    total: int | None = None
    completed: int | None = None


class ScheduledStart(BaseModel):
    """Start one execution of a stored definition for a schedule's tick.

    ``idempotency_key`` is the scheduled run's workflow id, so a retried
    activity finds the execution its first attempt started instead of starting another.
    """

    schedule_id: str
    tenant_id: str
    definition_id: str
    started_by: str
    input_data: dict[str, Any] = Field(default_factory=dict)
    priority: str = "normal"
    idempotency_key: str


class ScheduledStarted(BaseModel):
    execution_id: str
    workflow_id: str  # the execution's PipelineWorkflow run
    status: str


class HistoryPurgeBatch(BaseModel):
    """Delete up to ``batch_size`` request-history rows older than the worker's
    retention, counted back from ``as_of`` (the run's start, so every batch of a
    run uses one cutoff)."""

    as_of: datetime
    batch_size: int = Field(gt=0)


class HistoryPurged(BaseModel):
    deleted: int
    cutoff: datetime


# One contract per name (tests/test_activity_contracts.py holds the implementations to them).
PING_QUEUE = ActivityDef(Activity.PING_QUEUE, PingInput, PingResult)
EXTRACT_TEXT = ActivityDef(Activity.EXTRACT_TEXT, ExtractInput, ExtractResult)
CHUNK_TEXT = ActivityDef(Activity.CHUNK_TEXT, ChunkInput, ChunkResult)
EMBED_CHUNKS = ActivityDef(Activity.EMBED_CHUNKS, EmbedInput, EmbedResult)
INDEX_CHUNKS = ActivityDef(Activity.INDEX_CHUNKS, IndexInput, IndexResult)
FINISH_DOCUMENT = ActivityDef(Activity.FINISH_DOCUMENT, FinishInput, type(None))
PULL_MODEL = ActivityDef(Activity.PULL_MODEL, PullModelInput, PullModelResult)
CHUNK_CELLS = ActivityDef(Activity.CHUNK_CELLS, CellsInput, CellChunksResult)
ASSEMBLE_CELLS = ActivityDef(Activity.ASSEMBLE_CELLS, AssembleInput, AssembleResult)
CALL_MODEL = ActivityDef(Activity.CALL_MODEL, StepCall, StepOutcome)
CALL_API = ActivityDef(Activity.CALL_API, StepCall, StepOutcome)
SEND_EMAIL = ActivityDef(Activity.SEND_EMAIL, StepCall, StepOutcome)
LOAD_DEFINITION = ActivityDef(Activity.LOAD_DEFINITION, LoadDefinitionInput, LoadedDefinition)
RECORD_EXECUTION = ActivityDef(Activity.RECORD_EXECUTION, ExecutionRecord, type(None))
START_SCHEDULED_RUN = ActivityDef(Activity.START_SCHEDULED_RUN, ScheduledStart, ScheduledStarted)
DISPATCH_EVENTS = ActivityDef(Activity.DISPATCH_EVENTS, DispatchBatch, DispatchResult)
DELIVER_WEBHOOK = ActivityDef(Activity.DELIVER_WEBHOOK, AttemptInput, AttemptResult)
WEBHOOK_EXHAUSTED = ActivityDef(Activity.WEBHOOK_EXHAUSTED, ExhaustedInput, type(None))
EMIT_STEP_EVENTS = ActivityDef(Activity.EMIT_STEP_EVENTS, StepEvents, type(None))
OPEN_CALLBACK = ActivityDef(Activity.OPEN_CALLBACK, OpenCallbackInput, CallbackOpened)
RUN_COMMAND = ActivityDef(Activity.RUN_COMMAND, CommandInput, CommandOutcome)
RECORD_COMMAND = ActivityDef(Activity.RECORD_COMMAND, CommandRecord, type(None))
ANSWER_A2A_AGENT = ActivityDef(Activity.ANSWER_A2A_AGENT, A2AAgentCall, A2AAnswer)
RUN_A2A_PIPELINE = ActivityDef(Activity.RUN_A2A_PIPELINE, A2APipelineCall, A2AAnswer)
RECORD_A2A_TASK = ActivityDef(Activity.RECORD_A2A_TASK, A2ATaskRecord, type(None))
CALL_REMOTE_AGENT = ActivityDef(Activity.CALL_REMOTE_AGENT, RemoteAgentCall, RemoteResult)
RECORD_A2A_SESSION = ActivityDef(Activity.RECORD_A2A_SESSION, A2ASessionRecord, type(None))
CHECK_CONSENT = ActivityDef(Activity.CHECK_CONSENT, ConsentCheck, ConsentHeld)
PURGE_REQUEST_HISTORY = ActivityDef(
    Activity.PURGE_REQUEST_HISTORY, HistoryPurgeBatch, HistoryPurged
)
