"""Workflow templates as auterity lists them, and the body that instantiates one."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from engine.pipelines.templates import Template

MAX_CUSTOMIZED_STEPS = 100


class TemplateStepPublic(BaseModel):
    """A template step in auterity's shape: no id (it is ``step-N`` by position)."""

    type: str
    name: str
    config: dict[str, Any]
    dependencies: list[str]
    when: dict[str, bool]  # the branch of a condition step this step needs


class TemplatePublic(BaseModel):
    id: str
    name: str
    description: str
    category: str
    featured: bool
    steps: list[TemplateStepPublic]
    preview_image: str
    usage_count: int  # workflows the caller's tenant created from it
    rating: float
    created_at: datetime
    input_variables: list[str]  # the input_data names an execution must send

    @classmethod
    def of(cls, template: Template, usage_count: int) -> TemplatePublic:
        return cls(
            id=template.id,
            name=template.name,
            description=template.description,
            category=template.category,
            featured=template.featured,
            steps=[
                TemplateStepPublic(
                    type=str(step["type"]),
                    name=str(step.get("name") or ""),
                    config=dict(step.get("config") or {}),
                    dependencies=list(step.get("dependencies") or []),
                    when=dict(step.get("when") or {}),
                )
                for step in template.steps
            ],
            preview_image=template.preview_image,
            usage_count=usage_count,
            rating=template.rating,
            created_at=template.created_at,
            input_variables=template.input_variables(),
        )


class TemplatesPublic(BaseModel):
    templates: list[TemplatePublic]


class TemplateInstantiate(BaseModel):
    """``customizations``: per step id (``step-1``, …), the keys to merge into that
    step (JSON Merge Patch: objects merge, ``null`` removes a key)."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)
    customizations: dict[str, dict[str, Any]] = Field(
        default_factory=dict, max_length=MAX_CUSTOMIZED_STEPS
    )
