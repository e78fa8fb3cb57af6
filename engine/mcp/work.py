"""What each intent of a command does (the ``run_command`` activity calls ``run``).

Most intents are the MCP tools under another name (search, RAG answers,
workflow status and lists); the rest call the engine's services the way their
routes do: uploads (a command carries no file, so it says how to send one),
document processing, pipeline executions and chat. An engine error (a file or
workflow that does not exist, input that does not fit) ends the command as
failed with that error's code and message.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import func

from engine.ai.chat import complete
from engine.ai.providers.base import ChatMessage, ChatRequest
from engine.ai.runtime import CallContext
from engine.db.scope import TenantScope
from engine.db.tables import File
from engine.documents import files, processing
from engine.mcp import tools
from engine.mcp.services import McpServices, ToolCall
from engine.pipelines import executions, store
from engine.platform.errors import InvalidInput, NotFound
from workflows.command_payloads import CommandInput, CommandOutcome, Intent

UPLOAD_PATH = "/api/v1/mcp/upload"
LISTED = 20
PROGRESS: dict[str, str] = {
    Intent.FILE_UPLOAD: "Preparing the upload instructions",
    Intent.FILE_SEARCH: "Searching your documents",
    Intent.FILE_LIST: "Listing your files",
    Intent.FILE_PROCESS: "Starting the document's processing",
    Intent.DOCUMENT_SUMMARIZE: "Summarizing the document",
    Intent.DOCUMENT_QUERY: "Answering from your documents",
    Intent.WORKFLOW_RUN: "Starting the workflow",
    Intent.WORKFLOW_STATUS: "Reading the run's status",
    Intent.WORKFLOW_LIST: "Listing your workflows",
    Intent.AI_CHAT: "Asking the model",
}
# Words of a summarize target that name no file ("the latest report" -> "report").
FILLER = frozenset(
    {
        "the", "a", "an", "my", "our", "this", "that", "latest", "last", "newest", "most",
        "recent", "document", "documents", "doc", "docs", "file", "files", "of", "uploaded",
        "upload", "please",
    }
)  # fmt: skip

Handler = Callable[[ToolCall, CommandInput], Awaitable[CommandOutcome]]


def progress_message(intent: str) -> str:
    return PROGRESS.get(intent, "Working on the command")


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _top_k(value: Any, default: int = 5) -> int:
    try:
        return max(1, min(20, int(value)))
    except (TypeError, ValueError):
        return default


def _file_public(row: File) -> dict[str, Any]:
    return {
        "file_id": row.id,
        "filename": row.filename,
        "status": row.status,
        "size": row.size,
        "mime_type": row.mime_type,
        "project_id": row.project_id,
        "uploaded_at": row.created_at.isoformat(),
    }


async def _newest_file(db: TenantScope, *, name_like: str | None = None) -> File | None:
    """The tenant's newest file (processed ones first) whose name contains ``name_like``."""
    query = db.select(File)
    if name_like:
        query = query.where(func.lower(File.filename).contains(name_like.lower()))
    found = await db.session.scalars(query.order_by(File.created_at.desc()).limit(50))
    rows: list[File] = list(found)
    processed = [row for row in rows if row.status == "processed"]
    return (processed or rows)[0] if rows else None


async def resolve_file(db: TenantScope, entities: dict[str, Any], context: dict[str, Any]) -> File:
    """The file a command means: by id, by name, or by the words of its target
    ("the latest report": the newest file named like "report")."""
    file_id = _text(entities.get("file_id")) or _text(context.get("file_id"))
    if file_id:
        return await db.get(File, file_id, what="file")
    filename = _text(entities.get("filename"))
    if filename:
        exact = await db.session.scalar(
            db.select(File)
            .where(func.lower(File.filename) == filename.lower())
            .order_by(File.created_at.desc())
            .limit(1)
        )
        found = exact if isinstance(exact, File) else await _newest_file(db, name_like=filename)
        if found is None:
            raise NotFound(f"No file named {filename}", details={"filename": filename})
        return found
    target = _text(entities.get("target")) or ""
    words = [w for w in re.findall(r"[\w-]+", target.lower()) if w not in FILLER]
    for word in words:
        found = await _newest_file(db, name_like=word)
        if found is not None:
            return found
    found = await _newest_file(db)
    if found is None:
        raise NotFound(f"No document to work on: upload one first ({UPLOAD_PATH})")
    return found


