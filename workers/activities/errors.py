"""Engine errors as Temporal sees them, one mapping for every activity module.

An engine error that no retry can heal becomes a non-retryable
``ApplicationError`` with the engine's code; one that may heal is retried
under the engine's code too (not the class name Temporal would give it),
waiting as long as a provider's ``Retry-After`` asks, up to the longest retry
interval of the engine's policies.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import timedelta
from typing import TypeVar

from temporalio.exceptions import ApplicationError

from engine.platform.errors import WeftError

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
