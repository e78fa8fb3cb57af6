"""auterity's AI surface (bare objects): ``/api/ai/route``, ``/api/models/route``,
``/api/ai/models``, ``/api/models/available`` and ``/api/analytics/costs``."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, StrictBool, StrictFloat, StrictInt

from api.deps import Caller, requires
from api.model_deps import ModelsDep, call_context
from api.schemas.chat import AiRoutePublic, ModelRoutePublic, RouteAlternativePublic
from api.schemas.models import (
    AuterityModelPublic,
    AuterityModelsPublic,
    AvailableModelPublic,
    AvailableModelsPublic,
    CatalogModelPublic,
    CostReportPublic,
    ModelCatalogPublic,
)
from engine.ai import listings, routing, usage_reports
from engine.ai.chat import estimate_tokens
from engine.ai.providers.base import ChatMessage, ChatRequest

router = APIRouter(prefix="/api", tags=["routing (auterity)"])
DEFAULT_MAX_TOKENS = 512


class RoutingPreferences(BaseModel):
    cost_optimization: StrictBool = False
    quality_preference: str = Field(default="balanced", max_length=40)
    budget_limit: StrictFloat | None = Field(default=None, ge=0)


class AiRouteBody(BaseModel):
    prompt: str = Field(min_length=1, max_length=200_000)
    context: str | None = Field(default=None, max_length=200_000)
    max_tokens: StrictInt = Field(default=DEFAULT_MAX_TOKENS, gt=0)
    temperature: StrictFloat = Field(default=0.7, ge=0.0, le=2.0)
    task_type: str | None = Field(default=None, max_length=60)
    capabilities: list[str] = Field(default_factory=list, max_length=20)
    providers: list[str] = Field(default_factory=list, max_length=20)
    routing_preferences: RoutingPreferences = Field(default_factory=RoutingPreferences)
    fallback_model: str | None = Field(default=None, max_length=300)

    def priority(self) -> routing.Priority:
        preference = self.routing_preferences.quality_preference.lower()
        if self.routing_preferences.cost_optimization or preference in ("cost", "low"):
            return "cost"
        if preference in ("performance", "speed", "high", "quality"):
            return "performance"
        return "balanced"


class ModelsRouteBody(BaseModel):
    prompt: str = Field(min_length=1, max_length=200_000)
    task_type: str | None = Field(default=None, max_length=60)
    max_tokens: StrictInt = Field(default=DEFAULT_MAX_TOKENS, gt=0)
    priority: Literal["cost", "performance", "balanced"] = "balanced"
    providers: list[str] = Field(default_factory=list, max_length=20)
    capabilities: list[str] = Field(default_factory=list, max_length=20)
    budget_limit: StrictFloat | None = Field(default=None, ge=0)


def _messages(prompt: str, context: str | None) -> list[ChatMessage]:
    messages = [ChatMessage(role="system", content=context)] if context else []
    return [*messages, ChatMessage(role="user", content=prompt)]


@router.post("/ai/route", response_model=AiRoutePublic, summary="Answer on the model routing picks")
async def create_ai_route(
    request: Request,
    caller: Annotated[Caller, requires("ai:chat")],
    models: ModelsDep,
    body: AiRouteBody,
) -> AiRoutePublic:
    messages = _messages(body.prompt, body.context)
    route = routing.RouteRequest(
        prompt_tokens=sum(estimate_tokens(m.content) + 4 for m in messages),
        max_tokens=body.max_tokens,
        priority=body.priority(),
        capabilities=routing.capabilities_for(body.task_type, body.capabilities),
        budget_limit=body.routing_preferences.budget_limit,
        providers=tuple(body.providers),
    )
    chat = ChatRequest(
        model="", messages=messages, temperature=body.temperature, max_tokens=body.max_tokens
    )
    routed = await routing.route_and_complete(
        models,
        call_context(request, caller, kind="route"),
        route,
        chat,
        fallback_model=body.fallback_model,
    )
    outcome, decision = routed.outcome, routed.decision
    return AiRoutePublic(
        response=outcome.content,
        model_used=outcome.model,
        provider=outcome.provider,
        cost=outcome.cost_usd,
        tokens_used=outcome.total_tokens,
        routing_reason=decision.reason,
        response_time=outcome.latency_ms,
        quality_score=routed.used.quality,
        confidence_score=routed.used.confidence,
        fallback_from=outcome.fallback_from,
        cached=outcome.cached,
        alternatives_considered=len(decision.ranked),
    )


@router.post(
    "/models/route",
    response_model=ModelRoutePublic,
    summary="Which model routing would pick (no call is made)",
)
async def create_models_route(
    caller: Annotated[Caller, requires("models:read")], models: ModelsDep, body: ModelsRouteBody
) -> ModelRoutePublic:
    route = routing.RouteRequest(
        prompt_tokens=estimate_tokens(body.prompt) + 4,
        max_tokens=body.max_tokens,
        priority=body.priority,
        capabilities=routing.capabilities_for(body.task_type, body.capabilities),
        budget_limit=body.budget_limit,
        providers=tuple(body.providers),
    )
    decision = await routing.choose(models, route)
    best = decision.chosen
    return ModelRoutePublic(
        model=best.model,
        provider=best.provider,
        estimated_cost=best.estimated_cost,
        estimated_tokens=route.prompt_tokens + route.max_tokens,
        confidence_score=best.confidence,
        routing_reason=decision.reason,
        alternatives=[
            RouteAlternativePublic(
                model=c.model,
                provider=c.provider,
                estimated_cost=c.estimated_cost,
                latency_ms=c.latency_ms,
            )
            for c in decision.ranked[1:]
        ],
        excluded=decision.excluded,
    )


def _per_token(model: CatalogModelPublic) -> float:
    return round(model.cost_per_1k_input / 1000, 10)


async def _catalog(models: ModelsDep, tenant_id: str) -> ModelCatalogPublic:
    return ModelCatalogPublic.model_validate(await listings.catalog(models, tenant_id))


@router.get(
    "/ai/models",
    response_model=AuterityModelsPublic,
    summary="Models with prices and measured latency (auterity shape)",
)
async def read_auterity_ai_models(
    caller: Annotated[Caller, requires("models:read")], models: ModelsDep
) -> AuterityModelsPublic:
    catalog = await _catalog(models, caller.tenant_id)
    return AuterityModelsPublic(
        models=[
            AuterityModelPublic(
                id=m.id,
                provider=p.name,
                cost_per_token=_per_token(m),
                max_tokens=m.context_window,
                capabilities=m.capabilities,
                quality_score=m.quality_score,
                avg_response_time=m.avg_latency_ms,
            )
            for p in catalog.providers
            for m in p.models
            if m.type == "chat"
        ]
    )


@router.get(
    "/models/available",
    response_model=AvailableModelsPublic,
    summary="Models across all providers (auterity shape)",
)
async def read_available_models(
    caller: Annotated[Caller, requires("models:read")], models: ModelsDep
) -> AvailableModelsPublic:
    catalog = await _catalog(models, caller.tenant_id)
    return AvailableModelsPublic(
        models=[
            AvailableModelPublic(
                id=m.id,
                provider=p.name,
                name=m.name,
                type=m.type,
                context_window=m.context_window,
                cost_per_token=_per_token(m),
                status="available" if p.status == "healthy" else "unavailable",
            )
            for p in catalog.providers
            for m in p.models
        ]
    )


@router.get(
    "/analytics/costs",
    response_model=CostReportPublic,
    summary="Month-to-date model costs, budget and projection",
)
async def read_costs(caller: Annotated[Caller, requires("models:read")]) -> CostReportPublic:
    report = await usage_reports.cost_report(caller.session, caller.tenant_id)
    return CostReportPublic.model_validate(report)
