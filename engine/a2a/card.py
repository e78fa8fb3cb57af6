"""The agent cards.

The card at ``/.well-known/agent-card.json`` is public, and the deployment
serves many tenants, so it describes the deployment only: its two skills are
the kinds of target a task can have (``agent``, ``pipeline``). A caller who
signs in gets the extended card (``GetExtendedAgentCard``, or ``GET
/api/v1/a2a/agent-card``): the same card whose skills are the tenant's own
active agents (``agent:agt_…``) and pipeline definitions (``pipeline:wf_…``).

Both advertise A2A 1.0 and 0.3 on one JSON-RPC endpoint (``POST /a2a``), with
a bearer token or an ``X-API-Key`` header as credentials.
"""

from __future__ import annotations

from typing import Any

from a2a.server.request_handlers.response_helpers import agent_card_to_dict
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentProvider,
    AgentSkill,
    APIKeySecurityScheme,
    HTTPAuthSecurityScheme,
    SecurityRequirement,
    SecurityScheme,
    StringList,
)

from engine import __version__
from engine.a2a.targets import AGENT, PIPELINE, active_agents, active_pipelines
from engine.db.scope import TenantScope

RPC_PATH = "/a2a"
MODES = ["text/plain", "application/json"]
NAME = "Weftworks"
DESCRIPTION = (
    "Workflow orchestration engine for AI work. Each A2A task is a durable "
    "Temporal workflow answered by one of the caller's agents or pipelines; sign "
    "in and read the extended card for the tenant's own skills."
)
TARGETING = (
    " Name the target in the message metadata: skill (agent:<id> or pipeline:<id>), "
    "agent_id or pipeline_id; without one, the tenant's first active agent answers. "
    "metadata.multi_turn keeps the task open for follow-ups (input-required)."
)


def _security() -> tuple[dict[str, SecurityScheme], list[SecurityRequirement]]:
    schemes = {
        "bearer": SecurityScheme(
            http_auth_security_scheme=HTTPAuthSecurityScheme(
                scheme="bearer",
                bearer_format="JWT or znt_ API key",
                description="An access token from /api/v1/auth/login, or an API key",
            )
        ),
        "apiKey": SecurityScheme(
            api_key_security_scheme=APIKeySecurityScheme(
                location="header", name="X-API-Key", description="A znt_ API key"
            )
        ),
    }
    requirements = [
        SecurityRequirement(schemes={"bearer": StringList()}),
        SecurityRequirement(schemes={"apiKey": StringList()}),
    ]
    return schemes, requirements


def _kind_skills() -> list[AgentSkill]:
    return [
        AgentSkill(
            id=AGENT,
            name="Ask an agent",
            description=(
                "One of the tenant's agents answers with its system prompt and model." + TARGETING
            ),
            tags=[AGENT],
            examples=["Summarise the attached notes in three bullet points"],
            input_modes=MODES,
            output_modes=["text/plain"],
        ),
        AgentSkill(
            id=PIPELINE,
            name="Run a pipeline",
            description=(
                "One of the tenant's pipeline definitions runs with the message as input "
                "(its text as {{message}}, its data parts as variables)." + TARGETING
            ),
            tags=[PIPELINE],
            examples=["Run the onboarding pipeline for ada@example.com"],
            input_modes=MODES,
            output_modes=MODES,
        ),
    ]


def build_card(base_url: str, skills: list[AgentSkill] | None = None) -> AgentCard:
    """The deployment's card, served from ``base_url`` (``skills``: the tenant's)."""
    base = base_url.rstrip("/")
    rpc = f"{base}{RPC_PATH}"
    schemes, requirements = _security()
    return AgentCard(
        name=NAME,
        description=DESCRIPTION,
        version=__version__,
        provider=AgentProvider(organization=NAME, url=base),
        documentation_url=f"{base}/docs",
        supported_interfaces=[
            AgentInterface(url=rpc, protocol_binding="JSONRPC", protocol_version="1.0"),
            AgentInterface(url=rpc, protocol_binding="JSONRPC", protocol_version="0.3"),
        ],
        capabilities=AgentCapabilities(
            streaming=True, push_notifications=True, extended_agent_card=True
        ),
        default_input_modes=MODES,
        default_output_modes=MODES,
        skills=skills if skills is not None else _kind_skills(),
        security_schemes=schemes,
        security_requirements=requirements,
    )


async def tenant_skills(db: TenantScope) -> list[AgentSkill]:
    """The tenant's active agents and pipeline definitions as skills."""
    skills = []
    for agent in await active_agents(db):
        capabilities = [str(c) for c in agent.capabilities or []]
        skills.append(
            AgentSkill(
                id=f"{AGENT}:{agent.id}",
                name=agent.name,
                description=agent.description or f"The {agent.type} agent {agent.name}",
                tags=list(dict.fromkeys([AGENT, agent.type, *capabilities])),
                input_modes=MODES,
                output_modes=["text/plain"],
            )
        )
    for row in await active_pipelines(db):
        tags = [PIPELINE] + ([row.category] if row.category else [])
        skills.append(
            AgentSkill(
                id=f"{PIPELINE}:{row.id}",
                name=row.name,
                description=row.description or f"The pipeline {row.name}",
                tags=tags,
                input_modes=MODES,
                output_modes=MODES,
            )
        )
    return skills


async def tenant_card(db: TenantScope, base_url: str) -> AgentCard:
    return build_card(base_url, await tenant_skills(db))


def card_json(card: AgentCard) -> dict[str, Any]:
    """The card as served: 1.0 fields with the 0.3 ones merged in (``url``,
    ``protocolVersion``, ``security``, …), so clients of either version read it."""
    served: dict[str, Any] = agent_card_to_dict(card)
    return served
