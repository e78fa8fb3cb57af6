"""Engine errors as Temporal sees them, one mapping for every activity module,
and the interceptor that lets activities wait out a database outage.

An engine error that no retry can heal becomes a non-retryable
``ApplicationError`` with the engine's code; one that may heal is retried
under the engine's code too (not the class name Temporal would give it),
waiting as long as a provider's ``Retry-After`` asks, up to the longest retry
interval of the engine's policies.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ActivityOutboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from engine.db.connection import database_unavailable
from engine.platform.errors import WeftError

log = logging.getLogger("weft.worker")

T = TypeVar("T")
MAX_RETRY_AFTER_SECONDS = 60.0  # the pipeline retry policy's maximum interval


def permanent(exc: WeftError) -> ApplicationError:
    return ApplicationError(exc.message, exc.details, type=exc.code, non_retryable=True)


def retryable(exc: WeftError) -> ApplicationError:
    retry_after = getattr(exc, "retry_after", None)
    delay = (
        timedelta(seconds=min(float(retry_after), MAX_RETRY_AFTER_SECONDS))
        if isinstance(retry_after, int | float) and retry_after > 0
        else None
    )
    return ApplicationError(exc.message, exc.details, type=exc.code, next_retry_delay=delay)


def as_application_error(exc: WeftError) -> ApplicationError:
    return retryable(exc) if getattr(exc, "retryable", False) else permanent(exc)


async def engine_errors(work: Awaitable[T]) -> T:
    """Await ``work``, raising its engine error as Temporal should see it."""
    try:
        return await work
    except WeftError as exc:
        raise as_application_error(exc) from None


# --- database outages -----------------------------------------------------------

# How long one attempt waits for the database before it fails (and Temporal's
# retry policy takes over), unless the attempt's own timeout ends it sooner.
DATABASE_WAIT = timedelta(minutes=5)
DATABASE_POLL_SECONDS = (0.5, 5.0)  # first and longest pause between looks
_TIMEOUT_MARGIN = timedelta(seconds=1)


def database_outage(exc: BaseException) -> BaseException | None:
    """The database-unavailable error behind ``exc`` (itself, or what it was raised
    from or while handling), or None."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        if database_unavailable(seen):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def database_down(cause: BaseException) -> ApplicationError:
    """A retryable failure under the engine's code, not the driver's class name."""
    return ApplicationError(
        "The database is unavailable", {"cause": str(cause)[:500]}, type="SERVICE_UNAVAILABLE"
    )


class WaitOutDatabaseOutages(Interceptor):
    """Activities wait for a database that is down, then run again, within one attempt.

    A pipeline step gets three attempts a second or two apart: spent on a
    database restart, they would fail the user's run although the step itself
    never failed. So an activity that fails because the database cannot be
    reached looks at the database (``SELECT 1``, backing off, heartbeating the
    details it last reported so a heartbeat timeout does not end it) and runs
    again once it answers, which every activity allows because each is
    idempotent. Past ``DATABASE_WAIT`` or its own timeout, and always for local
    activities, the attempt fails with a retryable ``SERVICE_UNAVAILABLE``.

    Args:
        engine: The worker's database engine.
        wait: Longest wait of one attempt.
    """

    def __init__(self, engine: AsyncEngine, *, wait: timedelta = DATABASE_WAIT) -> None:
        self._engine = engine
        self._wait = wait

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _WaitForDatabase(next, self._engine, self._wait)


class _KeepHeartbeat(ActivityOutboundInterceptor):
    """Remembers the details the activity last heartbeated, to repeat them."""

    def __init__(self, next: ActivityOutboundInterceptor) -> None:
        super().__init__(next)
        self.details: tuple[Any, ...] = tuple(activity.info().heartbeat_details)

    def heartbeat(self, *details: Any) -> None:
        self.details = details
        super().heartbeat(*details)


class _WaitForDatabase(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, engine: AsyncEngine, wait: timedelta):
        super().__init__(next)
        self._engine = engine
        self._wait = wait
        self._outbound: _KeepHeartbeat | None = None
        self._pause = DATABASE_POLL_SECONDS[0]  # grows across the waits of one attempt

    def init(self, outbound: ActivityOutboundInterceptor) -> None:
        self._outbound = _KeepHeartbeat(outbound)
        super().init(self._outbound)

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        deadline = datetime.now(UTC) + self._wait
        if info.start_to_close_timeout is not None:
            attempt_ends = info.started_time + info.start_to_close_timeout - _TIMEOUT_MARGIN
            deadline = min(deadline, attempt_ends)
        while True:
            try:
                return await self.next.execute_activity(input)
            except Exception as exc:
                cause = database_outage(exc)
                if cause is None:
                    raise
                if info.is_local or not await self._until_database_answers(deadline, cause):
                    raise database_down(cause) from exc

    async def _until_database_answers(self, deadline: datetime, cause: BaseException) -> bool:
        """Look until the database answers (True) or ``deadline`` passes (False)."""
        log.warning("activity %s waits for the database: %s", activity.info().activity_type, cause)
        while True:
            if self._outbound is not None:
                self._outbound.heartbeat(*self._outbound.details)
            left = (deadline - datetime.now(UTC)).total_seconds()
            if left <= 0:
                return False
            await asyncio.sleep(min(self._pause, left))
            self._pause = min(self._pause * 2, DATABASE_POLL_SECONDS[1])
            try:
                async with self._engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
            except Exception as exc:
                if database_outage(exc) is None:
                    raise
                continue
            log.info("activity %s: the database answers again", activity.info().activity_type)
            return True
