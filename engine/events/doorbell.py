"""The doorbell: wakes the dispatcher workflow after a commit that added events.

``outbox.emit`` marks the session; when that session's transaction commits,
the doorbell installed on its session factory sends one ``wake`` signal (with
start, so the dispatcher runs from the first event on). Rings within a few
milliseconds share one signal, so a burst of commits costs one round trip. A
lost ring (a crash right after the commit) only delays the events until the
dispatcher's next look.
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


class Doorbell:
    def __init__(self, client: Client, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self._rung = False
        self._sender: asyncio.Task[None] | None = None

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
        while self._rung:
            await asyncio.sleep(COALESCE_SECONDS)
            self._rung = False
            try:
                await self.start()
            except Exception as exc:  # the dispatcher's own poll still finds the events
                log.warning("could not wake the event dispatcher: %s", exc)

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
        if self._sender is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender


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