# --- the intents ---------------------------------------------------------------


async def _upload(call: ToolCall, params: CommandInput) -> CommandOutcome:
    filename = _text(params.entities.get("filename"))
    project_id = _text(params.context.get("project_id"))
    project = _text(params.entities.get("project"))
    fields: dict[str, str] = {"file": "<the file's bytes>"}
    if filename:
        fields["filename"] = filename
    if project_id:
        fields["project_id"] = project_id
    message = (
        f"A command carries no file, so nothing was uploaded: send {filename or 'the file'} "
        f"to POST {UPLOAD_PATH} as multipart/form-data (field 'file'"
        + (f", project_id={project_id}" if project_id else "")
        + "); it is processed as soon as it arrives."
    )
    result: dict[str, Any] = {
        "uploaded": False,
        "action_required": "upload",
        "upload": {
            "method": "POST",
            "path": UPLOAD_PATH,
            "content_type": "multipart/form-data",
            "fields": fields,
        },
        "filename": filename,
        "project": project,
        "message": message,
    }
    return CommandOutcome(status="completed", result=result, message=message)


async def _search(call: ToolCall, params: CommandInput) -> CommandOutcome:
    query = _text(params.entities.get("query")) or params.command
    found = await tools.search_documents(
        call, tools.SearchArgs(query=query[:4000], top_k=_top_k(params.entities.get("top_k")))
    )
    result = found.model_dump(mode="json")
    result["count"] = len(found.passages)
    files_seen = len({p.file_id for p in found.passages})
    message = f"Found {len(found.passages)} passages in {files_seen} files for {query!r}"
    return CommandOutcome(status="completed", result=result, message=message)


async def _list_files(call: ToolCall, params: CommandInput) -> CommandOutcome:
    project_id = _text(params.entities.get("project_id")) or _text(params.context.get("project_id"))
    rows, total = await files.list_files(
        call.db, project_id=project_id, limit=LISTED, offset=0, sort="created_at:desc"
    )
    result = {"files": [_file_public(row) for row in rows], "total": total}
    return CommandOutcome(status="completed", result=result, message=f"{total} files")


async def _process(call: ToolCall, params: CommandInput) -> CommandOutcome:
    row = await resolve_file(call.db, params.entities, params.context)
    services = call.services
    run = await processing.start_processing_file(
        call.db,
        services.temporal,
        services.settings,
        row.id,
        processing.ProcessOptions(),
        started_by=call.user_id,
    )
    result = {"file_id": row.id, "filename": row.filename, "execution_id": run.execution_id,
              "status": run.status}  # fmt: skip
    message = f"Processing {row.filename} ({run.execution_id})"
    return CommandOutcome(status="completed", result=result, message=message)


async def _summarize(call: ToolCall, params: CommandInput) -> CommandOutcome:
    row = await resolve_file(call.db, params.entities, params.context)
    if row.status != "processed":
        raise InvalidInput(
            f"{row.filename} is {row.status}, not processed yet: summarize it once its "
            "processing has finished",
            details={"file_id": row.id, "status": row.status},
        )
    # Every passage of the file belongs in its summary, however unlike the command.
    ask = tools.RagArgs(query=params.command[:4000], top_k=8, file_ids=[row.id], min_score=-1)
    answer = await tools.rag_query(call, ask)
    result = {
        "file_id": row.id,
        "filename": row.filename,
        "summary": answer.answer,
        "model": answer.model,
        "citations": [c.model_dump(mode="json") for c in answer.citations or []],
    }
    return CommandOutcome(status="completed", result=result, message=f"Summary of {row.filename}")


async def _query(call: ToolCall, params: CommandInput) -> CommandOutcome:
    question = _text(params.entities.get("question")) or params.command
    answer = await tools.rag_query(
        call, tools.RagArgs(query=question[:4000], top_k=_top_k(params.entities.get("top_k")))
    )
    return CommandOutcome(
        status="completed",
        result=answer.model_dump(mode="json", exclude_none=True),
        message=f"Answered from {answer.contexts_used} passages",
    )


