"""The worker entry point: every task queue's worker is composed here.

Shared clients are built once, activity classes receive them in their
constructors, and each requested queue gets one Temporal ``Worker`` with the
workflows or activities that belong to it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from engine.ai.providers import local
from engine.ai.runtime import ModelRuntime
from engine.audit import retention
from engine.db.connection import create_engine, create_sessionmaker
from engine.events import doorbell
from engine.events.doorbell import Doorbell
from engine.platform import telemetry, temporal
from engine.platform.egress import new_http_client
from engine.platform.queues import TaskQueue, queue_name
from engine.platform.settings import Settings
from engine.storage import BlobStore, blob_store
from engine.vectors import VectorIndex, vector_index
from workers.activities.a2a import A2AActivities
from workers.activities.cells import CellActivities
from workers.activities.documents import DocumentActivities
from workers.activities.errors import WaitOutDatabaseOutages
from workers.activities.events import EventActivities
from workers.activities.heartbeats import HEARTBEAT_SECONDS
from workers.activities.history import HistoryActivities
from workers.activities.mcp import McpActivities
from workers.activities.models import ModelActivities
from workers.activities.pipelines import PipelineActivities
from workers.activities.schedules import ScheduleActivities
from workers.activities.system import SystemActivities
from workflows.a2a_exchange import A2AExchangeWorkflow
from workflows.a2a_task import A2ATaskWorkflow
from workflows.command import CommandWorkflow
from workflows.document_processing import DocumentProcessingWorkflow
from workflows.event_dispatch import EventDispatchWorkflow
from workflows.history_purge import HistoryPurgeWorkflow
from workflows.model_pull import ModelPullWorkflow
from workflows.pipeline import PipelineWorkflow
from workflows.scheduled_run import ScheduledRunWorkflow
from workflows.semantic_cells import SemanticCellsWorkflow
from workflows.system_check import SystemCheckWorkflow
from workflows.webhook_delivery import WebhookDeliveryWorkflow

log = logging.getLogger("weft.worker")

WORKFLOWS: list[type] = [
    SystemCheckWorkflow,
    DocumentProcessingWorkflow,
    SemanticCellsWorkflow,
    ModelPullWorkflow,
    PipelineWorkflow,
    ScheduledRunWorkflow,
    EventDispatchWorkflow,
    WebhookDeliveryWorkflow,
    CommandWorkflow,
    A2ATaskWorkflow,
    A2AExchangeWorkflow,
    HistoryPurgeWorkflow,
]


# Workflow code stays sandboxed; the pure modules its payloads and queue names come
# from are passed through instead of being re-imported for every run (cheaper
# workflow tasks; they hold no per-run state). Named one by one, not the whole
# ``engine`` package, which would pass the database layer through unnoticed.
# Imports inside ``workflow.unsafe.imports_passed_through()`` pass through whatever
# this says, so tests/test_activity_contracts.py checks that these modules, and every
# workflow module, load no I/O library.
WORKFLOW_PASSTHROUGH_MODULES = (
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "engine.platform.queues",
    "engine.documents.chunking",
    "engine.platform.errors",
    "engine.pipelines.conditions",
    "engine.pipelines.definition",
    "engine.pipelines.templating",
)
WORKFLOW_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules(*WORKFLOW_PASSTHROUGH_MODULES)
)

# CPU-bound work runs in threads (to_thread) and torch/onnxruntime use every core
# themselves: more than this at once only makes them fight over 2 cores. More
# embed activities at once would let small documents share a model pass
# (engine.ai.providers.embed_batcher), but measured with 8 and 32 they were no
# faster on 2 cores and took the worker past 1.1 GB (bench/documents.py, README).
CONCURRENCY = {TaskQueue.CPU: 2, TaskQueue.ML: 1}


def worker_identity() -> str:
    return f"weft@{socket.gethostname()}:{os.getpid()}"


@dataclass
class WorkerResources:
    """Long-lived clients shared by every activity of one worker process."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    store: BlobStore
    index: VectorIndex
    http: httpx.AsyncClient
    # The model layer for pipeline steps: registry, breakers, stats, ledger.
    models: ModelRuntime
    # Event fan-out to the API replicas' streams, when Redis is configured.
    redis: Redis | None = None

    @classmethod
    def open(cls, settings: Settings) -> WorkerResources:
        engine = create_engine(settings)
        sessions = create_sessionmaker(engine)
        # No retries and no redirects here: Temporal retries activities. No
        # proxy variables either: the egress guard must see the real destination.
        http = new_http_client(settings)
        return cls(
            settings=settings,
            engine=engine,
            sessions=sessions,
            store=blob_store(settings),
            index=vector_index(settings),
            http=http,
            models=ModelRuntime.open(settings, sessions, http=http),
            redis=(
                Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=2)
                if settings.redis_url
                else None
            ),
        )

    async def close(self) -> None:
        await self.models.close()  # rows its model calls queued reach the ledger
        if self.redis is not None:
            await self.redis.aclose()
        await self.http.aclose()
        await self.engine.dispose()


