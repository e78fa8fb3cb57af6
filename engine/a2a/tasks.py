"""A2A tasks: start, continue, read, watch, list and cancel them, and record
their changes.

Each task is an ``A2ATaskWorkflow`` run (``a2a-task-{task_id}``) plus its index
row (``a2a_tasks``), which holds the tenant, the target and the task's last
recorded snapshot. While a task is open, Temporal is the truth and reads query
the run; a task that has ended (or whose run cannot answer: its worker is
down, Temporal forgot it) is read from the row. Every read is scoped by the
caller's tenant: another tenant's task is not found.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.service import RPCError

from engine.a2a import push
from engine.a2a.errors import A2ATaskNotCancelable, A2ATaskNotFound, A2ATaskNotWaiting
from engine.a2a.targets import choose_target
from engine.db.connection import transaction
from engine.db.scope import TenantScope
from engine.db.tables import A2ATask, Event
from engine.events import outbox
from engine.events.catalog import EventType
from engine.events.webhooks import check_url
from engine.identity.principals import Principal
from engine.platform.errors import Forbidden, InvalidInput
from engine.platform.ids import new_id
from engine.platform.runs import RunOptions, cancel_run, start_run
from engine.platform.settings import Settings
from workflows.a2a_payloads import (
    TERMINAL_STATES,
    A2AFollowUp,
    A2ATarget,
    A2ATaskInput,
    A2ATaskRecord,
    A2ATaskView,
    TaskStateName,
    agent_message,
    task_dict,
)
from workflows.a2a_task import A2ATaskWorkflow

# States a blocking SendMessage and a stream stop at.
RESTING = TERMINAL_STATES | {"input-required"}
QUERY_TIMEOUT = timedelta(seconds=5)
MAX_ID = 64  # task and context ids (the index row's columns)
SCOPE_BY_KIND = {"agent": "ai:chat", "pipeline": "workflows:execute"}


def workflow_id_of(task_id: str) -> str:
    return f"a2a-task-{task_id}"


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def stored_view(row: A2ATask) -> A2ATaskView:
    """The task as its row last recorded it."""
    snapshot = dict(row.snapshot or {})
    if "task" in snapshot:
        return A2ATaskView.model_validate(snapshot)
    return A2ATaskView(  # a row written without a snapshot (should not happen)
        version=0,
        state=row.state,
        task=task_dict(
            task_id=row.id, context_id=row.context_id, state=row.state, timestamp=now_iso()
        ),
    )


def push_payload(view: A2ATaskView) -> dict[str, Any]:
    """An ``a2a.task.status`` event's data: the task (without its history)."""
    task = {key: value for key, value in view.task.items() if key != "history"}
    return {
        "task_id": task.get("id"),
        "context_id": task.get("contextId"),
        "state": view.state,
        "version": view.version,
        "final": view.state in RESTING,
        "task": task,
    }


def check_scope(principal: Principal, target_kind: str) -> None:
    scope = SCOPE_BY_KIND.get(target_kind, "ai:chat")
    if not principal.allows(scope):
        raise Forbidden(f"This call needs the {scope!r} scope", details={"scope": scope})


def _checked_id(value: str, field: str) -> str:
    if len(value) > MAX_ID:
        raise InvalidInput(f"{field} is longer than {MAX_ID} characters", details={"field": field})
    return value


@dataclass(frozen=True)
class Sent:
    """What SendMessage did: the task now, and whether it started a new task."""

    view: A2ATaskView
    created: bool


