"""Workflow templates: auterity's ``/api/templates`` (bare bodies) and the same
under the canonical ``/api/v1/templates`` (in the envelope). Instantiating one
creates a workflow of the caller's tenant, answered as auterity's workflow."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from api.deps import Caller, requires
from api.envelope import Envelope, ok
from api.schemas.templates import TemplateInstantiate, TemplatePublic, TemplatesPublic
from api.schemas.workflows import AuterityWorkflowPublic
from engine.pipelines import templates

auterity = APIRouter(prefix="/api/templates", tags=["templates (auterity)"])
v1 = APIRouter(prefix="/api/v1/templates", tags=["templates"])

Reader = Annotated[Caller, requires("workflows:read")]
Writer = Annotated[Caller, requires("workflows:write")]
Category = Annotated[str | None, Query(max_length=100)]


async def _listing(caller: Caller, category: str | None, featured: bool | None) -> TemplatesPublic:
    counts = await templates.usage_counts(caller.db)
    found = templates.list_templates(category=category, featured=featured)
    return TemplatesPublic(templates=[TemplatePublic.of(t, counts.get(t.id, 0)) for t in found])


async def _instantiate(
    caller: Caller, template_id: str, body: TemplateInstantiate
) -> AuterityWorkflowPublic:
    row = await templates.instantiate(
        caller.db,
        template_id,
        name=body.name,
        description=body.description,
        customizations=body.customizations,
        created_by=caller.principal.user_id,
    )
    return AuterityWorkflowPublic.of(row)


@auterity.get("", response_model=TemplatesPublic, summary="List workflow templates (auterity)")
async def read_templates(
    caller: Reader, category: Category = None, featured: bool | None = None
) -> TemplatesPublic:
    return await _listing(caller, category, featured)


@auterity.post(
    "/{template_id}/instantiate",
    status_code=201,
    response_model=AuterityWorkflowPublic,
    summary="Create a workflow from a template, with per-step customizations (auterity)",
)
async def create_workflow_from_template(
    template_id: str, body: TemplateInstantiate, caller: Writer
) -> AuterityWorkflowPublic:
    return await _instantiate(caller, template_id, body)


@v1.get("", response_model=Envelope[TemplatesPublic], summary="List workflow templates")
async def read_templates_v1(
    request: Request, caller: Reader, category: Category = None, featured: bool | None = None
) -> JSONResponse:
    listing = await _listing(caller, category, featured)
    return ok(listing, request_id=request.state.request_id)


@v1.post(
    "/{template_id}/instantiate",
    status_code=201,
    response_model=Envelope[AuterityWorkflowPublic],
    summary="Create a workflow from a template, with per-step customizations",
)
async def create_workflow_from_template_v1(
    request: Request, template_id: str, body: TemplateInstantiate, caller: Writer
) -> JSONResponse:
    created = await _instantiate(caller, template_id, body)
    return ok(created, request_id=request.state.request_id, status_code=201)
