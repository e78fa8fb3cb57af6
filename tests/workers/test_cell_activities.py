"""Partio's semantic-cell activities on a real local blob store."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from temporalio.testing import ActivityEnvironment

from engine.storage.base import cells_prefix
from engine.storage.local import LocalBlobStore
from workers.activities.cells import CellActivities
from workflows.document_payloads import AssembleInput, CellsInput, DocumentRef

pytestmark = pytest.mark.asyncio

TENANT, BATCH = "ten_cells", "batch_1"
WORK = cells_prefix(TENANT, BATCH)


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


def cell(text: str, *, normalize: bool, tokens: int = 256) -> dict[str, Any]:
    return {
        "text": text,
        "labels": ["label-a"],
        "tags": {"source": "test"},
        "normalize": normalize,
        "chunking": {"strategy": "FixedTokenCount", "fixed_token_count": tokens,
                     "overlap_count": 0},
    }  # fmt: skip


async def put_json(store: LocalBlobStore, key: str, value: object) -> str:
    await store.put_bytes(key, json.dumps(value).encode())
    return key


async def put_vectors(store: LocalBlobStore, key: str, rows: list[list[float]]) -> str:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(rows, dtype=np.float32))
    await store.put_bytes(key, buffer.getvalue())
    return key


async def test_chunk_cells_chunks_each_cell_by_its_own_configuration(
    store: LocalBlobStore, activity_env: ActivityEnvironment
) -> None:
    long_text = "The kettle factory in Bergen ships copper kettles to hotels. " * 6
    cells = [cell(long_text, normalize=True, tokens=16), cell("A short cell.", normalize=False)]
    cells_key = await put_json(store, f"{WORK}/cells.json", cells)
    params = CellsInput(
        tenant_id=TENANT, batch_id=BATCH, cells_key=cells_key, endpoint_id=None, model="local"
    )

    result = await activity_env.run(CellActivities(store).chunk_cells, params)

    chunks = json.loads(await store.read_bytes(result.chunks_key))
    assert result.chunks_key == f"{WORK}/chunks.json"
    assert result.chunks == len(chunks)
    assert [chunk["index"] for chunk in chunks] == list(range(len(chunks)))
    # The first cell is cut into 16-token pieces; the short one stays whole.
    first = [chunk for chunk in chunks if chunk["cell"] == 0]
    assert len(first) > 1 and all(chunk["tokens"] <= 16 for chunk in first)
    assert [chunk["text"] for chunk in chunks if chunk["cell"] == 1] == ["A short cell."]


async def test_assemble_cells_answers_every_cell_with_its_chunks_and_vectors(
    store: LocalBlobStore, activity_env: ActivityEnvironment
) -> None:
    cells = [cell("first cell", normalize=True), cell("second cell", normalize=False)]
    chunks = [
        {"index": 0, "cell": 0, "text": "first cell", "tokens": 2},
        {"index": 1, "cell": 1, "text": "second", "tokens": 1},
        {"index": 2, "cell": 1, "text": "cell", "tokens": 1},
    ]
    params = AssembleInput(
        ref=DocumentRef(tenant_id=TENANT, file_id=f"cells-{BATCH}"),
        cells_key=await put_json(store, f"{WORK}/cells.json", cells),
        chunks_key=await put_json(store, f"{WORK}/chunks.json", chunks),
        vectors_keys=[  # two embed batches, in chunk order
            await put_vectors(store, f"{WORK}/vectors/000000.npy", [[3, 4], [3, 4]]),
            await put_vectors(store, f"{WORK}/vectors/000002.npy", [[0, 2]]),
        ],
    )

    result = await activity_env.run(CellActivities(store).assemble_cells, params)

    assert (result.cells, result.chunks) == (2, 3)
    answer = json.loads(await store.read_bytes(result.result_key))
    assert answer == [
        {"Text": "first cell", "Chunks": [
            # This cell asked for L2 normalisation.
            {"Text": "first cell", "Labels": ["label-a"], "Tags": {"source": "test"},
             "Embeddings": [0.6, 0.8]},
        ]},
        {"Text": "second cell", "Chunks": [
            {"Text": "second", "Labels": ["label-a"], "Tags": {"source": "test"},
             "Embeddings": [3.0, 4.0]},
            {"Text": "cell", "Labels": ["label-a"], "Tags": {"source": "test"},
             "Embeddings": [0.0, 2.0]},
        ]},
    ]  # fmt: skip