@dataclass
class A2ATasks:
    """The task operations of one API process (its sessions and Temporal client)."""

    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    client: Client

    # --- sending ---------------------------------------------------------------

    async def send(
        self,
        principal: Principal,
        message: dict[str, Any],
        hints: dict[str, Any],
        push_request: push.PushRequest | None = None,
    ) -> Sent:
        """Start a task for ``message``, or continue the task it names (``taskId``).

        ``hints`` (the request's metadata over the message's) choose the target
        (``engine.a2a.targets``); ``multi_turn`` keeps the task open after each
        answer, and on a follow-up ``final`` makes its answer the last.
        ``push_request``: a push config for a new task, saved before its run
        starts (so no change goes unpushed).
        """
        tenant_id = _tenant(principal)
        if push_request is not None:
            await check_url(self.settings, push_request.url)  # refused before anything
        if message.get("taskId"):
            task_id = str(message["taskId"])
            if push_request is not None:  # before the message, so its changes are pushed
                await self._save_push(principal, task_id, push_request)
            view = await self.follow_up(principal, task_id, message, final=bool(hints.get("final")))
            return Sent(view, created=False)
        task_id = new_id("a2t")
        context_id = _checked_id(str(message.get("contextId") or uuid.uuid4()), "contextId")
        message = {**message, "taskId": task_id, "contextId": context_id}
        async with self.sessions() as session:
            db = TenantScope(session, tenant_id, all_tenants=False)
            target = await choose_target(db, hints)
            if target is not None:
                check_scope(principal, target.kind)
            view = self._first_view(task_id, context_id, message, target)
            row = A2ATask(
                id=task_id,
                context_id=context_id,
                target_kind=target.kind if target else "agent",
                target_id=target.id if target else "",
                state=view.state,
                workflow_id=workflow_id_of(task_id),
                snapshot=view.model_dump(mode="json"),
                created_by=principal.user_id,
            )
            db.add(row)
            await _announce(session, tenant_id, view)
            await session.commit()
        if push_request is not None:
            await self._save_push(principal, task_id, push_request)
        if target is None:
            return Sent(view, created=True)
        params = A2ATaskInput(
            task_id=task_id,
            context_id=context_id,
            tenant_id=tenant_id,
            started_by=principal.user_id,
            target=target,
            message=message,
            multi_turn=bool(hints.get("multi_turn")),
        )
        run = RunOptions(
            workflow_id=row.workflow_id,
            kind="a2a",
            tenant_id=tenant_id,
            started_by=principal.user_id,
            definition_id=target.id if target.kind == "pipeline" else None,
            summary=f"A2A task for {target.kind} {target.name or target.id}",
        )
        try:
            await start_run(self.client, self.settings, A2ATaskWorkflow.run, params, run)
        except Exception:
            await self._mark_failed(tenant_id, task_id, "The task could not be started.")
            raise
        return Sent(view, created=True)

    async def _save_push(
        self, principal: Principal, task_id: str, asked: push.PushRequest
    ) -> push.PushConfig:
        async with self.sessions() as session:
            db = TenantScope(session, _tenant(principal), all_tenants=False)
            return await push.save_config(
                db, self.settings, task_id, asked, created_by=principal.user_id
            )

    def _first_view(
        self,
        task_id: str,
        context_id: str,
        message: dict[str, Any],
        target: A2ATarget | None,
    ) -> A2ATaskView:
        if target is None:
            notice = agent_message(
                "No agent or pipeline can answer: this tenant has no active agent. "
                "Create one, or name a pipeline (metadata.pipeline_id).",
                message_id=str(uuid.uuid4()),
                task_id=task_id,
                context_id=context_id,
            )
            state: TaskStateName = "rejected"
            return A2ATaskView(
                version=0,
                state=state,
                task=task_dict(
                    task_id=task_id,
                    context_id=context_id,
                    state=state,
                    timestamp=now_iso(),
                    status_message=notice,
                    history=[message],
                ),
            )
        return A2ATaskView(
            version=0,
            state="submitted",
            task=task_dict(
                task_id=task_id,
                context_id=context_id,
                state="submitted",
                timestamp=now_iso(),
                history=[message],
                metadata={"target": target.model_dump(mode="json")},
            ),
        )

    async def follow_up(
        self, principal: Principal, task_id: str, message: dict[str, Any], *, final: bool
    ) -> A2ATaskView:
        """Hand the next user message to a task that waits for input."""
        row = await self.row(principal, task_id)
        check_scope(principal, row.target_kind)
        context_id = message.get("contextId")
        if context_id and context_id != row.context_id:
            raise InvalidInput(
                f"task {task_id} belongs to context {row.context_id}",
                details={"field": "contextId"},
            )
        current = await self.current(row)
        if current.state != "input-required":
            raise A2ATaskNotWaiting(
                f"task {task_id} is {current.state}, not waiting for input",
                details={"state": current.state},
            )
        message = {**message, "taskId": task_id, "contextId": row.context_id}
        handle = self.client.get_workflow_handle_for(A2ATaskWorkflow.run, row.workflow_id)
        try:
            return await handle.execute_update(
                A2ATaskWorkflow.message,
                A2AFollowUp(message=message, final=final),
                rpc_timeout=timedelta(seconds=30),
            )
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            raise A2ATaskNotWaiting(str(getattr(cause, "message", cause) or exc)) from None
        except RPCError as exc:
            raise A2ATaskNotWaiting(
                f"task {task_id} cannot take a message: {exc.message}"
            ) from None

    # --- reading ---------------------------------------------------------------

    async def row(self, principal: Principal, task_id: str) -> A2ATask:
        async with self.sessions() as session:
            row = await TenantScope(session, _tenant(principal), all_tenants=False).find(
                A2ATask, task_id
            )
        if row is None:
            raise A2ATaskNotFound(f"task {task_id} not found")
        return row

    async def read(self, principal: Principal, task_id: str) -> A2ATaskView:
        return await self.current(await self.row(principal, task_id))

    async def current(self, row: A2ATask) -> A2ATaskView:
        """The run's own account while the task is open, else the recorded one."""
        stored = stored_view(row)
        if stored.state in TERMINAL_STATES:
            return stored
        live = await self._query(row.workflow_id)
        if live is None:  # the run cannot answer: read the row again
            async with self.sessions() as session:
                fresh = await session.get(A2ATask, row.id)
            return stored_view(fresh) if fresh is not None else stored
        return live if live.version >= stored.version else stored

    async def _query(self, workflow_id: str) -> A2ATaskView | None:
        handle = self.client.get_workflow_handle_for(A2ATaskWorkflow.run, workflow_id)
        try:
            return await handle.query(A2ATaskWorkflow.task, rpc_timeout=QUERY_TIMEOUT)
        except (RPCError, WorkflowQueryFailedError):
            return None

    async def wait(
        self,
        row: A2ATask,
        *,
        seconds: float,
        until: Callable[[A2ATaskView], bool] = lambda view: view.state in RESTING,
    ) -> A2ATaskView:
        """Poll the task until ``until`` holds or ``seconds`` pass; the last view."""
        last = await self.current(row)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                async for view in self.watch(row, first=last):
                    last = view
                    if until(view):
                        break
        return last

    async def watch(
        self, row: A2ATask, *, first: A2ATaskView | None = None
    ) -> AsyncIterator[A2ATaskView]:
        """Each new version of the task (the current one first), until it rests
        (ended, or waits for input). Works from any API process: it polls the run."""
        view = first or await self.current(row)
        yield view
        pause = 0.1
        while view.state not in RESTING:
            await asyncio.sleep(pause)
            latest = await self.current(row)
            if latest.version > view.version or latest.state != view.state:
                view, pause = latest, 0.1
                yield view
            else:
                pause = min(pause * 1.5, 1.0)

    async def list_tasks(
        self,
        principal: Principal,
        *,
        context_id: str | None = None,
        state: str | None = None,
        updated_after: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[A2ATaskView], int]:
        """The tenant's tasks as last recorded, newest first, and how many match."""
        async with self.sessions() as session:
            db = TenantScope(session, _tenant(principal), all_tenants=False)
            query = db.select(A2ATask)
            if context_id:
                query = query.where(A2ATask.context_id == context_id)
            if state:
                query = query.where(A2ATask.state == state)
            if updated_after is not None:
                query = query.where(A2ATask.updated_at >= updated_after)
            total = await session.scalar(select(func.count()).select_from(query.subquery()))
            rows = await session.scalars(
                query.order_by(A2ATask.created_at.desc(), A2ATask.id.desc())
                .limit(limit)
                .offset(offset)
            )
            return [stored_view(row) for row in rows], int(total or 0)

    # --- cancelling ------------------------------------------------------------

    async def cancel(self, principal: Principal, task_id: str) -> A2ATaskView:
        """Cancel an open task (its run); ``A2ATaskNotCancelable`` once it ended."""
        row = await self.row(principal, task_id)
        check_scope(principal, row.target_kind)
        current = await self.current(row)
        if current.state in TERMINAL_STATES:
            raise A2ATaskNotCancelable(
                f"task {task_id} is already {current.state}", details={"state": current.state}
            )
        await cancel_run(self.client, row.workflow_id)
        return await self.wait(row, seconds=15, until=lambda view: view.state in TERMINAL_STATES)

    async def _mark_failed(self, tenant_id: str, task_id: str, text: str) -> None:
        async with transaction(self.sessions) as session:
            row = await session.get(A2ATask, task_id)
            if row is None or row.tenant_id != tenant_id:
                return
            view = stored_view(row)
            task = dict(view.task)
            task["status"] = {
                "state": "TASK_STATE_FAILED",
                "timestamp": now_iso(),
                "message": agent_message(
                    text, message_id=str(uuid.uuid4()), task_id=task_id, context_id=row.context_id
                ),
            }
            failed = A2ATaskView(version=view.version + 1, state="failed", task=task)
            row.state, row.snapshot = "failed", failed.model_dump(mode="json")
            await _announce(session, tenant_id, failed)


