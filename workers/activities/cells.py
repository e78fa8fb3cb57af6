"""Partio semantic-cell activities: chunk the cells (weft-cpu), assemble the answer.

Embedding reuses ``embed_chunks``; cells, chunks, vectors and the assembled
answer all live in blob storage under the batch's work prefix.
"""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import numpy as np

from engine.ai.providers import local
from engine.documents.chunking import ChunkingConfig, chunk_pages
from engine.storage.base import BlobStore, cells_prefix, work_prefix
from workflows.activities import ASSEMBLE_CELLS, CHUNK_CELLS
from workflows.document_payloads import AssembleInput, AssembleResult, CellChunksResult, CellsInput


def _chunk_cells(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for number, cell in enumerate(cells):
        config = ChunkingConfig.model_validate(cell["chunking"])
        for chunk in chunk_pages([(None, cell["text"])], config, local.token_spans):
            items.append({"index": len(items), "cell": number, "text": chunk.text,
                          "tokens": chunk.tokens})  # fmt: skip
    return items


class CellActivities:
    def __init__(self, store: BlobStore) -> None:
        self.store = store

    @CHUNK_CELLS.defn
    async def chunk_cells(self, params: CellsInput) -> CellChunksResult:
        cells = json.loads(await self.store.read_bytes(params.cells_key))
        items = await asyncio.to_thread(_chunk_cells, cells)
        key = f"{cells_prefix(params.tenant_id, params.batch_id)}/chunks.json"
        await self.store.put_bytes(key, json.dumps(items).encode())
        return CellChunksResult(chunks_key=key, chunks=len(items))

    @ASSEMBLE_CELLS.defn
    async def assemble_cells(self, params: AssembleInput) -> AssembleResult:
        cells = json.loads(await self.store.read_bytes(params.cells_key))
        chunks = json.loads(await self.store.read_bytes(params.chunks_key))
        parts = [np.load(io.BytesIO(await self.store.read_bytes(k))) for k in params.vectors_keys]
        vectors = np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)
        answer = [{"Text": cell["text"], "Chunks": []} for cell in cells]
        for chunk, vector in zip(chunks, vectors, strict=True):
            cell = cells[chunk["cell"]]
            if cell["normalize"]:
                norm = float(np.linalg.norm(vector))
                vector = vector / norm if norm else vector
            answer[chunk["cell"]]["Chunks"].append({
                "Text": chunk["text"], "Labels": cell["labels"], "Tags": cell["tags"],
                "Embeddings": [round(float(x), 7) for x in vector],
            })  # fmt: skip
        key = f"{work_prefix(params.ref.tenant_id, params.ref.file_id)}/result.json"
        await self.store.put_bytes(key, json.dumps(answer).encode())
        return AssembleResult(result_key=key, cells=len(cells), chunks=len(chunks))
