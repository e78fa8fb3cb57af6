"""Calling an agent directly (z2's ``/agents/{id}/test``, sutazai's
``/agents/{id}/invoke``): one chat call with the agent's system prompt and model
preferences, through the model layer (budgets, breakers, the ledger), falling
back to the agent's ``fallback_model`` when its primary provider fails.

A model the agent names must be the one that answers (or its named fallback):
where no provider offers it, the call is ``MODEL_NOT_AVAILABLE``, never an
answer from the extractive local provider standing in for it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.agents.service import config_of, get_agent
from engine.ai.chat import complete
from engine.ai.providers.base import ChatMessage, ChatRequest, ModelNotAvailable
from engine.ai.providers.local_chat import is_extractive_model
from engine.ai.runtime import CallContext, ModelRuntime
from engine.db.scope import TenantScope
from engine.db.tables import Agent

DEFAULT_TEMPERATURE = 0.7


@dataclass(frozen=True)
class AgentReply:
    agent_id: str
    output: str
    model: str
    provider: str
    execution_time_ms: int
    tokens_used: int
    cost_usd: float
    fallback_from: str | None


def messages_for(agent: Agent, text: str, context: Mapping[str, Any]) -> list[ChatMessage]:
    """The agent's system prompt (with the caller's ``context``, if any), then the input."""
    system = agent.system_prompt.strip()
    if context:
        facts = json.dumps(context, ensure_ascii=False, indent=2, default=str)
        system = f"{system}\n\nContext:\n{facts}".strip()
    messages = [ChatMessage(role="system", content=system)] if system else []
    return [*messages, ChatMessage(role="user", content=text)]


async def ensure_served(rt: ModelRuntime, model: str | None) -> None:
    """Refuse a named model that only the extractive local provider would answer."""
    if not model or is_extractive_model(model):
        return
    target = await rt.registry.resolve(model)  # ModelNotAvailable when nobody offers it
    if is_extractive_model(target.model):
        raise ModelNotAvailable(
            f"No configured provider offers model {model!r}", details={"model": model}
        )


async def call_agent(
    db: TenantScope,
    rt: ModelRuntime,
    ctx: CallContext,
    agent_id: str,
    *,
    text: str,
    context: Mapping[str, Any] | None = None,
) -> AgentReply:
    """Ask one of the tenant's agents ``text``; its reply, time, tokens and cost.

    Args:
        ctx: who the call is for; its ``kind`` labels the ledger row.
        context: facts the agent is given beside its system prompt.
    """
    agent = await get_agent(db, agent_id)
    config = config_of(agent)
    prefs = config.model_preferences
    await ensure_served(rt, prefs.primary_model)
    request = ChatRequest(
        model=prefs.primary_model or "",  # "": the deployment's default model
        messages=messages_for(agent, text, context or {}),
        temperature=DEFAULT_TEMPERATURE if prefs.temperature is None else prefs.temperature,
        max_tokens=prefs.max_tokens,
    )
    started = time.perf_counter()
    # A test or an invocation must reach the model: no cached answer.
    outcome = await complete(rt, ctx, request, fallback_model=prefs.fallback_model, use_cache=False)
    return AgentReply(
        agent_id=agent.id,
        output=outcome.content,
        model=outcome.model,
        provider=outcome.provider,
        execution_time_ms=round((time.perf_counter() - started) * 1000),
        tokens_used=outcome.total_tokens,
        cost_usd=outcome.cost_usd,
        fallback_from=outcome.fallback_from,
    )
