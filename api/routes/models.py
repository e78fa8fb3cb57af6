"""Model management: zentoria ``/ai/models*``, z2 ``/models``, ``/models/test``,
``/models/usage``, sutazai ``/models/pull``, ``/models/{model}``,
``/models/{model}/info``, the tenant's budget, and the circuit breakers."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    model_validator,
)
from starlette.convertors import PathConvertor, register_url_convertor

from api.deps import Caller, TemporalDep, requires
from api.envelope import Envelope, ok
from api.model_deps import ModelsDep, call_context, require_superuser
from api.schemas.chat import ModelTestPublic
from api.schemas.models import (
    BudgetPublic,
    CircuitBreakersPublic,
    InstalledModelsPublic,
    ModelCatalogPublic,
    ModelDeletedPublic,
    ModelInfoPublic,
    PullProgressPublic,
    PullStartedPublic,
    UsageSummaryPublic,
)
from engine.ai import listings, pulls, usage_reports
from engine.ai.chat import complete
from engine.ai.providers.base import ChatMessage, ChatRequest

router = APIRouter(prefix="/api/v1", tags=["models"])


def model_name_convertor(*reserved: str) -> PathConvertor:
    """A model name (it may hold "/") that is not one of the other routes' paths.

    ``DELETE /models/{name:path}`` matched every path under ``/models/``, so
    ``DELETE /models/usage`` deleted a model named "usage" instead of answering
    405 with ``Allow: GET``. The names of the sibling routes (``reserved``, and
    anything under them) and names ending in ``/info`` are not model names here.
    """
    taken = "|".join(re.escape(name) for name in reserved)

    class ModelName(PathConvertor):
        regex = rf"(?!(?:{taken})(?:/|$))(?!.*/info$)[^/].*"

    return ModelName()


# The paths under /api/v1/models/ and /api/v1/ai/models/ that other routes serve.
register_url_convertor(
    "model_name", model_name_convertor("budget", "providers", "pull", "test", "usage")
)
register_url_convertor("ai_model_name", model_name_convertor("pull"))


class PullBody(BaseModel):
    """zentoria sends ``name``, sutazai ``model``."""

    # One of the two is required (``_named``), as the schema says.
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": [key], "properties": {key: {"type": "string"}}}
                for key in ("name", "model")
            ]
        }
    )

    name: str | None = Field(default=None, min_length=1, max_length=300)
    model: str | None = Field(default=None, min_length=1, max_length=300)
    provider: str | None = Field(default=None, max_length=100)

    @model_validator(mode="after")
    def _named(self) -> PullBody:
        if not (self.name or self.model):
            raise ValueError("name (or model) is required")
        return self

    @property
    def model_name(self) -> str:
        return str(self.name or self.model)


class TestParameters(BaseModel):
    temperature: StrictFloat = Field(default=0.7, ge=0.0, le=2.0)
    max_tokens: StrictInt | None = Field(default=None, gt=0)


class TestBody(BaseModel):
    model: str = Field(min_length=1, max_length=300)
    prompt: str = Field(min_length=1, max_length=200_000)
    parameters: TestParameters = Field(default_factory=TestParameters)


class BudgetBody(BaseModel):
    monthly_limit_usd: StrictFloat | None = Field(ge=0)
    hard_limit: StrictBool = True


@router.get(
    "/ai/models",
    response_model=Envelope[InstalledModelsPublic],
    summary="Models the providers have (name, size, digest)",
)
async def read_ai_models(
    request: Request, caller: Annotated[Caller, requires("models:read")], models: ModelsDep
) -> JSONResponse:
    data = InstalledModelsPublic.model_validate({"models": await listings.installed(models)})
    return ok(data, request_id=request.state.request_id)


@router.post(
    "/ai/models/pull",
    status_code=202,
    response_model=Envelope[PullStartedPublic],
    summary="Pull a model (ModelPullWorkflow)",
)
@router.post(
    "/models/pull",
    status_code=202,
    response_model=Envelope[PullStartedPublic],
    summary="Pull a model (sutazai shape)",
)
async def create_model_pull(
    request: Request,
    caller: Annotated[Caller, requires("models:write", across_tenants=True)],
    models: ModelsDep,
    client: TemporalDep,
    body: PullBody,
) -> JSONResponse:
    require_superuser(caller)
    data = await pulls.start_pull(
        models,
        client,
        caller.settings,
        model=body.model_name,
        provider=body.provider,
        tenant_id=caller.principal.tenant_id,
        started_by=caller.principal.user_id,
    )
    return ok(
        PullStartedPublic.model_validate(data),
        request_id=request.state.request_id,
        status_code=202,
    )


@router.get(
    "/ai/models/pull/{workflow_id}",
    response_model=Envelope[PullProgressPublic],
    summary="Progress of a model pull",
)
async def read_model_pull(
    request: Request,
    workflow_id: str,
    caller: Annotated[Caller, requires("models:read", across_tenants=True)],
    client: TemporalDep,
    models: ModelsDep,
) -> JSONResponse:
    data = await pulls.read_pull(models, client, workflow_id)
    return ok(PullProgressPublic.model_validate(data), request_id=request.state.request_id)


@router.delete(
    "/ai/models/{name:ai_model_name}",
    response_model=Envelope[ModelDeletedPublic],
    summary="Delete a model from its provider",
)
@router.delete(
    "/models/{name:model_name}",
    response_model=Envelope[ModelDeletedPublic],
    summary="Delete a model (sutazai shape)",
)
async def delete_ai_model(
    request: Request,
    name: str,
    caller: Annotated[Caller, requires("models:write", across_tenants=True)],
    models: ModelsDep,
) -> JSONResponse:
    require_superuser(caller)
    deleted = await listings.delete_model(models, name)
    return ok(ModelDeletedPublic.model_validate(deleted), request_id=request.state.request_id)


@router.get(
    "/models",
    response_model=Envelope[ModelCatalogPublic],
    summary="Providers and models (z2 and sutazai shapes)",
)
async def read_models(
    request: Request, caller: Annotated[Caller, requires("models:read")], models: ModelsDep
) -> JSONResponse:
    data = await listings.catalog(models, caller.tenant_id)
    return ok(ModelCatalogPublic.model_validate(data), request_id=request.state.request_id)


@router.get(
    "/models/usage",
    response_model=Envelope[UsageSummaryPublic],
    summary="Model usage by model, provider or user",
)
async def read_model_usage(
    request: Request,
    caller: Annotated[Caller, requires("models:read")],
    timeframe: Annotated[Literal["1h", "24h", "7d", "30d"], Query()] = "24h",
    group_by: Annotated[Literal["model", "provider", "user"], Query()] = "model",
) -> JSONResponse:
    data = await usage_reports.usage_summary(
        caller.session, caller.tenant_id, timeframe=timeframe, group_by=group_by
    )
    # Each group carries only the key group_by names: unset keys stay out.
    summary = UsageSummaryPublic.model_validate(data).model_dump(mode="json", exclude_unset=True)
    return ok(summary, request_id=request.state.request_id)


@router.get(
    "/models/budget",
    response_model=Envelope[BudgetPublic],
    summary="The tenant's monthly model budget",
)
async def read_budget(
    request: Request, caller: Annotated[Caller, requires("models:read")]
) -> JSONResponse:
    data = await usage_reports.read_budget(caller.session, caller.tenant_id)
    return ok(BudgetPublic.model_validate(data), request_id=request.state.request_id)


@router.put(
    "/models/budget",
    response_model=Envelope[BudgetPublic],
    summary="Set the tenant's monthly model budget (tenant admins)",
)
async def update_budget(
    request: Request,
    caller: Annotated[Caller, requires("admin")],
    models: ModelsDep,
    body: BudgetBody,
) -> JSONResponse:
    data = await usage_reports.set_budget(
        caller.session, caller.tenant_id, body.monthly_limit_usd, body.hard_limit
    )
    models.forget_budget(caller.tenant_id)
    return ok(BudgetPublic.model_validate(data), request_id=request.state.request_id)


@router.post(
    "/models/test", response_model=Envelope[ModelTestPublic], summary="Try a model with a prompt"
)
async def create_model_test(
    request: Request,
    caller: Annotated[Caller, requires("ai:chat")],
    models: ModelsDep,
    body: TestBody,
) -> JSONResponse:
    ctx = call_context(request, caller, kind="test")
    chat = ChatRequest(
        model=body.model,
        messages=[ChatMessage(role="user", content=body.prompt)],
        temperature=body.parameters.temperature,
        max_tokens=body.parameters.max_tokens,
    )
    outcome = await complete(models, ctx, chat, use_cache=False)
    return ok(ModelTestPublic.of(outcome, success=True), request_id=ctx.request_id)


@router.get(
    "/models/{model:path}/info",
    response_model=Envelope[ModelInfoPublic],
    summary="What is known about one model",
)
async def read_model_info(
    request: Request,
    model: str,
    caller: Annotated[Caller, requires("models:read")],
    models: ModelsDep,
) -> JSONResponse:
    info = await listings.model_info(models, model)
    return ok(ModelInfoPublic.model_validate(info), request_id=request.state.request_id)


@router.get(
    "/health/circuit-breakers",
    response_model=Envelope[CircuitBreakersPublic],
    summary="Circuit breaker of each model provider",
)
async def read_circuit_breakers(
    request: Request, caller: Annotated[Caller, requires("models:read")], models: ModelsDep
) -> JSONResponse:
    names = [entry.name for entry in await models.registry.entries() if entry.kind != "local"]
    breakers = models.breakers.snapshot(names)
    data = CircuitBreakersPublic.model_validate(
        {
            "circuit_breakers": breakers,
            "open": [n for n, b in breakers.items() if b["state"] == "open"],
        }
    )
    return ok(data, request_id=request.state.request_id)
