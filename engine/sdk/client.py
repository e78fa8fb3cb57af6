"""``WeftClient``: the REST API from ordinary (blocking) code, as auterity's SDK reads::

    client = WeftClient("http://localhost:8000", api_key="znt_…")
    workflow = client.workflows.create(pipeline)
    execution = client.workflows.execute(workflow.id, input_data={"key": "value"})
    status = client.executions.get_status(execution.id)

It sends the same ``Call``s as ``AsyncWeftClient``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
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


class WeftClient:
    """The Weftworks API for blocking code (the arguments of ``AsyncWeftClient``).

    Use ``with WeftClient(...) as client:`` or call ``close()``.
    """

    def __init__(
        self,
        base_url: str = wire.DEFAULT_BASE_URL,
        api_key: str | None = None,
        *,
        token: str | None = None,
        timeout: float = wire.DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = wire.api_root(base_url)
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=wire.headers(api_key, token),
            timeout=timeout,
            transport=transport,
        )
        self.workflows = Workflows(self)
        self.executions = Executions(self)
        self.schedules = Schedules(self)

    def send(self, call: Call[T]) -> T:
        """Send one ``Call`` and read its answer (``ApiError`` on a refusal)."""
        try:
            response = self._http.request(call.method, call.path, **wire.request_options(call))
        except httpx.TransportError as exc:
            raise unreachable(exc, self.base_url) from exc
        return wire.result(call, response)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> WeftClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


class Workflows:
    def __init__(self, client: WeftClient) -> None:
        self._client = client

    def create(self, definition: Definition) -> Workflow:
        """Store a definition (a ``Pipeline``, or an auterity or z2 dict)."""
        return self._client.send(calls.create_workflow(definition))

    def update(self, workflow: HasId, definition: Definition) -> Workflow:
        return self._client.send(calls.update_workflow(workflow, definition))

    def get(self, workflow: HasId) -> Workflow:
        return self._client.send(calls.get_workflow(workflow))

    def list(
        self,
        *,
        page: int = 1,
        limit: int = 20,
        category: str | None = None,
        status: str | None = None,
    ) -> WorkflowPage:
        call = calls.list_workflows(page=page, limit=limit, category=category, status=status)
        return self._client.send(call)

    def delete(self, workflow: HasId) -> None:
        self._client.send(calls.delete_workflow(workflow))

    def execute(
        self,
        workflow: HasId,
        input_data: Mapping[str, Any] | None = None,
        *,
        priority: str = "normal",
        scheduled_at: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> ExecutionStarted:
        """Start an execution (see ``AsyncWorkflows.execute``)."""
        call = calls.execute(
            workflow,
            input_data=input_data,
            priority=priority,
            scheduled_at=scheduled_at,
            idempotency_key=idempotency_key,
        )
        return self._client.send(call)


class Executions:
    def __init__(self, client: WeftClient) -> None:
        self._client = client

    def get(self, execution: HasId) -> Execution:
        return self._client.send(calls.get_execution(execution))

    get_status = get  # auterity's SDK name

    def list(
        self,
        *,
        workflow_id: str | None = None,
        status: str | None = None,
        page: int = 1,
        limit: int = 20,
    ) -> ExecutionPage:
        call = calls.list_executions(workflow_id=workflow_id, status=status, page=page, limit=limit)
        return self._client.send(call)

    def cancel(self, execution: HasId) -> Cancelled:
        return self._client.send(calls.cancel(execution))

    def approve(
        self, execution: HasId, step_id: str, *, approved: bool = True, comment: str | None = None
    ) -> Approval:
        call = calls.approve(execution, step_id, approved=approved, comment=comment)
        return self._client.send(call)

    def stream(
        self, execution: HasId, *, poll_interval: float = wire.TERMINAL_POLL
    ) -> Iterator[Execution]:
        """Each new state of the execution until it has finished."""
        last: tuple[Any, ...] | None = None
        while True:
            current = self.get(execution)
            seen = (current.status, current.progress.completed_steps,
                    current.progress.current_step)  # fmt: skip
            if seen != last:
                last = seen
                yield current
            if current.finished:
                return
            time.sleep(poll_interval)

    def wait(
        self,
        execution: HasId,
        *,
        timeout: float | None = 300.0,
        poll_interval: float = wire.TERMINAL_POLL,
    ) -> Execution:
        """The execution once it has finished (``WaitTimeout`` after ``timeout`` seconds)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            current = self.get(execution)
            if current.finished:
                return current
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(
                    f"execution {current.id} is still {current.status} after {timeout} s",
                    current,
                )
            time.sleep(poll_interval)


class Schedules:
    def __init__(self, client: WeftClient) -> None:
        self._client = client

    def create(
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
        call = calls.create_schedule(
            workflow, cron=cron, interval_seconds=interval_seconds, timezone=timezone,
            input_data=input_data, priority=priority, paused=paused, note=note,
        )  # fmt: skip
        return self._client.send(call)

    def list(
        self, *, workflow_id: str | None = None, page: int = 1, limit: int = 20
    ) -> SchedulePage:
        call = calls.list_schedules(workflow_id=workflow_id, page=page, limit=limit)
        return self._client.send(call)

    def get(self, schedule: HasId) -> Schedule:
        return self._client.send(calls.get_schedule(schedule))

    def pause(self, schedule: HasId, *, note: str | None = None) -> Schedule:
        return self._client.send(calls.pause_schedule(schedule, note))

    def resume(self, schedule: HasId, *, note: str | None = None) -> Schedule:
        return self._client.send(calls.resume_schedule(schedule, note))

    def delete(self, schedule: HasId) -> None:
        self._client.send(calls.delete_schedule(schedule))
