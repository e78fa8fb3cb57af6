"""Workflow definitions as z2 (``definition.nodes/edges``) and auterity (``steps``)
send and read them. Requests keep keys they do not name (they are stored as sent);
the engine's normaliser decides what a step may be."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat

from engine.db.tables import PipelineDefinitionRow
from engine.pipelines import store
from engine.pipelines.definition import MAX_STEPS

Z2Status = Literal["draft", "active", "archived"]
AuterityStatus = Literal["active", "inactive", "archived"]
MAX_EDGES = 10 * MAX_STEPS
# The data categories every step touches (z2 consent): executions need the data
# subject's granted consent for them. Each step may add its own ``data_categories``.
DataCategories = list[str] | None


class Position(BaseModel):
    """Where the editor draws a node (layout only)."""

    x: StrictFloat
    y: StrictFloat


# --- z2: /api/v1/workflows -------------------------------------------------------


class NodeIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str | None = Field(default=None, max_length=100)
    type: str | None = Field(default=None, max_length=40)
    agent_id: str | None = Field(default=None, max_length=40)
    config: dict[str, Any] | None = None
    position: Position | None = None


class EdgeIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    source: str | None = Field(default=None, max_length=100)
    target: str | None = Field(default=None, max_length=100)
    type: str | None = Field(default=None, max_length=40)
    condition: StrictBool | None = None


class GraphIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    nodes: list[NodeIn] = Field(max_length=MAX_STEPS)
    edges: list[EdgeIn] = Field(default_factory=list, max_length=MAX_EDGES)

    def shape(self, data_categories: DataCategories = None) -> store.Shape:
        return store.Shape(self.model_dump(mode="json", exclude_unset=True), data_categories)


class WorkflowCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)
    status: Z2Status = "active"
    definition: GraphIn
    data_categories: DataCategories = Field(default=None, max_length=50)


class WorkflowUpdate(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)
    status: Z2Status | None = None
    definition: GraphIn | None = None
    data_categories: DataCategories = Field(default=None, max_length=50)


class NodePublic(BaseModel):
    id: str
    type: str
    name: str
    agent_id: str | None
    config: dict[str, Any]
    position: Position | None
    data_categories: list[str]


class EdgePublic(BaseModel):
    source: str
    target: str
    type: str
    condition: bool | None


class GraphPublic(BaseModel):
    nodes: list[NodePublic]
    edges: list[EdgePublic]


class WorkflowSummaryPublic(BaseModel):
    """z2's workflow list item (``agents``: the agent ids its nodes use)."""

    id: str
    name: str
    description: str
    agents: list[str]
    status: str
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, row: PipelineDefinitionRow) -> WorkflowSummaryPublic:
        return cls(**_summary(row))


class WorkflowPublic(WorkflowSummaryPublic):
    """One z2 workflow: the list fields, its ``definition`` graph and ``version``."""

    definition: GraphPublic
    version: int
    data_categories: list[str]

    @classmethod
    def of_row(cls, row: PipelineDefinitionRow) -> WorkflowPublic:
        graph = GraphPublic.model_validate(store.graph_view(row))
        return cls(
            **_summary(row),
            definition=graph,
            version=row.version,
            data_categories=store.data_categories_of(row),
        )


class WorkflowsPublic(BaseModel):
    workflows: list[WorkflowSummaryPublic]
    total: int


def _summary(row: PipelineDefinitionRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "agents": store.agent_ids(row),
        "status": row.status,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


# --- auterity: /api/workflows ----------------------------------------------------


class StepIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str | None = Field(default=None, max_length=100)
    type: str | None = Field(default=None, max_length=40)
    name: str | None = Field(default=None, max_length=200)
    config: dict[str, Any] | None = None
    position: Position | None = None
    dependencies: list[str] | None = Field(default=None, max_length=MAX_STEPS)


def steps_shape(steps: list[StepIn], data_categories: DataCategories = None) -> store.Shape:
    return store.Shape(
        [step.model_dump(mode="json", exclude_unset=True) for step in steps], data_categories
    )


class AuterityWorkflowCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)
    category: str | None = Field(default=None, max_length=100)
    status: AuterityStatus = "active"
    steps: list[StepIn] = Field(max_length=MAX_STEPS)
    data_categories: DataCategories = Field(default=None, max_length=50)


class AuterityWorkflowUpdate(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)
    category: str | None = Field(default=None, max_length=100)
    status: AuterityStatus | None = None
    steps: list[StepIn] | None = Field(default=None, max_length=MAX_STEPS)
    data_categories: DataCategories = Field(default=None, max_length=50)


class StepPublic(BaseModel):
    """A step as auterity reads it back: its id (sent, or ``step-N`` by position)
    and the ids it depends on."""

    id: str
    type: str
    name: str
    config: dict[str, Any]
    dependencies: list[str]
    agent_id: str | None
    position: Position | None
    data_categories: list[str]


class AuterityWorkflowPublic(BaseModel):
    id: str
    name: str
    description: str
    status: str
    category: str | None
    steps: list[StepPublic]
    data_categories: list[str]
    created_at: str
    updated_at: str
    created_by: str | None

    @classmethod
    def of(cls, row: PipelineDefinitionRow) -> AuterityWorkflowPublic:
        return cls(
            id=row.id,
            name=row.name,
            description=row.description,
            status=row.status,
            category=row.category,
            steps=[StepPublic.model_validate(step) for step in store.steps_view(row)],
            data_categories=store.data_categories_of(row),
            created_at=row.created_at.isoformat(),
            updated_at=row.updated_at.isoformat(),
            created_by=row.created_by,
        )


class AuterityWorkflowsPublic(BaseModel):
    workflows: list[AuterityWorkflowPublic]
    total: int
    page: int
    limit: int
    has_next: bool
