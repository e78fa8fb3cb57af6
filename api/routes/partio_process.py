"""Partio's ``/v1.0/endpoints/{id}/process`` and ``/process/batch``.

The cells go to blob storage and a SemanticCellsWorkflow chunks and embeds
them on the workers; the API waits for the run and answers partio's shapes.
The endpoint must be the caller's tenant's, except for a global administrator,
who may process with any tenant's endpoint (partio: "caller's tenant (non-admin)").
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body
from pydantic import Field, StrictBool, StrictInt

from api.deps import Caller, ResourcesDep, TemporalDep, requires
from api.partio import PascalModel, SemanticCellPublic
from engine.documents import cells
from engine.documents.chunking import ChunkingConfig, Strategy
from engine.platform.errors import InvalidInput

router = APIRouter(prefix="/v1.0/endpoints", tags=["partio"])


class ChunkingConfiguration(PascalModel):
    strategy: Strategy = Strategy.FIXED_TOKEN_COUNT
    fixed_token_count: StrictInt = Field(default=256, ge=16, le=4096)
    overlap_count: StrictInt = Field(default=0, ge=0)
    overlap_strategy: str = "SlidingWindow"
    context_prefix: str | None = Field(default=None, max_length=500)


class EmbeddingConfiguration(PascalModel):
    l2_normalization: StrictBool = Field(default=False, alias="L2Normalization")


class SemanticCellRequest(PascalModel):
    type: Literal["Text"] = "Text"
    text: str = Field(min_length=1, max_length=1_000_000)
    chunking_configuration: ChunkingConfiguration = Field(default_factory=ChunkingConfiguration)
    embedding_configuration: EmbeddingConfiguration = Field(default_factory=EmbeddingConfiguration)
    labels: list[str] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict)

    def as_cell(self) -> dict[str, Any]:
        try:
            chunking = ChunkingConfig(**self.chunking_configuration.model_dump())
        except ValueError as exc:
            raise InvalidInput(str(exc), details={"field": "ChunkingConfiguration"}) from None
        return {
            "text": self.text,
            "chunking": chunking.model_dump(mode="json"),
            "normalize": self.embedding_configuration.l2_normalization,
            "labels": self.labels,
            "tags": self.tags,
        }


async def _process(
    endpoint_id: str,
    requests: list[SemanticCellRequest],
    caller: Caller,
    resources: ResourcesDep,
    client: TemporalDep,
) -> list[SemanticCellPublic]:
    answers = await cells.process_cells(
        caller.db,
        client,
        resources.store,
        caller.settings,
        endpoint_id,
        [cell.as_cell() for cell in requests],
        started_by=caller.principal.user_id,
    )
    return [SemanticCellPublic.model_validate(answer) for answer in answers]


@router.post(
    "/{endpoint_id}/process",
    response_model=SemanticCellPublic,
    summary="Chunk and embed one semantic cell",
)
async def process_cell(
    endpoint_id: str,
    body: SemanticCellRequest,
    caller: Annotated[Caller, requires("ai:embeddings", across_tenants=True)],
    resources: ResourcesDep,
    client: TemporalDep,
) -> SemanticCellPublic:
    return (await _process(endpoint_id, [body], caller, resources, client))[0]


@router.post(
    "/{endpoint_id}/process/batch",
    response_model=list[SemanticCellPublic],
    summary="Chunk and embed many semantic cells",
)
async def process_cells(
    endpoint_id: str,
    body: Annotated[list[SemanticCellRequest], Body()],
    caller: Annotated[Caller, requires("ai:embeddings", across_tenants=True)],
    resources: ResourcesDep,
    client: TemporalDep,
) -> list[SemanticCellPublic]:
    return await _process(endpoint_id, body, caller, resources, client)
