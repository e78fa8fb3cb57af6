"""The MCP tools: one definition each, shared by z2's REST ``/api/v1/mcp/tools``,
the MCP server at ``/mcp`` and the work of natural-language commands.

A tool is a name, a description, the scope a caller needs, a pydantic model of
its arguments (its JSON schema is what clients see) and of its result, and a
handler that calls the engine's own services (pipeline executions, retrieval,
RAG answers) in the caller's tenant. ``run_tool`` checks the scope and the
arguments, runs the handler, and counts the call against a z2 session when one
is named.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.ai.runtime import CallContext
from engine.db.scope import TenantScope
from engine.documents import processing
from engine.documents.rag import RagAnswer, RagQuery, answer_query
from engine.documents.retrieval import retrieve
from engine.identity.principals import Principal
from engine.mcp import commands, sessions
from engine.mcp.services import McpServices, ToolCall
from engine.pipelines import executions, store
from engine.platform.errors import Forbidden, InvalidInput, NotFound

ArgsT = TypeVar("ArgsT", bound=BaseModel)
OutT = TypeVar("OutT", bound=BaseModel)
MAX_IDS = 100


class ToolNotFound(NotFound):
    code = "TOOL_NOT_FOUND"


# --- arguments and results -----------------------------------------------------


class Arguments(BaseModel):
    """Arguments refuse keys the tool does not know (a typo is an error, not ignored)."""

    model_config = ConfigDict(extra="forbid")


class StartWorkflowArgs(Arguments):
    workflow_id: str = Field(
        min_length=1, max_length=200, description="The id of a stored workflow definition (wf_…)"
    )
    input_data: dict[str, Any] = Field(
        default_factory=dict, description="The execution's input, by the names the workflow uses"
    )


class WorkflowStarted(BaseModel):
    execution_id: str
    workflow_id: str
    workflow_name: str
    status: str
    temporal_workflow_id: str


class WorkflowStatusArgs(Arguments):
    execution_id: str = Field(
        min_length=1,
        max_length=200,
        description=(
            "A pipeline execution (exe_…), a document run (doc-file_…) or a command (cmd_…)"
        ),
    )


class StatusProgress(BaseModel):
    completed_steps: int
    total_steps: int
    current_step: str | None = None


class WorkflowStatus(BaseModel):
    execution_id: str
    kind: Literal["pipeline", "document_processor", "command"]
    workflow_id: str | None = None  # the definition of a pipeline execution
    status: str
    progress: StatusProgress | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    outputs: dict[str, Any] = Field(default_factory=dict)
    error_code: str | None = None
    error: str | None = None


class SearchArgs(Arguments):
    query: str = Field(min_length=1, max_length=4000, description="What to look for")
    top_k: int = Field(default=5, ge=1, le=50, description="How many passages at most")
    file_ids: list[str] | None = Field(
        default=None, max_length=MAX_IDS, description="Search only these files"
    )
    project_id: str | None = Field(default=None, max_length=200, description="Only this project")


class PassageFound(BaseModel):
    chunk_id: str
    file_id: str
    filename: str
    page: int | None
    text: str
    score: float


class SearchResults(BaseModel):
    query: str
    model: str  # the embedding model searched
    passages: list[PassageFound]


class RagArgs(SearchArgs):
    query: str = Field(min_length=1, max_length=4000, description="The question to answer")
    include_citations: bool = Field(default=True, description="Return the passages used")
    min_score: float | None = Field(
        default=None, ge=-1, le=1,
        description="Leave out passages scoring below this (default: the deployment's floor)",
    )  # fmt: skip


class ListWorkflowsArgs(Arguments):
    status: str | None = Field(default=None, max_length=20, description="e.g. active, draft")
    limit: int = Field(default=50, ge=1, le=100)


class WorkflowSummary(BaseModel):
    id: str
    name: str
    description: str
    status: str
    category: str | None
    steps: int
    updated_at: datetime


class WorkflowList(BaseModel):
    workflows: list[WorkflowSummary]
    total: int


# --- handlers ------------------------------------------------------------------


async def start_workflow(call: ToolCall, args: StartWorkflowArgs) -> WorkflowStarted:
    row = await executions.execute(
        call.db,
        call.services.temporal,
        call.services.settings,
        args.workflow_id,
        input_data=args.input_data,
        started_by=call.user_id,
    )
    definition = await store.get_definition(call.db, args.workflow_id)
    return WorkflowStarted(
        execution_id=row.id,
        workflow_id=definition.id,
        workflow_name=definition.name,
        status=row.status,
        temporal_workflow_id=row.workflow_id,
    )


async def get_workflow_status(call: ToolCall, args: WorkflowStatusArgs) -> WorkflowStatus:
    run_id = args.execution_id.strip()
    client = call.services.temporal
    if run_id.startswith("doc-"):
        run = await processing.read_run(call.db, client, run_id)
        progress = None
        if run.progress is not None:
            progress = StatusProgress(
                completed_steps=run.progress.chunks_done,
                total_steps=run.progress.chunks_total,
                current_step=run.progress.stage,
            )
        return WorkflowStatus(
            execution_id=run.execution_id,
            kind="document_processor",
            status=run.status,
            progress=progress,
            started_at=run.started_at,
            completed_at=run.finished_at,
            outputs=run.result.model_dump(mode="json", exclude={"ocr_text"}) if run.result else {},
            error_code=run.error.code if run.error else None,
            error=run.error.message if run.error else None,
        )
    if run_id.startswith("cmd_"):
        command = await commands.read(call.db, run_id)
        error = command.error or {}
        return WorkflowStatus(
            execution_id=command.id,
            kind="command",
            status=command.status,
            started_at=command.created_at,
            completed_at=command.updated_at if command.status != "processing" else None,
            outputs=command.result,
            error_code=error.get("code"),
            error=error.get("message"),
        )
    view = await executions.read(call.db, client, run_id)
    return WorkflowStatus(
        execution_id=view.id,
        kind="pipeline",
        workflow_id=view.workflow_id,
        status=view.status,
        progress=StatusProgress.model_validate(view.progress.model_dump()),
        started_at=view.started_at,
        completed_at=view.completed_at,
        outputs={sid: r.output for sid, r in view.results.items() if r.status == "completed"},
        error_code=view.error_code,
        error=view.error,
    )


async def search_documents(call: ToolCall, args: SearchArgs) -> SearchResults:
    found = await retrieve(
        call.db,
        call.services.index,
        tenant_id=call.tenant_id,
        question=args.query,
        top_k=args.top_k,
        project_id=args.project_id,
        file_ids=args.file_ids,
    )
    passages = [
        PassageFound(
            chunk_id=p.chunk_id,
            file_id=p.file_id,
            filename=p.filename,
            page=p.page,
            text=p.text,
            score=p.score,
        )
        for p in found.passages
    ]
    return SearchResults(query=args.query, model=found.model, passages=passages)


async def rag_query(call: ToolCall, args: RagArgs) -> RagAnswer:
    services = call.services
    context = CallContext(
        tenant_id=call.tenant_id, user_id=call.user_id, request_id=call.request_id, kind="rag"
    )
    body = RagQuery(
        query=args.query,
        top_k=args.top_k,
        include_citations=args.include_citations,
        project_id=args.project_id,
        file_ids=args.file_ids,
        min_score=args.min_score,
    )
    return await answer_query(
        call.db, services.index, services.models, context, services.settings, services.http, body
    )


async def list_workflows(call: ToolCall, args: ListWorkflowsArgs) -> WorkflowList:
    page = await store.list_definitions(call.db, status=args.status, limit=args.limit)
    return WorkflowList(
        workflows=[
            WorkflowSummary(
                id=row.id,
                name=row.name,
                description=row.description,
                status=row.status,
                category=row.category,
                steps=len(row.definition.get("steps") or []),
                updated_at=row.updated_at,
            )
            for row in page.rows
        ],
        total=page.total,
    )


# --- the catalogue -------------------------------------------------------------


@dataclass(frozen=True)
class Tool(Generic[ArgsT, OutT]):
    name: str
    description: str
    scope: str
    arguments: type[ArgsT]
    result: type[OutT]
    handler: Callable[[ToolCall, ArgsT], Awaitable[OutT]]
    read_only: bool = True

    def input_schema(self) -> dict[str, Any]:
        return self.arguments.model_json_schema()

    def parse(self, arguments: dict[str, Any]) -> ArgsT:
        """The arguments as the tool's model; ``InvalidInput`` (422) naming each problem."""
        try:
            return self.arguments.model_validate(arguments)
        except ValidationError as exc:
            problems = [
                {
                    "field": ".".join(str(part) for part in error["loc"]),
                    "issue": error["msg"],
                    "type": error["type"],
                }
                for error in exc.errors()
            ]
            details: dict[str, Any] = {"tool": self.name, "errors": problems}
            if problems:
                details.update(field=problems[0]["field"], issue=problems[0]["issue"])
            raise InvalidInput(f"Invalid arguments for tool {self.name}", details=details) from None


