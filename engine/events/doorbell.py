"""The doorbell: makes sure the dispatcher workflow runs after a commit that
added events.

``outbox.emit`` marks the session; when that session's transaction commits,
the doorbell installed on its session factory sends a ``wake`` signal with
start, so the dispatcher runs from the first event on. The dispatcher's
activity watches the outbox itself (``engine.events.dispatch``), so a process
rings at most every ``event_wake_interval_seconds`` (30 s by default): rings
meanwhile share the next signal, and a busy process costs Temporal one signal
per interval, not one per commit. A lost ring (a crash right after the
commit) loses nothing: the events wait in the outbox for the next look.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session
from temporalio.client import Client

from engine.events.outbox import PENDING
from engine.platform.runs import RunOptions, start_run
from engine.platform.settings import Settings
from workflows.event_dispatch import EventDispatchWorkflow, dispatcher_id
from workflows.event_payloads import DispatchInput

log = logging.getLogger("weft.events")
DOORBELL = "weft_doorbell"
COALESCE_SECONDS = 0.02
RETRY_AFTER_FAILURE_SECONDS = 2.0


class Doorbell:
    def __init__(self, client: Client, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self._rung = False
        self._sender: asyncio.Task[None] | None = None
        self._quiet_until = 0.0  # loop time before which no new signal is sent

    def ring(self) -> None:
        """Ask for a wake signal soon (safe to call from any code on the loop).

        One signal is in flight at a time; rings meanwhile make one more.
        """
        self._rung = True
        if self._sender is not None and not self._sender.done():
            return
        try:
            self._sender = asyncio.get_running_loop().create_task(self._send())
        except RuntimeError:  # no loop (a synchronous script): the poll picks it up
            return

    async def _send(self) -> None:
        loop = asyncio.get_running_loop()
        while self._rung:
            await asyncio.sleep(max(COALESCE_SECONDS, self._quiet_until - loop.time()))
            self._rung = False
            self._quiet_until = loop.time() + self.settings.event_wake_interval_seconds
            try:
                woke = await self._wake()
            except asyncio.CancelledError:
                self._rung = True  # close() sends it
                raise
            if not woke:
                # Temporal is away: rings meanwhile wait here instead of each
                # trying a connection (the dispatcher's poll is the safety net).
                await asyncio.sleep(RETRY_AFTER_FAILURE_SECONDS)

    async def _wake(self) -> bool:
        try:
            await self.start()
        except Exception as exc:  # the dispatcher's own poll still finds the events
            log.warning("could not wake the event dispatcher: %s", exc)
            return False
        return True

    async def start(self) -> None:
        """Start the dispatcher if it is not running, and wake it."""
        await start_run(
            self.client,
            self.settings,
            EventDispatchWorkflow.run,
            DispatchInput(poll_seconds=self.settings.event_poll_seconds),
            RunOptions(
                workflow_id=dispatcher_id(self.settings.task_queue_prefix),
                kind="events",
                tenant_id="system",
                started_by="system",
                summary="Event dispatcher: outbox to webhooks and streams",
                join_existing=True,
                start_signal="wake",
            ),
        )

    async def close(self) -> None:
        """Send a pending ring now, without waiting out the interval."""
        sender, self._sender = self._sender, None
        if sender is None or sender.done():
            return
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
        if self._rung:
            self._rung = False
            await self._wake()


def install(sessions: async_sessionmaker[AsyncSession], doorbell: Doorbell) -> None:
    """Ring ``doorbell`` whenever a session from ``sessions`` commits new events."""
    sessions.configure(info={DOORBELL: doorbell})


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop(PENDING, False):
        bell: Any = session.info.get(DOORBELL)
        if bell is not None:
            bell.ring()


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(PENDING, None)
