"""Circuit breakers, one per model provider, in process.

Closed: calls go through; ``failure_threshold`` consecutive failures open it.
Open: calls are refused at once (``CIRCUIT_OPEN``, or the caller's fallback
model) until ``recovery_seconds`` have passed. Half-open: one probe call goes
through; its success closes the breaker, its failure opens it again.

Only the provider's own failures count (unreachable, timeouts, 5xx, 429,
nonsense); a model the provider lacks or a forbidden URL is the caller's error.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from engine.platform.errors import WeftError
from engine.platform.settings import Settings


class CircuitOpen(WeftError):
    code = "CIRCUIT_OPEN"
    retryable = True


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class CircuitBreaker:
    name: str
    failure_threshold: int
    recovery_seconds: float
    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    opened_at: float | None = None
    probe_started: float | None = None
    total_failures: int = 0
    total_successes: int = 0
    times_opened: int = 0
    last_failure: str | None = None
    last_failure_at: datetime | None = field(default=None)

    @property
    def state(self) -> BreakerState:
        if self.opened_at is None:
            return BreakerState.CLOSED
        if self.clock() - self.opened_at < self.recovery_seconds:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    def allow(self) -> bool:
        """Whether a call may go out now (reserves the half-open probe)."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN:
            return False
        now = self.clock()
        if self.probe_started is not None and now - self.probe_started < self.recovery_seconds:
            return False  # a probe is already out
        self.probe_started = now
        return True

    def check(self) -> None:
        if not self.allow():
            raise CircuitOpen(
                f"Provider {self.name} is failing; its circuit breaker is open",
                details={"provider": self.name, "retry_after": self.retry_after()},
            )

    def retry_after(self) -> float:
        if self.opened_at is None:
            return 0.0
        return round(max(0.0, self.recovery_seconds - (self.clock() - self.opened_at)), 3)

    def record_success(self) -> None:
        self.total_successes += 1
        self.failures = 0
        self.opened_at = None
        self.probe_started = None

    def record_failure(self, code: str) -> None:
        self.total_failures += 1
        self.failures += 1
        self.last_failure = code
        self.last_failure_at = datetime.now(UTC)
        probing = self.probe_started is not None
        if probing or (self.opened_at is None and self.failures >= self.failure_threshold):
            self.times_opened += 1
            self.opened_at = self.clock()
        self.probe_started = None

    def release(self) -> None:
        """A call ended without a verdict (the client left): free the probe slot."""
        self.probe_started = None

    def snapshot(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state.value,
            "failure_count": self.failures,
            "failure_threshold": self.failure_threshold,
            "recovery_timeout_seconds": self.recovery_seconds,
            "retry_after_seconds": self.retry_after() if self.state is BreakerState.OPEN else 0,
            "times_opened": self.times_opened,
            "total_failures": self.total_failures,
            "total_successes": self.total_successes,
            "last_failure": self.last_failure,
            "last_failure_at": self.last_failure_at.isoformat() if self.last_failure_at else None,
        }


class BreakerBoard:
    """The breakers of one process, created on first use."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = settings.model_breaker_failure_threshold
        self.recovery = settings.model_breaker_recovery_seconds
        self.clock = clock
        self._breakers: dict[str, CircuitBreaker] = {}

    def get(self, name: str) -> CircuitBreaker:
        breaker = self._breakers.get(name)
        if breaker is None:
            breaker = CircuitBreaker(name, self.threshold, self.recovery, self.clock)
            self._breakers[name] = breaker
        return breaker

    def state(self, name: str) -> BreakerState:
        return self._breakers[name].state if name in self._breakers else BreakerState.CLOSED

    def snapshot(self, names: list[str] | None = None) -> dict[str, dict[str, Any]]:
        for name in names or []:
            self.get(name)
        return {name: breaker.snapshot() for name, breaker in sorted(self._breakers.items())}
