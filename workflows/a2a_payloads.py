"""Payloads of ``A2ATaskWorkflow`` and of the A2A activities (declared in
workflows.activities), and the pure helpers that build A2A wire dicts.

A2A's own types are protobuf messages; none of them enters a workflow payload.
Messages, tasks and artifacts travel as the dicts ``MessageToDict`` writes for
A2A 1.0 (camelCase keys, enum names such as ``ROLE_USER`` and
``TASK_STATE_WORKING``); ``engine.a2a`` converts them at the edges.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, Field

# The states of a task: the workflow's own, named as A2A 0.3 names them.
TaskStateName = Literal[
    "submitted", "working", "input-required", "completed", "failed", "canceled", "rejected"
]
TERMINAL_STATES = frozenset({"completed", "failed", "canceled", "rejected"})
# A2A 1.0's enum names (``TaskState.TASK_STATE_*``) for each state.
PROTO_STATES: dict[str, str] = {
    "submitted": "TASK_STATE_SUBMITTED",
    "working": "TASK_STATE_WORKING",
    "input-required": "TASK_STATE_INPUT_REQUIRED",
    "completed": "TASK_STATE_COMPLETED",
    "failed": "TASK_STATE_FAILED",
    "canceled": "TASK_STATE_CANCELED",
    "rejected": "TASK_STATE_REJECTED",
}
STATE_OF_PROTO = {proto: state for state, proto in PROTO_STATES.items()}
TargetKind = Literal["agent", "pipeline"]


class A2ATarget(BaseModel):
    """What answers a task: one of the tenant's agents or pipeline definitions."""

    kind: TargetKind
    id: str
    name: str = ""


class A2ATaskInput(BaseModel):
    """The run's input: the task as the API accepted it.

    ``message`` is the first user message (with the task and context ids set).
    ``multi_turn``: after each answer the task waits for the next user message
    (input-required) instead of completing; a follow-up whose metadata says
    ``final`` ends it with that turn's answer. ``input_timeout_seconds`` bounds
    each wait (then the task completes with the last answer).
    """

    task_id: str
    context_id: str
    tenant_id: str
    started_by: str
    target: A2ATarget
    message: dict[str, Any]
    multi_turn: bool = False
    input_timeout_seconds: float = 86_400.0
    max_turns: int = 50


class A2AFollowUp(BaseModel):
    """The next user message of a task that waits for input (the ``message`` update)."""

    message: dict[str, Any]
    final: bool = False


class A2ATaskView(BaseModel):
    """The task as A2A shows it (``task``: a 1.0 ``Task`` dict), its state, and a
    version that grows with every change (streams compare versions)."""

    version: int
    state: TaskStateName
    task: dict[str, Any]


class A2ATurn(BaseModel):
    role: Literal["user", "assistant"]
    text: str


class A2AAgentCall(BaseModel):
    """Ask an agent the conversation so far (its last turn is the user's)."""

    tenant_id: str
    task_id: str
    agent_id: str
    started_by: str
    turn: int
    turns: list[A2ATurn]


class A2APipelineCall(BaseModel):
    """Run a pipeline definition for one user message (an execution per turn)."""

    tenant_id: str
    task_id: str
    definition_id: str
    started_by: str
    turn: int
    text: str
    data: dict[str, Any] = Field(default_factory=dict)


class A2AAnswer(BaseModel):
    """What a target answered: its text, and structured output when it has one."""

    text: str
    data: dict[str, Any] | None = None
    model: str | None = None
    provider: str | None = None
    tokens_used: int = 0
    cost_usd: float = 0.0
    execution_id: str | None = None


class A2ATaskRecord(BaseModel):
    """A change of a task to write to its row, announce and push."""

    tenant_id: str
    task_id: str
    view: A2ATaskView


class RemoteAgentCall(BaseModel):
    """Send one message to a remote A2A agent and wait for its answer.

    ``card_url``: the agent card's URL (or the agent's base URL). The call, its
    card and every URL the card names pass the egress guard under the tenant
    rules. ``idempotency_key`` (e.g. ``{execution_id}:{step_id}``) becomes the
    message id, so a repeated attempt is recognisable to the remote agent;
    an attempt that already got a remote task id resumes that task instead.
    """

    tenant_id: str
    card_url: str
    text: str = ""
    data: dict[str, Any] | None = None
    context_id: str | None = None
    task_id: str | None = None
    timeout_seconds: float = Field(default=120.0, gt=0, le=3600)
    protocol: Literal["auto", "1.0", "0.3"] = "auto"
    idempotency_key: str | None = None


class RemoteResult(BaseModel):
    """A remote agent's answer: its task state (``completed``, ``input-required``,
    …; ``message`` when it answered with a message and no task), the answer's
    text, artifacts and the exchanged messages (1.0 dicts)."""

    state: str
    text: str
    artifacts: list[dict[str, Any]] = Field(default_factory=list)
    task_id: str | None = None
    context_id: str | None = None
    transcript: list[dict[str, Any]] = Field(default_factory=list)
    protocol: str = ""


# --- pure helpers on A2A 1.0 dicts (used by the workflow and by engine.a2a) -------


def parts_text(message: dict[str, Any]) -> str:
    """The text parts of a message (or artifact), one per line."""
    texts = [str(p["text"]) for p in message.get("parts") or [] if "text" in p]
    return "\n".join(texts)


def parts_data(message: dict[str, Any]) -> dict[str, Any]:
    """The data parts of a message merged into one dict (non-dict data under ``data``)."""
    merged: dict[str, Any] = {}
    for part in message.get("parts") or []:
        if "data" not in part:
            continue
        value = part["data"]
        if isinstance(value, dict):
            merged.update(value)
        else:
            merged.setdefault("data", value)
    return merged


def message_input(message: dict[str, Any]) -> str:
    """A user message as text for a model: its text, then its data as JSON."""
    text = parts_text(message)
    data = parts_data(message)
    if data:
        blob = json.dumps(data, ensure_ascii=False, sort_keys=True)
        text = f"{text}\n\n{blob}".strip()
    return text


def agent_message(
    text: str, *, message_id: str, task_id: str, context_id: str, data: dict[str, Any] | None = None
) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"text": text}]
    if data:
        parts.append({"data": data})
    return {
        "messageId": message_id,
        "role": "ROLE_AGENT",
        "parts": parts,
        "taskId": task_id,
        "contextId": context_id,
    }


def answer_artifact(answer: A2AAnswer, *, artifact_id: str, name: str = "answer") -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"text": answer.text}]
    if answer.data:
        parts.append({"data": answer.data})
    artifact: dict[str, Any] = {"artifactId": artifact_id, "name": name, "parts": parts}
    meta = {
        key: value
        for key, value in (
            ("model", answer.model),
            ("provider", answer.provider),
            ("execution_id", answer.execution_id),
        )
        if value
    }
    if meta:
        artifact["metadata"] = meta
    return artifact


def task_dict(
    *,
    task_id: str,
    context_id: str,
    state: str,
    timestamp: str,
    status_message: dict[str, Any] | None = None,
    history: list[dict[str, Any]] | None = None,
    artifacts: list[dict[str, Any]] | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A 1.0 ``Task`` dict."""
    status: dict[str, Any] = {"state": PROTO_STATES[state], "timestamp": timestamp}
    if status_message is not None:
        status["message"] = status_message
    task: dict[str, Any] = {"id": task_id, "contextId": context_id, "status": status}
    if artifacts:
        task["artifacts"] = list(artifacts)
    if history:
        task["history"] = list(history)
    if metadata:
        task["metadata"] = dict(metadata)
    return task
