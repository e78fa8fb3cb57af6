"""Payloads of the pipeline activities (declared with their names in workflows.activities).

A step's rendered config and its output travel through history, so outputs
are kept small by the activities (response bodies are capped).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

# The signal a callback delivers to the run that opened it (``PipelineWorkflow.callback``).
CALLBACK_SIGNAL = "callback"


class AgentSnapshot(BaseModel):
    """An agent as it was when the execution started (later edits do not reach it)."""

    id: str
    name: str
    type: str
    system_prompt: str = ""
    model: str | None = None
    fallback_model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None


class StepCall(BaseModel):
    """One step for an activity: who runs it, and its config with templates filled."""

    execution_id: str
    tenant_id: str
    started_by: str
    step_id: str
    step_type: str
    config: dict[str, Any] = Field(default_factory=dict)
    agent: AgentSnapshot | None = None


class StepOutcome(BaseModel):
    output: Any = None
    tokens_used: int = 0
    cost_usd: float = 0.0
    model: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class StepRecord(BaseModel):
    """What the database keeps of one step once the execution is over."""

    status: str
    output: Any = None
    error: str | None = None
    tokens_used: int = 0
    cost_usd: float = 0.0
    started_at: datetime | None = None
    completed_at: datetime | None = None


class FailedStep(BaseModel):
    """The step whose failure failed the run (``agent.error`` names its agent)."""

    step_id: str
    step_type: str
    agent_id: str | None = None
    code: str
    message: str


class ExecutionRecord(BaseModel):
    execution_id: str
    tenant_id: str
    status: str
    completed_at: datetime
    tokens_used: int = 0
    cost_usd: float = 0.0
    error_code: str | None = None
    error_message: str | None = None
    results: dict[str, StepRecord] = Field(default_factory=dict)
    failed_step: FailedStep | None = None


class LoadDefinitionInput(BaseModel):
    tenant_id: str
    definition_id: str


class LoadedDefinition(BaseModel):
    definition_id: str
    name: str
    definition: dict[str, Any]  # a PipelineDefinition, as JSON
    agents: dict[str, AgentSnapshot] = Field(default_factory=dict)


StepEventKind = Literal["step_completed", "waiting_approval", "waiting_callback"]


class StepEvent(BaseModel):
    """A step finished, or began to wait for a person or a callback."""

    kind: StepEventKind
    step_id: str
    step_name: str
    step_type: str
    completed_steps: int
    total_steps: int
    callback_id: str | None = None


class StepEvents(BaseModel):
    """Step events of one execution, written to the events outbox in one transaction."""

    execution_id: str
    tenant_id: str
    definition_id: str | None = None
    events: list[StepEvent]


class OpenCallbackInput(BaseModel):
    """Open a one-time callback URL for a ``wait_for_callback`` step (and announce it
    to ``notify``, a rendered ``{url, method, headers, body}``, if given)."""

    execution_id: str
    tenant_id: str
    step_id: str
    workflow_id: str  # the run the callback signals
    timeout_seconds: float | None = None
    notify: dict[str, Any] | None = None


class CallbackOpened(BaseModel):
    """The callback as the run may know it: never its secret."""

    callback_id: str
    callback_url: str


class CallbackReceived(BaseModel):
    """What a callback delivers to the waiting run (signal ``callback``)."""

    callback_id: str
    body: Any = None
    message_id: str
    received_at: datetime


# The signal a revoked consent sends to the running executions of its data subject
# (``PipelineWorkflow.consent_revoked``).
CONSENT_REVOKED_SIGNAL = "consent_revoked"


class ConsentRevoked(BaseModel):
    """A consent was revoked: the run's ``categories`` no granted consent covers any
    more (ids and category names only)."""

    consent_id: str
    categories: list[str]


class ConsentCheck(BaseModel):
    """Does the data subject still hold granted consents covering ``categories``?"""

    tenant_id: str
    user_id: str  # the data subject
    categories: list[str]


class ConsentHeld(BaseModel):
    missing: list[str] = Field(default_factory=list)  # empty: the consent holds

    @property
    def held(self) -> bool:
        return not self.missing