async def _run_workflow(call: ToolCall, params: CommandInput) -> CommandOutcome:
    entities = params.entities
    definition_id = _text(entities.get("workflow_id"))
    name = _text(entities.get("workflow_name"))
    if definition_id:
        definition = await store.get_definition(call.db, definition_id)
    elif name:
        rows = (await store.list_definitions(call.db)).rows
        matches = [r for r in rows if r.name.lower() == name.lower()] or [
            r for r in rows if name.lower() in r.name.lower()
        ]
        if not matches:
            raise store.WorkflowNotFound(
                f"No workflow named {name!r}", details={"workflow_name": name}
            )
        definition = matches[0]
    else:
        raise InvalidInput(
            "Name the workflow to run (its id wf_… or its name)",
            details={"field": "workflow_name"},
        )
    given = entities.get("input_data")
    input_data = dict(given) if isinstance(given, dict) else {}
    services = call.services
    row = await executions.execute(
        call.db,
        services.temporal,
        services.settings,
        definition.id,
        input_data=input_data,
        started_by=call.user_id,
        idempotency_key=f"cmd-{params.command_id}",  # a retried activity starts it once
    )
    result = {
        "execution_id": row.id,
        "workflow_id": definition.id,
        "workflow_name": definition.name,
        "status": row.status,
        "input_data": input_data,
        "temporal_workflow_id": row.workflow_id,
    }
    message = f"Started {definition.name} as execution {row.id}"
    return CommandOutcome(status="completed", result=result, message=message)


async def _status(call: ToolCall, params: CommandInput) -> CommandOutcome:
    run_id = _text(params.entities.get("execution_id"))
    if run_id:
        status = await tools.get_workflow_status(
            call, tools.WorkflowStatusArgs(execution_id=run_id)
        )
        message = f"{run_id} is {status.status}"
        return CommandOutcome(
            status="completed", result=status.model_dump(mode="json"), message=message
        )
    rows, total = await executions.list_executions(call.db, limit=5)
    recent = [
        {
            "execution_id": row.id,
            "workflow_id": row.definition_id,
            "status": row.status,
            "started_at": row.started_at.isoformat() if row.started_at else None,
        }
        for row in rows
    ]
    message = "No execution was named: the most recent ones are listed"
    return CommandOutcome(
        status="completed", result={"executions": recent, "total": total}, message=message
    )


async def _list_workflows(call: ToolCall, params: CommandInput) -> CommandOutcome:
    found = await tools.list_workflows(call, tools.ListWorkflowsArgs())
    return CommandOutcome(
        status="completed", result=found.model_dump(mode="json"), message=f"{found.total} workflows"
    )


async def _chat(call: ToolCall, params: CommandInput) -> CommandOutcome:
    message = _text(params.entities.get("message")) or params.command
    context = CallContext(
        tenant_id=call.tenant_id,
        user_id=call.user_id,
        request_id=call.request_id,
        kind="chat",
    )
    request = ChatRequest(model="", messages=[ChatMessage(role="user", content=message)])
    outcome = await complete(call.services.models, context, request)
    result = {
        "answer": outcome.content,
        "model": outcome.model,
        "provider": outcome.provider,
        "total_tokens": outcome.total_tokens,
    }
    return CommandOutcome(status="completed", result=result, message=f"Answered by {outcome.model}")


HANDLERS: dict[str, Handler] = {
    Intent.FILE_UPLOAD: _upload,
    Intent.FILE_SEARCH: _search,
    Intent.FILE_LIST: _list_files,
    Intent.FILE_PROCESS: _process,
    Intent.DOCUMENT_SUMMARIZE: _summarize,
    Intent.DOCUMENT_QUERY: _query,
    Intent.WORKFLOW_RUN: _run_workflow,
    Intent.WORKFLOW_STATUS: _status,
    Intent.WORKFLOW_LIST: _list_workflows,
    Intent.AI_CHAT: _chat,
}


async def run(services: McpServices, db: TenantScope, params: CommandInput) -> CommandOutcome:
    """Do the work of ``params.intent`` in the command's tenant, as its user."""
    handler = HANDLERS.get(params.intent)
    if handler is None:
        raise InvalidInput(f"No work is defined for the intent {params.intent!r}")
    call = ToolCall(
        db=db,
        services=services,
        tenant_id=params.tenant_id,
        user_id=params.user_id,
    )
    return await handler(call, params)
