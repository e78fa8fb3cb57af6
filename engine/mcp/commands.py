"""zentoria natural-language commands (``/api/v1/mcp/command`` and the
``/api/v1/mcp/stream`` WebSocket): accept, read, record.

Accepting a command interprets it (``engine.mcp.intents``), checks that the
caller may do what it asks, stores it as ``processing`` with its
``workflow.started`` event (subject: the command id, so a stream can follow
it), and starts its ``CommandWorkflow`` (``cmd-{command_id}``). The run does
the work (``engine.mcp.work``) and records the outcome here, with its
``workflow.completed`` or ``workflow.failed`` event.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from engine.ai.runtime import CallContext, ModelRuntime
from engine.db.scope import TenantScope
from engine.db.tables import Command
from engine.events import outbox
from engine.events.catalog import EventType, excerpt
from engine.identity.principals import Principal
from engine.mcp.intents import interpret
from engine.platform.errors import Forbidden, InvalidInput, NotFound
from engine.platform.ids import new_id
from engine.platform.runs import RunOptions, start_run
from engine.platform.settings import Settings
from workflows.command import CommandWorkflow
from workflows.command_payloads import CommandInput, CommandRecord, Intent

KIND = "command"
MAX_COMMAND_CHARS = 4000
# What a caller needs to ask for each intent (a command itself needs ai:chat).
INTENT_SCOPES: dict[str, tuple[str, ...]] = {
    Intent.FILE_UPLOAD: ("files:write",),
    Intent.FILE_SEARCH: ("files:read",),
    Intent.FILE_LIST: ("files:read",),
    Intent.FILE_PROCESS: ("files:write",),
    Intent.DOCUMENT_SUMMARIZE: ("files:read", "ai:chat"),
    Intent.DOCUMENT_QUERY: ("files:read", "ai:chat"),
    Intent.WORKFLOW_RUN: ("workflows:execute",),
    Intent.WORKFLOW_STATUS: ("workflows:read",),
    Intent.WORKFLOW_LIST: ("workflows:read",),
    Intent.AI_CHAT: ("ai:chat",),
}


class CommandNotFound(NotFound):
    code = "COMMAND_NOT_FOUND"


def new_command_id() -> str:
    return new_id("cmd")


def workflow_id_for(command_id: str) -> str:
    return f"cmd-{command_id}"


def _event_data(row: Command, **extra: Any) -> dict[str, Any]:
    return {
        "command_id": row.id,
        "intent": row.intent,
        "kind": KIND,
        **extra,
    }


async def submit(
    db: TenantScope,
    client: Client,
    settings: Settings,
    rt: ModelRuntime,
    principal: Principal,
    command: str,
    context: dict[str, Any] | None = None,
    *,
    request_id: str | None = None,
    command_id: str | None = None,
) -> Command:
    """Interpret ``command``, store it and start its run (``command_id``: chosen
    by the caller beforehand, e.g. a stream that narrows to it first)."""
    text = " ".join(command.split())
    if not text:
        raise InvalidInput("The command is empty", details={"field": "command"})
    if len(text) > MAX_COMMAND_CHARS:
        raise InvalidInput(
            f"The command may have at most {MAX_COMMAND_CHARS} characters",
            details={"field": "command"},
        )
    if principal.tenant_id is None:
        raise Forbidden("This credential is not bound to a tenant")
    tenant_id, context = principal.tenant_id, dict(context or {})
    understood = await interpret(
        rt,
        CallContext(
            tenant_id=tenant_id, user_id=principal.user_id, request_id=request_id, kind=KIND
        ),
        settings,
        text,
        context,
    )
    for scope in INTENT_SCOPES.get(understood.intent, ()):
        if not principal.allows(scope):
            raise Forbidden(
                f"A {understood.intent} command needs the {scope!r} scope",
                details={"intent": understood.intent, "scope": scope},
            )
    command_id = command_id or new_command_id()
    row = Command(
        id=command_id,
        user_id=principal.user_id,
        command=text,
        context=context,
        intent=understood.intent,
        entities=understood.entities,
        status="processing",
        interpreted_by=understood.interpreted_by,
        workflow_id=workflow_id_for(command_id),
        result={"interpretation_note": understood.note} if understood.note else {},
    )
    db.add(row)
    started = _event_data(
        row,
        status="processing",
        command=excerpt(text),
        entities=understood.entities,
        interpreted_by=understood.interpreted_by,
    )
    await outbox.emit(
        db.session,
        tenant_id,
        EventType.WORKFLOW_STARTED,
        started,
        subject=command_id,
        dedupe_key=f"{command_id}:started",
    )
    await db.session.commit()
    params = CommandInput(
        command_id=command_id,
        tenant_id=tenant_id,
        user_id=principal.user_id,
        command=text,
        intent=understood.intent,
        entities=understood.entities,
        context=context,
        interpreted_by=understood.interpreted_by,
    )
    run = RunOptions(
        workflow_id=row.workflow_id or workflow_id_for(command_id),
        kind=KIND,
        tenant_id=tenant_id,
        started_by=principal.user_id,
        summary=f"{understood.intent}: {excerpt(text)[:80]}",
        once=True,
    )
    try:
        await start_run(client, settings, CommandWorkflow.run, params, run)
    except Exception:
        row.status = "failed"
        row.error = {"code": "START_FAILED", "message": "the command's run could not be started"}
        await outbox.emit(
            db.session,
            tenant_id,
            EventType.WORKFLOW_FAILED,
            _event_data(row, status="failed", error=row.error),
            subject=command_id,
            dedupe_key=f"{command_id}:{EventType.WORKFLOW_FAILED.value}",
        )
        await db.session.commit()
        raise
    return row


async def read(db: TenantScope, command_id: str) -> Command:
    row = await db.find(Command, command_id)
    if row is None:
        raise CommandNotFound(f"Command {command_id} not found")
    return row


async def record_progress(session: AsyncSession, params: CommandInput, message: str) -> None:
    """The run has begun the intent's work: ``workflow.progress`` (once per command)."""
    row = await session.get(Command, params.command_id)
    if row is None or row.tenant_id != params.tenant_id:
        return
    await outbox.emit(
        session,
        params.tenant_id,
        EventType.WORKFLOW_PROGRESS,
        _event_data(row, status="running", message=message),
        subject=row.id,
        dedupe_key=f"{row.id}:progress",
    )
    await session.commit()


async def record_outcome(session: AsyncSession, record: CommandRecord) -> None:
    """Write the outcome to the command's row with its terminal event (once)."""
    row = await session.get(Command, record.command_id)
    if row is None or row.tenant_id != record.tenant_id:
        return
    row.status = record.status
    row.result = {**(row.result or {}), **record.result}
    if record.message and "message" not in row.result:
        row.result = {**row.result, "message": record.message}
    row.error = record.error.model_dump() if record.error is not None else None
    data = _event_data(row, status=record.status, message=record.message)
    if record.status == "completed":
        kind = EventType.WORKFLOW_COMPLETED
        data["result"] = record.result
    else:
        kind = EventType.WORKFLOW_FAILED
        data["error"] = row.error
    await outbox.emit(
        session,
        record.tenant_id,
        kind,
        data,
        subject=row.id,
        dedupe_key=f"{row.id}:{kind.value}",
    )
    await session.commit()
