"""The work of an A2A task's turn (the activities of ``A2ATaskWorkflow`` call these).

An agent answers with one chat call through the model layer (budgets,
breakers, the ledger): its system prompt, then the conversation so far. With
no chat model configured, the local provider answers extractively and says so
in the model name; nothing pretends to be an LLM.

A pipeline answers with one execution of its definition (``run-{execution_id}``,
listed with the tenant's executions), started idempotently per task and turn,
whose outcome is awaited: its last steps' outputs are the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError, CancelledError

from engine.agents.calls import DEFAULT_TEMPERATURE, ensure_served
from engine.agents.service import config_of, get_agent
from engine.ai.chat import complete
from engine.ai.providers.base import ChatMessage, ChatRequest
from engine.ai.runtime import CallContext, ModelRuntime
from engine.db.scope import TenantScope
from engine.pipelines import executions
from engine.pipelines.definition import PipelineDefinition
from engine.pipelines.store import get_definition
from engine.platform.errors import WeftError
from engine.platform.runs import cancel_run
from engine.platform.settings import Settings
from workflows.a2a_payloads import A2AAgentCall, A2AAnswer, A2APipelineCall
from workflows.pipeline import PipelineResult, PipelineWorkflow

HEARTBEAT_SECONDS = 2.0


class PipelineRunFailed(WeftError):
    """The pipeline execution of a turn failed, timed out or was cancelled."""

    retryable = False

    def __init__(self, code: str, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details=details)
        self.code = code


async def answer_with_agent(
    sessions: async_sessionmaker[AsyncSession],
    models: ModelRuntime,
    call: A2AAgentCall,
    *,
    workflow_id: str | None = None,
    run_id: str | None = None,
) -> A2AAnswer:
    """The agent's answer to the conversation ``call.turns``."""
    async with sessions() as session:
        agent = await get_agent(
            TenantScope(session, call.tenant_id, all_tenants=False), call.agent_id
        )
    prefs = config_of(agent).model_preferences
    await ensure_served(models, prefs.primary_model)
    messages = [ChatMessage(role="system", content=agent.system_prompt.strip())]
    if not messages[0].content:
        messages = []
    messages += [ChatMessage(role=turn.role, content=turn.text) for turn in call.turns]
    request = ChatRequest(
        model=prefs.primary_model or "",  # "": the deployment's default model
        messages=messages,
        temperature=DEFAULT_TEMPERATURE if prefs.temperature is None else prefs.temperature,
        max_tokens=prefs.max_tokens,
    )
    ctx = CallContext(
        tenant_id=call.tenant_id,
        user_id=call.started_by,
        kind="agent",
        workflow_id=workflow_id,
        run_id=run_id,
    )
    outcome = await complete(
        models, ctx, request, fallback_model=prefs.fallback_model, use_cache=False
    )
    return A2AAnswer(
        text=outcome.content,
        model=outcome.model,
        provider=outcome.provider,
        tokens_used=outcome.total_tokens,
        cost_usd=outcome.cost_usd,
    )


def final_steps(definition: PipelineDefinition) -> list[str]:
    """The steps nothing depends on (the pipeline's results), in definition order."""
    needed = {dep for step in definition.steps for dep in step.depends_on}
    return [step.id for step in definition.steps if step.id not in needed]


def as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def pipeline_answer(
    definition: PipelineDefinition, result: PipelineResult, execution_id: str
) -> A2AAnswer:
    outputs = result.outputs
    finals = [sid for sid in final_steps(definition) if sid in outputs] or list(outputs)
    if len(finals) == 1:
        text = as_text(outputs[finals[0]])
    else:
        text = "\n".join(f"{sid}: {as_text(outputs[sid])}" for sid in finals)
    return A2AAnswer(
        text=text,
        data={"execution_id": execution_id, "outputs": outputs},
        tokens_used=result.tokens_used,
        cost_usd=result.cost_usd,
        execution_id=execution_id,
    )


async def run_pipeline(
    sessions: async_sessionmaker[AsyncSession],
    client: Client,
    settings: Settings,
    call: A2APipelineCall,
    *,
    heartbeat: Callable[[], None],
) -> A2AAnswer:
    """Execute the definition for this turn (once per task and turn, however often
    this is retried) and wait for the outcome, heartbeating. Cancelled, it
    cancels the execution."""
    input_data = {**call.data, "message": call.text, "text": call.text}
    async with sessions() as session:
        db = TenantScope(session, call.tenant_id, all_tenants=False)
        row = await get_definition(db, call.definition_id)
        definition = PipelineDefinition.model_validate(row.definition)
        execution = await executions.execute(
            db,
            client,
            settings,
            call.definition_id,
            input_data=input_data,
            started_by=call.started_by,
            idempotency_key=f"a2a:{call.task_id}:{call.turn}",
        )
        execution_id, workflow_id = execution.id, execution.workflow_id
    handle = client.get_workflow_handle_for(PipelineWorkflow.run, workflow_id)
    outcome = asyncio.ensure_future(handle.result(rpc_timeout=timedelta(minutes=1)))
    try:
        while True:
            heartbeat()
            done, _ = await asyncio.wait({outcome}, timeout=HEARTBEAT_SECONDS)
            if done:
                break
        result = outcome.result()
    except asyncio.CancelledError:
        outcome.cancel()
        with contextlib.suppress(Exception):
            await asyncio.shield(cancel_run(client, workflow_id))
        raise
    except WorkflowFailureError as exc:
        code, message = _failure(exc)
        raise PipelineRunFailed(
            code, f"the pipeline failed: {message}", details={"execution_id": execution_id}
        ) from None
    return pipeline_answer(definition, result, execution_id)


def _failure(exc: WorkflowFailureError) -> tuple[str, str]:
    cause = exc.cause
    if isinstance(cause, CancelledError):
        return "CANCELLED", "the execution was cancelled"
    if isinstance(cause, ApplicationError):
        return cause.type or "PIPELINE_FAILED", cause.message
    return "PIPELINE_FAILED", str(cause or exc)
