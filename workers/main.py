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
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from engine import temporal
from engine.queues import TaskQueue
from engine.settings import Settings
from workers.activities.system import SystemActivities
from workflows.system_check import SystemCheckWorkflow

log = logging.getLogger("weft.worker")

WORKFLOWS: list[type] = [SystemCheckWorkflow]


def worker_identity() -> str:
    return f"weft@{socket.gethostname()}:{os.getpid()}"


def activities_by_queue(identity: str) -> dict[TaskQueue, list[Callable[..., Any]]]:
    """Which activity implementations each activity queue serves."""
    system = SystemActivities(identity)
    return {
        TaskQueue.IO: [system.ping_queue],
        TaskQueue.CPU: [system.ping_queue],
        TaskQueue.ML: [system.ping_queue],
    }


def build_workers(client: Client, queues: Sequence[TaskQueue]) -> list[Worker]:
    identity = worker_identity()
    activities = activities_by_queue(identity)
    workers = []
    for queue in queues:
        workers.append(
            Worker(
                client,
                task_queue=queue.value,
                identity=identity,
                workflows=WORKFLOWS if queue is TaskQueue.WORKFLOWS else [],
                activities=activities.get(queue, []),
                graceful_shutdown_timeout=timedelta(seconds=5),
            )
        )
    return workers


async def run_workers(settings: Settings, queues: Sequence[TaskQueue], stop: asyncio.Event) -> None:
    """Serve ``queues`` until ``stop`` is set, then shut down cleanly."""
    client = await temporal.connect(settings)
    async with AsyncExitStack() as stack:
        for worker in build_workers(client, queues):
            await stack.enter_async_context(worker)
        log.info("worker serving %s", ", ".join(queue.value for queue in queues))
        await stop.wait()
        log.info("worker stopping")