TOOLS: dict[str, Tool[Any, Any]] = {
    tool.name: tool
    for tool in (
        Tool(
            "start_workflow",
            "Start an execution of a stored workflow (pipeline) definition with input_data; "
            "returns the execution id to follow with get_workflow_status.",
            "workflows:execute",
            StartWorkflowArgs,
            WorkflowStarted,
            start_workflow,
            read_only=False,
        ),
        Tool(
            "get_workflow_status",
            "Status, progress, outputs and error of a workflow execution (exe_…), a document "
            "processing run (doc-file_…) or a natural-language command (cmd_…).",
            "workflows:read",
            WorkflowStatusArgs,
            WorkflowStatus,
            get_workflow_status,
        ),
        Tool(
            "search_documents",
            "Semantic search over the tenant's processed documents: the passages that best "
            "match the query, with their file ids, file names and pages.",
            "files:read",
            SearchArgs,
            SearchResults,
            search_documents,
        ),
        Tool(
            "rag_query",
            "Answer a question from the tenant's documents, citing the passages used. Without "
            "a configured chat model the answer is an extract, and its model field says so.",
            "ai:chat",
            RagArgs,
            RagAnswer,
            rag_query,
        ),
        Tool(
            "list_workflows",
            "The tenant's stored workflow definitions (id, name, status, number of steps).",
            "workflows:read",
            ListWorkflowsArgs,
            WorkflowList,
            list_workflows,
        ),
    )
}


