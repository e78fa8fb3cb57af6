"""``AsyncWeftClient``: the REST API from asyncio code."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import httpx

from engine.sdk import calls, wire
from engine.sdk.calls import Call, Definition, HasId
from engine.sdk.errors import WaitTimeout, unreachable
from engine.sdk.models import (
    Approval,
    Cancelled,
    Execution,
    ExecutionPage,
    ExecutionStarted,
    Schedule,
    SchedulePage,
    Workflow,
    WorkflowPage,
)

T = TypeVar("T")


class AsyncWeftClient:
    """The Weftworks API for asyncio code.

    Args:
        base_url: The server, e.g. ``http://localhost:8000`` (``/api`` may be left on).
        api_key: An API key (``znt_…``), sent as ``X-API-Key``.
        token: A JWT access token instead, sent as ``Authorization: Bearer``.
        timeout: Seconds for each HTTP request.
        transport: An httpx transport (e.g. ``httpx.ASGITransport(app)`` in tests).

    Use ``async with AsyncWeftClient(...) as client:`` or call ``aclose()``.
    """

    def __init__(
        self,
        base_url: str = wire.DEFAULT_BASE_URL,
        api_key: str | None = None,
        *,
        token: str | None = None,
        timeout: float = wire.DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = wire.api_root(base_url)
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=wire.headers(api_key, token),
            timeout=timeout,
            transport=transport,
        )
        self.workflows = AsyncWorkflows(self)
        self.executions = AsyncExecutions(self)
        self.schedules = AsyncSchedules(self)

    async def send(self, call: Call[T]) -> T:
        """Send one ``Call`` and read its answer (``ApiError`` on a refusal)."""
        try:
            response = await self._http.request(
                call.method, call.path, **wire.request_options(call)
            )
        except httpx.TransportError as exc:
            raise unreachable(exc, self.base_url) from exc
        return wire.result(call, response)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncWeftClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.aclose()


class AsyncWorkflows:
    def __init__(self, client: AsyncWeftClient) -> None:
        self._client = client

    async def create(self, definition: Definition) -> Workflow:
        """Store a definition: a ``Pipeline``, or a dict in auterity's shape
        (``name``, ``steps``) or z2's (``name``, ``definition.nodes/edges``)."""
        return await self._client.send(calls.create_workflow(definition))

    async def update(self, workflow: HasId, definition: Definition) -> Workflow:
        """Replace a stored definition (its version goes up; running executions keep theirs)."""
        return await self._client.send(calls.update_workflow(workflow, definition))

    async def get(self, workflow: HasId) -> Workflow:
        return await self._client.send(calls.get_workflow(workflow))

    async def list(
        self,
        *,
        page: int = 1,
        limit: int = 20,
        category: str | None = None,
        status: str | None = None,
    ) -> WorkflowPage:
        call = calls.list_workflows(page=page, limit=limit, category=category, status=status)
        return await self._client.send(call)

    async def delete(self, workflow: HasId) -> None:
        await self._client.send(calls.delete_workflow(workflow))

    async def execute(
        self,
        workflow: HasId,
        input_data: Mapping[str, Any] | None = None,
        *,
        priority: str = "normal",
        scheduled_at: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> ExecutionStarted:
        """Start an execution (answers at once; ``executions.wait`` for the outcome).

        Args:
            workflow: The workflow (or its id).
            input_data: The values its ``{{variables}}`` read.
            priority: ``urgent``, ``high``, ``normal`` or ``low``.
            scheduled_at: Start later, at this time (timezone-aware).
            idempotency_key: The same key again returns the first execution.
        """
        call = calls.execute(
            workflow,
            input_data=input_data,
            priority=priority,
            scheduled_at=scheduled_at,
            idempotency_key=idempotency_key,
        )
        return await self._client.send(call)


class AsyncExecutions:
    def __init__(self, client: AsyncWeftClient) -> None:
        self._client = client

    async def get(self, execution: HasId) -> Execution:
        """Status, progress, per-step results and log of an execution."""
        return await self._client.send(calls.get_execution(execution))

    get_status = get  # auterity's SDK name

    async def list(
        self,
        *,
        workflow_id: str | None = None,
        status: str | None = None,
        page: int = 1,
        limit: int = 20,
    ) -> ExecutionPage:
        call = calls.list_executions(workflow_id=workflow_id, status=status, page=page, limit=limit)
        return await self._client.send(call)

    async def cancel(self, execution: HasId) -> Cancelled:
        return await self._client.send(calls.cancel(execution))

    async def approve(
        self, execution: HasId, step_id: str, *, approved: bool = True, comment: str | None = None
    ) -> Approval:
        """Decide a ``human_approval`` step that is waiting (``approved=False`` rejects)."""
        call = calls.approve(execution, step_id, approved=approved, comment=comment)
        return await self._client.send(call)

    async def stream(
        self, execution: HasId, *, poll_interval: float = wire.TERMINAL_POLL
    ) -> AsyncIterator[Execution]:
        """Each new state of the execution (status, progress or current step changed),
        from the current one until it has finished."""
        last: tuple[Any, ...] | None = None
        while True:
            current = await self.get(execution)
            seen = (current.status, current.progress.completed_steps,
                    current.progress.current_step)  # fmt: skip
            if seen != last:
                last = seen
                yield current
            if current.finished:
                return
            await asyncio.sleep(poll_interval)

    async def wait(
        self,
        execution: HasId,
        *,
        # The same keyword as the blocking client's; asyncio.timeout() works around it too.
        timeout: float | None = 300.0,  # noqa: ASYNC109
        poll_interval: float = wire.TERMINAL_POLL,
    ) -> Execution:
        """The execution once it has finished (``WaitTimeout`` after ``timeout`` seconds)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            current = await self.get(execution)
            if current.finished:
                return current
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(
                    f"execution {current.id} is still {current.status} after {timeout} s",
                    current,
                )
            await asyncio.sleep(poll_interval)


class AsyncSchedules:
    def __init__(self, client: AsyncWeftClient) -> None:
        self._client = client

    async def create(
        self,
        workflow: HasId,
        *,
        cron: str | None = None,
        interval_seconds: int | None = None,
        timezone: str | None = None,
        input_data: Mapping[str, Any] | None = None,
        priority: str = "normal",
        paused: bool = False,
        note: str | None = None,
    ) -> Schedule:
        """Execute ``workflow`` on a cron string or every ``interval_seconds`` (one of them)."""
        call = calls.create_schedule(
            workflow, cron=cron, interval_seconds=interval_seconds, timezone=timezone,
            input_data=input_data, priority=priority, paused=paused, note=note,
        )  # fmt: skip
        return await self._client.send(call)

    async def list(
        self, *, workflow_id: str | None = None, page: int = 1, limit: int = 20
    ) -> SchedulePage:
        call = calls.list_schedules(workflow_id=workflow_id, page=page, limit=limit)
        return await self._client.send(call)

    async def get(self, schedule: HasId) -> Schedule:
        return await self._client.send(calls.get_schedule(schedule))

    async def pause(self, schedule: HasId, *, note: str | None = None) -> Schedule:
        return await self._client.send(calls.pause_schedule(schedule, note))

    async def resume(self, schedule: HasId, *, note: str | None = None) -> Schedule:
        return await self._client.send(calls.resume_schedule(schedule, note))

    async def delete(self, schedule: HasId) -> None:
        await self._client.send(calls.delete_schedule(schedule))
