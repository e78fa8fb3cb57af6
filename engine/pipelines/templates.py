"""Workflow templates (auterity ``/api/templates``): built-in definitions a tenant
copies into a workflow of its own, with per-step customizations.

The templates ship as data (``template_catalog``) and are checked when this
module loads, so a broken template fails at start-up, not at a customer's
first instantiation. An instantiated workflow is an ordinary stored definition
(``source="template"``, the template id kept in ``raw``); ``usage_count`` counts
those rows of the caller's tenant, so it reflects real instantiations.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func

from engine.db.scope import TenantScope
from engine.db.tables import PipelineDefinitionRow
from engine.pipelines import store
from engine.pipelines.definition import InvalidDefinition, from_steps, validate
from engine.pipelines.template_catalog import TEMPLATES
from engine.pipelines.templating import references
from engine.platform.errors import NotFound

SOURCE = "template"


class TemplateNotFound(NotFound):
    """auterity has one code for anything missing."""


class Template(BaseModel):
    """One built-in template: auterity's fields, with ``steps`` in auterity's shape."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    description: str
    category: str
    featured: bool
    steps: list[dict[str, Any]]
    preview_image: str
    rating: float
    created_at: datetime

    def step_ids(self) -> list[str]:
        return [str(step.get("id") or f"step-{n}") for n, step in enumerate(self.steps, 1)]

    def input_variables(self) -> list[str]:
        """The ``input_data`` names its steps read (what an execution must send)."""
        names = [
            ref.root
            for step in self.steps
            for ref in references(step.get("config") or {})
            if ref.step is None and ref.root != "input"
        ]
        return list(dict.fromkeys(names))


def _load() -> dict[str, Template]:
    catalog: dict[str, Template] = {}
    for data in TEMPLATES:
        template = Template.model_validate(data)
        if template.id in catalog:
            raise ValueError(f"duplicate template id {template.id!r}")
        # Agent steps would need the tenant's agents; templates hold none.
        validate(from_steps(template.steps), known_agents=set())
        catalog[template.id] = template
    return catalog


CATALOG = _load()


def list_templates(*, category: str | None = None, featured: bool | None = None) -> list[Template]:
    """The templates, featured first (``featured=True``: only those)."""
    found = [
        t
        for t in CATALOG.values()
        if (category is None or t.category == category)
        and (featured is None or t.featured == featured)
    ]
    return sorted(found, key=lambda t: (not t.featured, t.name))


def get_template(template_id: str) -> Template:
    template = CATALOG.get(template_id)
    if template is None:
        raise TemplateNotFound(f"Template {template_id} not found")
    return template


async def usage_counts(db: TenantScope) -> dict[str, int]:
    """How many workflows the caller's tenant created from each template (deleted
    ones included: each was an instantiation)."""
    template_id = PipelineDefinitionRow.raw["template_id"].as_string()
    query = (
        db.select(PipelineDefinitionRow)
        .with_only_columns(template_id, func.count())
        .where(PipelineDefinitionRow.source == SOURCE)
        .group_by(template_id)
    )
    rows = (await db.session.execute(query)).all()
    return {str(tid): int(count) for tid, count in rows if tid}


def merge_patch(target: Any, patch: Any) -> Any:
    """JSON Merge Patch (RFC 7396): objects merge key by key, ``null`` removes a
    key, and anything else (lists too) replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    merged = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def customized_steps(
    template: Template, customizations: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The template's steps with each customization (keyed by step id, ``step-N``
    for a step without one) merged into that step."""
    ids = template.step_ids()
    for step_id, patch in customizations.items():
        where = f"customizations.{step_id}"
        if step_id not in ids:
            raise InvalidDefinition(
                f"the template has no step {step_id!r}",
                details={"field": where, "reason": "UNKNOWN_STEP", "steps": ids},
            )
        if "id" in patch:
            raise InvalidDefinition(
                "a customization cannot change a step's id (other steps refer to it)",
                details={"field": f"{where}.id", "reason": "INVALID_CUSTOMIZATION"},
            )
    return [
        merge_patch(step, customizations.get(step_id, {}))
        for step_id, step in zip(ids, template.steps, strict=True)
    ]


async def instantiate(
    db: TenantScope,
    template_id: str,
    *,
    name: str | None,
    customizations: Mapping[str, Mapping[str, Any]],
    created_by: str | None,
    description: str | None = None,
) -> PipelineDefinitionRow:
    """A new workflow of the caller's tenant from a template, validated like any
    workflow a client sends."""
    template = get_template(template_id)
    steps = customized_steps(template, customizations)
    shape = store.Shape(steps)
    definition = await store.checked(db, shape)
    row = PipelineDefinitionRow(
        name=name or template.name,
        description=template.description if description is None else description,
        category=template.category,
        status="active",
        source=SOURCE,
        raw={**shape.raw(), "template_id": template.id},
        definition=definition.model_dump(mode="json"),
        version=1,
        created_by=created_by,
    )
    db.add(row)
    await db.session.commit()
    await db.session.refresh(row)
    return row