def _tenant(principal: Principal) -> str:
    if principal.tenant_id is None:
        raise Forbidden("This credential is not bound to a tenant")
    return principal.tenant_id


async def _announce(session: AsyncSession, tenant_id: str, view: A2ATaskView) -> str | None:
    """The ``a2a.task.status`` event of this version of the task (once per version)."""
    task_id = str(view.task.get("id"))
    key = f"a2a:{task_id}:{view.version}"
    emitted = await outbox.emit(
        session,
        tenant_id,
        EventType.A2A_TASK_STATUS,
        push_payload(view),
        subject=task_id,
        dedupe_key=key,
    )
    if emitted is not None:
        return emitted
    found = await session.scalar(select(Event.id).where(Event.dedupe_key == key))
    return str(found) if found is not None else None


async def record_change(
    sessions: async_sessionmaker[AsyncSession],
    client: Client,
    settings: Settings,
    record: A2ATaskRecord,
) -> None:
    """Write a change of a task to its row (a newer version only), announce it,
    and push it to the task's push configs (each a webhook delivery run, once per
    event and config, so a retried activity pushes nothing twice)."""
    view = record.view
    async with transaction(sessions) as session:
        row = await session.get(A2ATask, record.task_id)
        if row is None or row.tenant_id != record.tenant_id:
            return
        if int((row.snapshot or {}).get("version", -1)) < view.version:
            row.state = view.state
            row.snapshot = view.model_dump(mode="json")
        event_id = await _announce(session, record.tenant_id, view)
        hooks = await push.push_targets(session, record.tenant_id, record.task_id)
    if event_id is not None:
        for hook in hooks:
            await push.deliver(client, settings, record.tenant_id, event_id, hook)
