"""SemanticCellsWorkflow: chunk the cells, embed the chunks in parallel batches, assemble."""

from __future__ import annotations

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.workflows.fakes import FakeActivities, serve
from workflows.activities import Activity
from workflows.document_payloads import AssembleResult, CellsInput, DocumentRef
from workflows.semantic_cells import SemanticCellsWorkflow

pytestmark = pytest.mark.asyncio

CELLS = CellsInput(
    tenant_id="ten_test",
    batch_id="batch_1",
    cells_key="work/ten_test/cells-batch_1/cells.json",
    endpoint_id="emb_openai",
    model="text-embedding-3-small",
)


async def assemble(
    env: WorkflowEnvironment, fakes: FakeActivities, prefix: str, params: CellsInput
) -> AssembleResult:
    async with serve(env.client, fakes, prefix) as queue:
        return await env.client.execute_workflow(
            SemanticCellsWorkflow.run,
            params,
            id=f"cells-{params.batch_id}-{prefix}",
            task_queue=queue,
        )


async def test_cells_are_chunked_embedded_in_batches_and_assembled_in_order(
    skipping_env: WorkflowEnvironment, prefix: str
) -> None:
    fakes = FakeActivities(chunks=300, cells=4)

    result = await assemble(skipping_env, fakes, prefix, CELLS)

    assert fakes.called(Activity.CHUNK_CELLS) == [CELLS]
    chunks_key = "work/ten_test/cells-batch_1/chunks.json"
    embeds = fakes.called(Activity.EMBED_CHUNKS)
    # The batches run side by side, so they may start in any order.
    assert sorted((e.start, e.end) for e in embeds) == [(0, 128), (128, 256), (256, 300)]
    for embed in embeds:
        assert embed.ref == DocumentRef(tenant_id="ten_test", file_id="cells-batch_1")
        assert embed.chunks_key == chunks_key
        # Each cell normalises (or not) on its own when assembling: vectors stay raw.
        assert (embed.embedding.model, embed.embedding.endpoint_id) == (
            "text-embedding-3-small",
            "emb_openai",
        )
        assert embed.embedding.normalize is False
    [assembly] = fakes.called(Activity.ASSEMBLE_CELLS)
    assert assembly.cells_key == CELLS.cells_key
    assert assembly.chunks_key == chunks_key
    # Vectors in chunk order, whatever order the batches finished in.
    assert assembly.vectors_keys == [
        f"work/ten_test/cells-batch_1/vectors/{start:06d}.npy" for start in (0, 128, 256)
    ]
    assert result == AssembleResult(
        result_key="work/ten_test/cells-batch_1/result.json", cells=4, chunks=300
    )


async def test_cells_without_text_are_assembled_without_embedding(
    skipping_env: WorkflowEnvironment, prefix: str
) -> None:
    fakes = FakeActivities(chunks=0, cells=2)

    result = await assemble(skipping_env, fakes, prefix, CELLS)

    assert fakes.called(Activity.EMBED_CHUNKS) == []
    [assembly] = fakes.called(Activity.ASSEMBLE_CELLS)
    assert assembly.vectors_keys == []
    assert (result.cells, result.chunks) == (2, 0)
