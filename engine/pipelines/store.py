"""Stored workflow definitions: create, list, read, update, soft delete.

A definition arrives as z2's graph (``definition.nodes/edges``, source
``graph``) or auterity's ``steps`` (source ``steps``). What the client sent is
kept in ``raw``; the normalised ``PipelineDefinition`` that runs is kept in
``definition``, after validation against the tenant's agents. Each seed reads
back its own shape (``graph_view``, ``steps_view``), whichever shape wrote it.
A deleted definition is gone for every reader: it stays only for the
executions that ran it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import ValidationError
from sqlalchemy import func, select

from engine.db.scope import TenantScope
from engine.db.tables import Agent, PipelineDefinitionRow
from engine.pipelines.definition import (
    InvalidDefinition,
    PipelineDefinition,
    from_graph,
    from_steps,
    validate,
)
from engine.platform.errors import NotFound

Source = Literal["graph", "steps"]
MAX_PAGE_SIZE = 100


class WorkflowNotFound(NotFound):
    code = "WORKFLOW_NOT_FOUND"


@dataclass(frozen=True)
class Shape:
    """A definition as one seed sends it: z2's graph object (``definition`` with
    ``nodes`` and ``edges``) or auterity's list of ``steps``."""

    body: Mapping[str, Any] | Sequence[Mapping[str, Any]]
    # The definition's data categories when sent beside the graph or the steps
    # (z2 may also send them inside ``definition``).
    data_categories: Sequence[str] | None = None

    @property
    def source(self) -> Source:
        return "graph" if isinstance(self.body, Mapping) else "steps"

    def raw(self) -> dict[str, Any]:
        extra = {}
        if self.data_categories is not None:
            extra["data_categories"] = list(self.data_categories)
        if isinstance(self.body, Mapping):
            return {"definition": dict(self.body), **extra}
        return {"steps": [dict(step) for step in self.body], **extra}

    @classmethod
    def of_raw(cls, raw: Mapping[str, Any]) -> Shape:
        """The shape a stored definition was written with (``raw``)."""
        body = raw["definition"] if "definition" in raw else raw.get("steps") or []
        return cls(body, raw.get("data_categories"))


@dataclass(frozen=True)
class DefinitionPage:
    rows: list[PipelineDefinitionRow]
    total: int
    page: int
    limit: int | None  # None: every row

    @property
    def has_next(self) -> bool:
        return self.limit is not None and self.page * self.limit < self.total


def normalise(shape: Shape) -> PipelineDefinition:
    """The definition model of what a client sent (``InvalidDefinition`` if it cannot be one)."""
    body = shape.body
    options: dict[str, Any] = {}
    if shape.data_categories is not None:
        options["data_categories"] = list(shape.data_categories)
    try:
        if isinstance(body, Mapping):
            return from_graph(body, **options)
        return from_steps(body, **options)
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]), "issue": e["msg"]} for e in exc.errors()
        ]
        raise InvalidDefinition(
            "a step is not valid: " + "; ".join(f"{e['field']}: {e['issue']}" for e in errors),
            details={"reason": "INVALID_STEP", "errors": errors},
        ) from None


async def known_agents(db: TenantScope, definition: PipelineDefinition) -> set[str]:
    """The agents the definition names that exist in the caller's tenant."""
    ids = definition.agent_ids()
    if not ids:
        return set()
    query = db.select(Agent).with_only_columns(Agent.id).where(Agent.id.in_(ids))
    return set(await db.session.scalars(query))


async def checked(db: TenantScope, shape: Shape) -> PipelineDefinition:
    definition = normalise(shape)
    validate(definition, known_agents=await known_agents(db, definition))
    return definition


async def create_definition(
    db: TenantScope,
    shape: Shape,
    *,
    name: str,
    description: str | None = None,
    category: str | None = None,
    status: str = "active",
    created_by: str | None = None,
) -> PipelineDefinitionRow:
    """Validate and store a new definition of the caller's tenant."""
    definition = await checked(db, shape)
    row = PipelineDefinitionRow(
        name=name,
        description=description or "",
        category=category,
        status=status,
        source=shape.source,
        raw=shape.raw(),
        definition=definition.model_dump(mode="json"),
        version=1,
        created_by=created_by,
    )
    db.add(row)
    await db.session.commit()
    await db.session.refresh(row)
    return row


async def get_definition(db: TenantScope, definition_id: str) -> PipelineDefinitionRow:
    row = await db.find(PipelineDefinitionRow, definition_id)
    if row is None or row.deleted_at is not None:
        raise WorkflowNotFound(f"Workflow {definition_id} not found")
    return row