def tool_named(name: str) -> Tool[Any, Any]:
    tool = TOOLS.get(name)
    if tool is None:
        raise ToolNotFound(
            f"No tool named {name!r} (available: {', '.join(TOOLS)})", details={"tool": name}
        )
    return tool


async def run_tool(
    db: TenantScope,
    services: McpServices,
    principal: Principal,
    name: str,
    arguments: dict[str, Any],
    *,
    session_id: str | None = None,
    request_id: str | None = None,
) -> BaseModel:
    """Run tool ``name`` for ``principal`` in its tenant (``session_id``: a z2
    session of the caller's, whose use is counted)."""
    tool = tool_named(name)
    if not principal.allows(tool.scope):
        raise Forbidden(f"The tool {name} needs the {tool.scope!r} scope")
    if principal.tenant_id is None:
        raise Forbidden("This credential is not bound to a tenant")
    args = tool.parse(arguments)
    session = None
    if session_id is not None:
        session = await sessions.get_session(db, principal, session_id)
    call = ToolCall(
        db=db,
        services=services,
        tenant_id=principal.tenant_id,
        user_id=principal.user_id,
        request_id=request_id,
    )
    result: BaseModel = await tool.handler(call, args)
    if session is not None:
        await sessions.count_use(db, session, datetime.now(UTC))
    return result
