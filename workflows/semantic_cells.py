"""SemanticCellsWorkflow (``cells-{batch_id}``): partio's process and process/batch.

Many cells fan out over the same activities as documents (chunk on weft-cpu,
embed in batches on weft-ml), not a loop in the API process.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from engine.platform.queues import TaskQueue
    from workflows.activities import ASSEMBLE_CELLS, CHUNK_CELLS, EMBED_CHUNKS
    from workflows.document_payloads import (
        AssembleInput,
        AssembleResult,
        CellsInput,
        DocumentRef,
        EmbeddingSpec,
        EmbedInput,
    )
    from workflows.document_processing import CHUNKS_PER_BATCH, PERMANENT, RETRY, _queue

# A caller waits for these runs: an endpoint that refuses connections or does
# not answer in time (the provider errors, by class name) fails the run at once
# rather than after minutes of retries; other failures get a few quick retries.
CELL_EMBED_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=5),
    maximum_attempts=3,
    non_retryable_error_types=[*PERMANENT, "ProviderUnavailable", "ProviderTimeout"],
)


@workflow.defn
class SemanticCellsWorkflow:
    @workflow.run
    async def run(self, params: CellsInput) -> AssembleResult:
        ref = DocumentRef(tenant_id=params.tenant_id, file_id=f"cells-{params.batch_id}")
        chunked = await CHUNK_CELLS.execute(
            params,
            task_queue=_queue(TaskQueue.CPU),
            start_to_close_timeout=timedelta(minutes=10),
            retry_policy=RETRY,
        )
        # Vectors are stored raw; each cell's own L2Normalization applies when assembling.
        spec = EmbeddingSpec(model=params.model, endpoint_id=params.endpoint_id, normalize=False)
        batches = [
            EMBED_CHUNKS.execute(
                EmbedInput(
                    ref=ref,
                    chunks_key=chunked.chunks_key,
                    start=start,
                    end=min(start + CHUNKS_PER_BATCH, chunked.chunks),
                    embedding=spec,
                    workflow_id=workflow.info().workflow_id,
                ),
                task_queue=_queue(TaskQueue.ML),
                start_to_close_timeout=timedelta(minutes=15),
                heartbeat_timeout=timedelta(seconds=15),
                retry_policy=CELL_EMBED_RETRY,
            )
            for start in range(0, chunked.chunks, CHUNKS_PER_BATCH)
        ]
        embedded = await asyncio.gather(*batches)
        return await ASSEMBLE_CELLS.execute(
            AssembleInput(
                ref=ref,
                cells_key=params.cells_key,
                chunks_key=chunked.chunks_key,
                vectors_keys=[item.vectors_key for item in embedded],
            ),
            task_queue=_queue(TaskQueue.CPU),
            start_to_close_timeout=timedelta(minutes=10),
            retry_policy=RetryPolicy(maximum_attempts=5),
        )
