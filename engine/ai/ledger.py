"""The API's ledger rows, written in batches off the request path.

A chat answered through the API costs one ledger row and one ``ai.response``
event. Written in the request, that is a transaction (on SQLite, the one writer
lock) per call; here the request only appends to a list, and one background
task writes everything that arrived in the last few milliseconds in a single
transaction.

Nothing is lost on the way:
- a write the database could not take (restarting, say, or SQLite busy) keeps
  the batch and tries again with back-off, in order;
- a write refused for its content writes the batch's rows one by one, so one
  bad row is logged and dropped instead of blocking every row after it;
- ``close`` (the API shutting down) writes what is pending before it returns;
- a reader in this process (usage reports, a hard budget) calls ``flush``
  first, so it sees every call this process has answered; while the database
  refuses writes, ``flush`` returns after the next failed try instead of
  waiting (the reader's own query meets the same database);
- past ``MAX_PENDING`` rows (the database is away for long), callers write
  their own row in the request again, so memory stays bounded.
A process killed outright loses at most the last ``MAX_WAIT_SECONDS`` of rows.
Calls made by activities carry a dedupe key and are written in the activity,
as before: a retried activity must find its first row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.db.connection import database_unavailable
from engine.db.tables import UsageRecord
from engine.events import outbox
from engine.events.catalog import EventType

log = logging.getLogger("weft.ai.ledger")

MAX_BATCH = 500
MAX_WAIT_SECONDS = 0.01
MAX_PENDING = 20_000
RETRY_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)

_writers: weakref.WeakSet[LedgerWriter] = weakref.WeakSet()


@dataclass(frozen=True)
class LedgerEntry:
    row: dict[str, Any]  # UsageRecord columns
    event: dict[str, Any] | None = None  # an ai.response event's data, if any


class LedgerWriter:
    """One per process: pending entries and the task that writes them."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self._pending: list[LedgerEntry] = []
        self._added = 0  # entries ever accepted
        self._written = 0  # of those, entries committed (or dropped as bad rows)
        self._failed_tries = 0  # writes the database could not take
        self._progress = asyncio.Condition()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        _writers.add(self)

    def add(self, entry: LedgerEntry) -> bool:
        """Queue ``entry``; False (write it yourself) when closed or too far behind."""
        if self._closed or len(self._pending) >= MAX_PENDING:
            return False
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="ledger-writer")
        self._pending.append(entry)
        self._added += 1
        self._wake.set()
        return True

    async def flush(self) -> None:
        """Return once every entry added before the call is committed, or once
        a write has failed since the call (the database is away)."""
        target, failed = self._added, self._failed_tries
        task = self._task
        if self._written >= target or task is None or task.done():
            return
        if task.get_loop() is not asyncio.get_running_loop():
            return  # another loop's writer (a finished test's, say): not ours to wait on
        async with self._progress:
            await self._progress.wait_for(
                lambda: self._written >= target or self._failed_tries > failed
            )

    async def close(self, timeout_seconds: float = 30.0) -> None:
        """Refuse new entries and write the pending ones (up to ``timeout_seconds``)."""
        self._closed = True
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.flush(), timeout_seconds)
        if self._pending:
            log.error("ledger: %d rows could not be written before shutdown", len(self._pending))
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        failures = 0
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
            await asyncio.sleep(MAX_WAIT_SECONDS)  # let a burst gather
            batch = self._pending[:MAX_BATCH]
            try:
                done = await self._write_batch(batch)
            except Exception as exc:  # the database is away: kept, in order, for the next try
                delay = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
                failures += 1
                log.warning("ledger: writing %d rows failed (%s); again in %gs",
                            len(batch), type(exc).__name__, delay)  # fmt: skip
                async with self._progress:
                    self._failed_tries += 1
                    self._progress.notify_all()
                await asyncio.sleep(delay)
                continue
            failures = 0
            await self._advance(done)

    async def _advance(self, count: int) -> None:
        del self._pending[:count]
        async with self._progress:
            self._written += count
            self._progress.notify_all()

    async def _write_batch(self, batch: list[LedgerEntry]) -> int:
        """Write ``batch`` and return how many entries are done with. A batch
        refused for its content is written entry by entry: one the database
        refuses is dropped (logged by kind, tenant and model), the others are
        written. Raises only while the database is away; entries done before
        that are accounted for first."""
        try:
            await self._write(batch)
            return len(batch)
        except Exception as exc:
            if database_unavailable(exc):
                raise
        for done, entry in enumerate(batch):
            try:
                await self._write([entry])
            except Exception as exc:
                if database_unavailable(exc):
                    await self._advance(done)
                    raise
                log.error("ledger: dropped a %s row of tenant %s for model %s (%s)",
                          entry.row.get("kind"), entry.row.get("tenant_id"),
                          entry.row.get("model"), type(exc).__name__)  # fmt: skip
        return len(batch)

    async def _write(self, batch: list[LedgerEntry]) -> None:
        """One transaction, two multi-row INSERTs (no unit of work per row)."""
        events = [
            {"tenant_id": entry.row["tenant_id"], "type": EventType.AI_RESPONSE,
             "data": entry.event, "subject": entry.row.get("workflow_id")}
            for entry in batch
            if entry.event is not None
        ]  # fmt: skip
        async with self.sessions() as session:
            await session.execute(insert(UsageRecord), [entry.row for entry in batch])
            await outbox.emit_many(session, events)
            await session.commit()


async def flush_all() -> None:
    """Flush every ledger writer of this process (for readers that share it)."""
    for writer in list(_writers):
        await writer.flush()