async def list_definitions(
    db: TenantScope,
    *,
    status: str | None = None,
    category: str | None = None,
    page: int = 1,
    limit: int | None = None,
) -> DefinitionPage:
    """The tenant's definitions, newest first: one page of ``limit``, or all of them."""
    query = db.select(PipelineDefinitionRow).where(PipelineDefinitionRow.deleted_at.is_(None))
    if status:
        query = query.where(PipelineDefinitionRow.status == status)
    if category:
        query = query.where(PipelineDefinitionRow.category == category)
    total = int(await db.session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    query = query.order_by(PipelineDefinitionRow.created_at.desc(), PipelineDefinitionRow.id.desc())
    page = max(page, 1)
    if limit is not None:
        limit = min(max(limit, 1), MAX_PAGE_SIZE)
        query = query.limit(limit).offset((page - 1) * limit)
    return DefinitionPage(list(await db.session.scalars(query)), total, page, limit)


async def update_definition(
    db: TenantScope,
    definition_id: str,
    *,
    shape: Shape | None = None,
    name: str | None = None,
    description: str | None = None,
    category: str | None = None,
    status: str | None = None,
    data_categories: Sequence[str] | None = None,
) -> PipelineDefinitionRow:
    """Change what is given (``None`` keeps a field); a new shape is normalised and
    validated like a new definition. Every update is a new ``version``.
    ``data_categories`` alone re-declares the stored shape's categories."""
    row = await get_definition(db, definition_id)
    if shape is None and data_categories is not None:
        shape = Shape.of_raw(row.raw)
    if shape is not None:  # categories sent beside the steps: None keeps the stored ones
        if data_categories is None:
            data_categories = shape.data_categories
        inside = isinstance(shape.body, Mapping) and "data_categories" in shape.body
        if data_categories is None and not inside:
            data_categories = row.raw.get("data_categories")
        shape = Shape(shape.body, data_categories)
    if shape is not None:
        definition = await checked(db, shape)
        row.source, row.raw = shape.source, shape.raw()
        row.definition = definition.model_dump(mode="json")
    if name is not None:
        row.name = name
    if description is not None:
        row.description = description
    if category is not None:
        row.category = category
    if status is not None:
        row.status = status
    row.version += 1
    await db.session.commit()
    await db.session.refresh(row)
    return row


async def delete_definition(db: TenantScope, definition_id: str) -> None:
    """Soft delete: the row stays for its executions, and is 404 for everyone."""
    row = await get_definition(db, definition_id)
    row.deleted_at = datetime.now(UTC)
    await db.session.commit()


# --- each seed's view of a stored definition ----------------------------------


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _position(value: Any) -> dict[str, float] | None:
    """An editor position ``{x, y}``; anything else is no position."""
    if isinstance(value, Mapping):
        x, y = _number(value.get("x")), _number(value.get("y"))
        if x is not None and y is not None:
            return {"x": x, "y": y}
    return None


def _condition(edge: Mapping[str, Any]) -> bool | None:
    value = edge.get("condition")
    return value if isinstance(value, bool) else None


def _sent(row: PipelineDefinitionRow, source: Source) -> list[Mapping[str, Any]]:
    """The nodes or steps as the client sent them, when it sent this shape."""
    if row.source != source:
        return []
    if source == "graph":
        items = (row.raw.get("definition") or {}).get("nodes")
    else:
        items = row.raw.get("steps")
    return [item for item in items or [] if isinstance(item, Mapping)]


def agent_ids(row: PipelineDefinitionRow) -> list[str]:
    """The agents the definition uses, in step order."""
    steps = PipelineDefinition.model_validate(row.definition).steps
    return list(dict.fromkeys(step.agent_id for step in steps if step.agent_id))


def steps_view(row: PipelineDefinitionRow) -> list[dict[str, Any]]:
    """auterity's ``steps``: each with its id (sent or ``step-N``) and ``dependencies``."""
    definition = PipelineDefinition.model_validate(row.definition)
    sent = _sent(row, "steps") or _sent(row, "graph")
    return [
        {
            "id": step.id,
            "type": step.type.value,
            "name": step.name,
            "config": step.config,
            "dependencies": list(step.depends_on),
            "agent_id": step.agent_id,
            "position": _position(sent[index].get("position")) if index < len(sent) else None,
            "data_categories": list(step.data_categories),
        }
        for index, step in enumerate(definition.steps)
    ]


def data_categories_of(row: PipelineDefinitionRow) -> list[str]:
    """The categories the definition declares for every step (each step may add its own)."""
    return list(PipelineDefinition.model_validate(row.definition).data_categories)


def graph_view(row: PipelineDefinitionRow) -> dict[str, Any]:
    """z2's ``definition``: ``nodes`` and ``edges`` (``data_flow`` unless sent otherwise)."""
    definition = PipelineDefinition.model_validate(row.definition)
    sent = _sent(row, "graph") or _sent(row, "steps")
    nodes = [
        {
            "id": step.id,
            "type": step.type.value,
            "name": step.name,
            "agent_id": step.agent_id,
            "config": step.config,
            "position": _position(sent[index].get("position")) if index < len(sent) else None,
            "data_categories": list(step.data_categories),
        }
        for index, step in enumerate(definition.steps)
    ]
    if row.source == "graph":  # the edges as sent, in their order
        sent_edges = (row.raw.get("definition") or {}).get("edges") or []
        edges = [
            {
                "source": str(edge.get("source")),
                "target": str(edge.get("target")),
                "type": str(edge.get("type") or "data_flow"),
                "condition": _condition(edge),
            }
            for edge in sent_edges
            if isinstance(edge, Mapping)
        ]
    else:
        edges = [
            {
                "source": parent,
                "target": step.id,
                "type": "data_flow",
                "condition": step.when.get(parent),
            }
            for step in definition.steps
            for parent in step.depends_on
        ]
    return {"nodes": nodes, "edges": edges}
