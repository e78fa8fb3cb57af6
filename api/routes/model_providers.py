"""Providers added at run time (``/api/v1/models/providers``), for global
administrators; API keys go in and never come back out."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StrictBool, StrictInt

from api.deps import Caller, requires
from api.envelope import Envelope, ok
from api.model_deps import ModelsDep, require_superuser
from api.schemas.models import ProviderPublic, ProvidersPublic
from engine.ai import provider_admin

router = APIRouter(prefix="/api/v1/models/providers", tags=["models"])


class ProviderCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    kind: Literal["ollama", "openai"]
    base_url: str = Field(min_length=1, max_length=2000)
    api_key: str | None = Field(default=None, max_length=2000)
    models: list[str | dict[str, Any]] = Field(default_factory=list, max_length=500)
    priority: StrictInt = Field(default=100, ge=0, le=1_000_000)
    active: StrictBool = True


class ProviderUpdate(BaseModel):
    kind: Literal["ollama", "openai"] | None = None
    base_url: str | None = Field(default=None, min_length=1, max_length=2000)
    api_key: str | None = Field(default=None, max_length=2000)
    models: list[str | dict[str, Any]] | None = Field(default=None, max_length=500)
    priority: StrictInt | None = Field(default=None, ge=0, le=1_000_000)
    active: StrictBool | None = None


AdminCaller = Annotated[Caller, requires("admin", across_tenants=True)]


@router.get(
    "",
    response_model=Envelope[ProvidersPublic],
    summary="Providers added at run time (never their API keys)",
)
async def read_providers(request: Request, caller: AdminCaller) -> JSONResponse:
    require_superuser(caller)
    data = ProvidersPublic.model_validate(
        {"providers": await provider_admin.list_providers(caller.session)}
    )
    return ok(data, request_id=request.state.request_id)


@router.post("", status_code=201, response_model=Envelope[ProviderPublic], summary="Add a provider")
async def create_provider(
    request: Request, caller: AdminCaller, models: ModelsDep, body: ProviderCreate
) -> JSONResponse:
    require_superuser(caller)
    data = await provider_admin.create_provider(caller.session, caller.settings, body.model_dump())
    models.registry.invalidate()
    return ok(
        ProviderPublic.model_validate(data), request_id=request.state.request_id, status_code=201
    )


@router.put(
    "/{provider_id}",
    response_model=Envelope[ProviderPublic],
    summary='Change a provider (api_key "" removes the key)',
)
async def update_provider(
    request: Request,
    provider_id: str,
    caller: AdminCaller,
    models: ModelsDep,
    body: ProviderUpdate,
) -> JSONResponse:
    require_superuser(caller)
    values = body.model_dump(exclude_unset=True)
    data = await provider_admin.update_provider(
        caller.session, caller.settings, provider_id, values
    )
    models.registry.invalidate()
    return ok(ProviderPublic.model_validate(data), request_id=request.state.request_id)


@router.delete("/{provider_id}", status_code=204, summary="Remove a provider")
async def delete_provider(provider_id: str, caller: AdminCaller, models: ModelsDep) -> Response:
    require_superuser(caller)
    await provider_admin.delete_provider(caller.session, provider_id)
    models.registry.invalidate()
    return Response(status_code=204)
