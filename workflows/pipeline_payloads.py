"""Payloads of the pipeline activities (declared with their names in workflows.activities).

A step's rendered config and its output travel through history, so outputs
are kept small by the activities (response bodies are capped).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


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


class LoadDefinitionInput(BaseModel):
    tenant_id: str
    definition_id: str


class LoadedDefinition(BaseModel):
    definition_id: str
    name: str
    definition: dict[str, Any]  # a PipelineDefinition, as JSON
    agents: dict[str, AgentSnapshot] = Field(default_factory=dict)
