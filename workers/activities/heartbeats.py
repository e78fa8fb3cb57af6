"""Heartbeating while an activity waits on something slow.

A live worker keeps beating even while the activity waits on a receiver or the
database; a worker that died stops, and Temporal retries the activity
elsewhere after the heartbeat timeout instead of the whole start-to-close
timeout. Heartbeats also carry a cancel request to the activity within seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from temporalio import activity

HEARTBEAT_SECONDS = 2.0


@contextlib.asynccontextmanager
async def heartbeating(*details: Any, every: float = HEARTBEAT_SECONDS) -> AsyncIterator[None]:
    """Beat every ``every`` seconds (with ``details``, which a retried attempt can read)."""

    async def beat() -> None:
        while True:
            activity.heartbeat(*details)
            await asyncio.sleep(every)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
