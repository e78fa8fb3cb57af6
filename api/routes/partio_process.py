"""Partio's ``/v1.0/endpoints/{id}/process`` and ``/process/batch``.

The cells go to blob storage and a SemanticCellsWorkflow chunks and embeds
them on the workers; the API waits for the run and answers partio's shapes.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body
from pydantic import Field

from api.deps import Caller, ResourcesDep, TemporalDep, requires
from api.partio import PascalModel
from engine.chunking import ChunkingConfig, Strategy
from engine.errors import InvalidInput
from engine.models import EmbeddingEndpoint
from engine.queues import TaskQueue, queue_name
from engine.storage import cells_prefix
from engine.temporal import run_attributes
from workflows.documents import AssembleResult, CellsInput
from workflows.semantic_cells import SemanticCellsWorkflow

router = APIRouter(prefix="/v1.0/endpoints", tags=["partio"])
MAX_CELLS = 1000


class ChunkingConfiguration(PascalModel):
    strategy: Strategy = Strategy.FIXED_TOKEN_COUNT
    fixed_token_count: int = Field(default=256, ge=16, le=4096)
    overlap_count: int = Field(default=0, ge=0)
    overlap_strategy: str = "SlidingWindow"
    context_prefix: str | None = Field(default=None, max_length=500)


class EmbeddingConfiguration(PascalModel):
    l2_normalization: bool = Field(default=False, alias="L2Normalization")


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
    cells: list[SemanticCellRequest],
    caller: Caller,
    resources: ResourcesDep,
    client: TemporalDep,
) -> list[dict[str, Any]]:
    endpoint = await caller.db.get(EmbeddingEndpoint, endpoint_id, what="endpoint")
    if not endpoint.active:
        raise InvalidInput(f"endpoint {endpoint_id} is inactive")
    if not 1 <= len(cells) <= MAX_CELLS:
        raise InvalidInput(f"send 1 to {MAX_CELLS} cells")
    batch_id = uuid.uuid4().hex
    prefix = cells_prefix(endpoint.tenant_id, batch_id)
    key = f"{prefix}/cells.json"
    await resources.store.put_bytes(key, json.dumps([c.as_cell() for c in cells]).encode())
    try:
        result: AssembleResult = await client.execute_workflow(
            SemanticCellsWorkflow.run,
            CellsInput(
                tenant_id=endpoint.tenant_id,
                batch_id=batch_id,
                cells_key=key,
                endpoint_id=None if endpoint.api_format == "Local" else endpoint.id,
                model=endpoint.model,
            ),
            id=f"cells-{batch_id}",
            task_queue=queue_name(TaskQueue.WORKFLOWS, caller.settings.task_queue_prefix),
            execution_timeout=timedelta(minutes=30),
            search_attributes=run_attributes(
                tenant_id=endpoint.tenant_id,
                kind="semantic_cells",
                started_by=caller.principal.user_id,
                definition_id=endpoint.id,
            ),
            static_summary=f"Process {len(cells)} semantic cell(s) with {endpoint.model}",
        )
        answer: list[dict[str, Any]] = json.loads(
            await resources.store.read_bytes(result.result_key)
        )
    finally:
        await resources.store.delete_prefix(prefix)
    return answer


@router.post("/{endpoint_id}/process", summary="Chunk and embed one semantic cell")
async def process_cell(
    endpoint_id: str,
    body: SemanticCellRequest,
    caller: Annotated[Caller, requires("ai:embeddings")],
    resources: ResourcesDep,
    client: TemporalDep,
) -> dict[str, Any]:
    return (await _process(endpoint_id, [body], caller, resources, client))[0]


@router.post("/{endpoint_id}/process/batch", summary="Chunk and embed many semantic cells")
async def process_cells(
    endpoint_id: str,
    body: Annotated[list[SemanticCellRequest], Body()],
    caller: Annotated[Caller, requires("ai:embeddings")],
    resources: ResourcesDep,
    client: TemporalDep,
) -> list[dict[str, Any]]:
    return await _process(endpoint_id, body, caller, resources, client)
