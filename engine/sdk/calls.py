"""Each API operation as a ``Call``: method, path, body, and how to read the answer.

The async and the sync client send the same calls, so the two never drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from pydantic import BaseModel

from engine.sdk.builder import Pipeline
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
M = TypeVar("M", bound=BaseModel)
Definition = Pipeline | Mapping[str, Any]
HasId = str | Workflow | ExecutionStarted | Execution | Schedule


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    read: Callable[[Any], T]  # the JSON answer (without the envelope) to the result
    json: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


def unwrapped(body: Any) -> Any:
    """``data`` of an ``/api/v1`` envelope; an auterity body as it is."""
    if isinstance(body, dict) and "success" in body and "data" in body:
        return body["data"]
    return body


def _as(model: type[M]) -> Callable[[Any], M]:
    return model.model_validate


def _nothing(body: Any) -> None:
    return None


def _id(item: HasId) -> str:
    value = item if isinstance(item, str) else item.id
    return quote(value, safe="")


def _params(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


# --- workflows ------------------------------------------------------------------------


def _body(definition: Definition) -> dict[str, Any]:
    return definition.to_auterity() if isinstance(definition, Pipeline) else dict(definition)


def _is_graph(body: Mapping[str, Any]) -> bool:
    """z2's shape (``definition.nodes/edges``) rather than auterity's ``steps``."""
    return "definition" in body and "steps" not in body


def create_workflow(definition: Definition) -> Call[Workflow]:
    body = _body(definition)
    path = "/api/v1/workflows" if _is_graph(body) else "/api/workflows"
    return Call("POST", path, _as(Workflow), json=body)


def update_workflow(workflow: HasId, definition: Definition) -> Call[Workflow]:
    body = _body(definition)
    prefix = "/api/v1/workflows" if _is_graph(body) else "/api/workflows"
    return Call("PUT", f"{prefix}/{_id(workflow)}", _as(Workflow), json=body)


def get_workflow(workflow: HasId) -> Call[Workflow]:
    return Call("GET", f"/api/workflows/{_id(workflow)}", _as(Workflow))


def list_workflows(
    *, page: int, limit: int, category: str | None, status: str | None
) -> Call[WorkflowPage]:
    params = _params(page=page, limit=limit, category=category, status=status)
    return Call("GET", "/api/workflows", _as(WorkflowPage), params=params)


def delete_workflow(workflow: HasId) -> Call[None]:
    return Call("DELETE", f"/api/workflows/{_id(workflow)}", _nothing)


def execute(
    workflow: HasId,
    *,
    input_data: Mapping[str, Any] | None,
    priority: str,
    scheduled_at: datetime | None,
    idempotency_key: str | None,
) -> Call[ExecutionStarted]:
    body: dict[str, Any] = {"input_data": dict(input_data or {}), "priority": priority}
    if scheduled_at is not None:
        body["scheduled_at"] = scheduled_at.isoformat()
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    path = f"/api/workflows/{_id(workflow)}/execute"
    return Call("POST", path, _as(ExecutionStarted), json=body, headers=headers)


# --- executions -------------------------------------------------------------------------


def get_execution(execution: HasId) -> Call[Execution]:
    return Call("GET", f"/api/executions/{_id(execution)}", _as(Execution))


def list_executions(
    *, workflow_id: str | None, status: str | None, page: int, limit: int
) -> Call[ExecutionPage]:
    params = _params(workflow_id=workflow_id, status=status, page=page, limit=limit)
    return Call("GET", "/api/executions", _as(ExecutionPage), params=params)


def cancel(execution: HasId) -> Call[Cancelled]:
    return Call("POST", f"/api/executions/{_id(execution)}/cancel", _as(Cancelled))


def approve(
    execution: HasId, step_id: str, *, approved: bool, comment: str | None
) -> Call[Approval]:
    path = f"/api/v1/executions/{_id(execution)}/approvals/{quote(step_id, safe='')}"
    body = {"approved": approved, "comment": comment}
    return Call("POST", path, _as(Approval), json=body)


# --- schedules ----------------------------------------------------------------------------


def create_schedule(
    workflow: HasId,
    *,
    cron: str | None,
    interval_seconds: int | None,
    timezone: str | None,
    input_data: Mapping[str, Any] | None,
    priority: str,
    paused: bool,
    note: str | None,
) -> Call[Schedule]:
    body = {
        "workflow_id": workflow if isinstance(workflow, str) else workflow.id,
        "cron": cron,
        "interval_seconds": interval_seconds,
        "timezone": timezone,
        "input_data": dict(input_data or {}),
        "priority": priority,
        "paused": paused,
        "note": note,
    }
    return Call("POST", "/api/v1/schedules", _as(Schedule), json=body)


def list_schedules(*, workflow_id: str | None, page: int, limit: int) -> Call[SchedulePage]:
    params = _params(workflow_id=workflow_id, page=page, limit=limit)
    return Call("GET", "/api/v1/schedules", _as(SchedulePage), params=params)


def get_schedule(schedule: HasId) -> Call[Schedule]:
    return Call("GET", f"/api/v1/schedules/{_id(schedule)}", _as(Schedule))


def pause_schedule(schedule: HasId, note: str | None) -> Call[Schedule]:
    path = f"/api/v1/schedules/{_id(schedule)}/pause"
    return Call("POST", path, _as(Schedule), json={"note": note})


def resume_schedule(schedule: HasId, note: str | None) -> Call[Schedule]:
    path = f"/api/v1/schedules/{_id(schedule)}/resume"
    return Call("POST", path, _as(Schedule), json={"note": note})


def delete_schedule(schedule: HasId) -> Call[None]:
    return Call("DELETE", f"/api/v1/schedules/{_id(schedule)}", _nothing)