def activities_by_queue(
    identity: str, resources: WorkerResources | None
) -> dict[TaskQueue, list[Callable[..., Any]]]:
    """Which activity implementations each activity queue serves."""
    system = SystemActivities(identity)
    queues: dict[TaskQueue, list[Callable[..., Any]]] = {
        TaskQueue.IO: [system.ping_queue],
        TaskQueue.CPU: [system.ping_queue],
        TaskQueue.ML: [system.ping_queue],
    }
    if resources is not None:
        docs = DocumentActivities(
            resources.settings, resources.sessions, resources.store, resources.index, resources.http
        )
        cells = CellActivities(resources.store)
        queues[TaskQueue.CPU] += [docs.extract_text, docs.chunk_text]
        queues[TaskQueue.CPU] += [cells.chunk_cells, cells.assemble_cells]
        queues[TaskQueue.ML] += [docs.embed_chunks]
        queues[TaskQueue.IO] += [docs.index_chunks, docs.finish_document]
        models = ModelActivities(resources.settings, resources.sessions, resources.http)
        queues[TaskQueue.IO] += [models.pull_model]
        steps = PipelineActivities(
            resources.settings, resources.sessions, resources.http, resources.models
        )
        queues[TaskQueue.IO] += [
            steps.call_model,
            steps.call_api,
            steps.send_email,
            steps.load_definition,
            steps.record_execution,
            steps.open_callback,
            steps.check_consent,
        ]
        # Local activities of the workflows this worker runs (a pipeline's step events).
        queues[TaskQueue.WORKFLOWS] = [steps.emit_step_events]
        queues[TaskQueue.IO].append(
            ScheduleActivities(resources.settings, resources.sessions).start_scheduled_run
        )
        queues[TaskQueue.IO].append(
            HistoryActivities(resources.settings, resources.sessions).purge_request_history
        )
        events = EventActivities(
            resources.settings, resources.sessions, resources.http, resources.redis
        )
        queues[TaskQueue.IO] += [
            events.dispatch_events,
            events.deliver_webhook,
            events.webhook_exhausted,
        ]
        mcp = McpActivities(
            resources.settings,
            resources.sessions,
            resources.index,
            resources.http,
            resources.models,
        )
        queues[TaskQueue.IO] += [mcp.run_command, mcp.record_command]
        a2a = A2AActivities(
            resources.settings, resources.sessions, resources.http, resources.models
        )
        queues[TaskQueue.IO] += [
            a2a.answer_a2a_agent,
            a2a.run_a2a_pipeline,
            a2a.record_a2a_task,
            a2a.call_remote_agent,
            a2a.record_a2a_session,
        ]
    return queues


def build_workers(
    client: Client,
    queues: Sequence[TaskQueue],
    resources: WorkerResources | None = None,
    *,
    prefix: str = "",
) -> list[Worker]:
    """One Temporal worker per queue (``resources`` None: system probes only)."""
    identity = worker_identity()
    activities = activities_by_queue(identity, resources)
    if resources is not None:  # events this worker's activities commit wake the dispatcher
        doorbell.install(resources.sessions, Doorbell(client, resources.settings))
    # A database restart is waited out inside an attempt, not paid for with one.
    interceptors = [WaitOutDatabaseOutages(resources.engine)] if resources is not None else []
    workers = []
    for queue in queues:
        workers.append(
            Worker(
                client,
                task_queue=queue_name(queue, prefix),
                identity=identity,
                workflows=WORKFLOWS if queue is TaskQueue.WORKFLOWS else [],
                activities=activities.get(queue, []),
                max_concurrent_activities=CONCURRENCY.get(queue, 20),
                workflow_runner=WORKFLOW_RUNNER,
                interceptors=interceptors,
                graceful_shutdown_timeout=timedelta(seconds=5),
                # Beats reach the server every few seconds, not every 0.8 of the
                # heartbeat timeout: a busy machine keeps slack before a live
                # attempt is taken for dead and run (a webhook sent) again.
                max_heartbeat_throttle_interval=timedelta(seconds=HEARTBEAT_SECONDS * 1.5),
            )
        )
    return workers


async def _ensure_schedules(client: Client, settings: Settings) -> None:
    """The deployment's own schedules (request-history retention), created or updated."""
    try:
        await retention.ensure_purge_schedule(client, settings)
    except RPCError as exc:  # reported, not fatal: the workers still serve their queues
        log.warning("request-history purge schedule not created: %s", exc)


async def run_workers(settings: Settings, queues: Sequence[TaskQueue], stop: asyncio.Event) -> None:
    """Serve ``queues`` until ``stop`` is set, then shut down cleanly."""
    # With WEFT_WORKER_METRICS_ADDRESS, a runtime serving the SDK's metrics (made
    # before this process's first connection).
    client = await temporal.connect(settings, runtime=telemetry.worker_runtime(settings))
    resources = WorkerResources.open(settings)
    if TaskQueue.ML in queues or TaskQueue.CPU in queues:  # they embed or count tokens
        local.configure_batching(settings.embedding_batch_size, settings.embedding_batch_wait_ms)
        asyncio.get_running_loop().run_in_executor(None, local.warm_up)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(resources.close)
        for worker in build_workers(client, queues, resources, prefix=settings.task_queue_prefix):
            await stack.enter_async_context(worker)
        log.info("worker serving %s", ", ".join(queue.value for queue in queues))
        if TaskQueue.WORKFLOWS in queues:  # drain what was committed while nothing ran
            await Doorbell(client, settings).start()
            await _ensure_schedules(client, settings)
        await stop.wait()
        log.info("worker stopping")
