"""Concurrent embedding requests share model passes and get their own rows back."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import pytest

from engine.ai.providers import local
from engine.ai.providers.embed_batcher import EmbedBatcher

pytestmark = pytest.mark.asyncio


def documents(count: int, chunks: int) -> list[list[str]]:
    return [
        [
            f"Document {d}, chunk {c}: owls hunt at night near river {d * 7 + c}."
            for c in range(chunks)
        ]
        for d in range(count)
    ]


async def test_documents_embedded_together_get_the_vectors_they_get_alone() -> None:
    docs = documents(8, 6)
    alone = [local.embed_sync(texts) for texts in docs]
    provider = local.LocalEmbeddings()
    passes_before = local._batcher.passes
    together = await asyncio.gather(*(provider.embed(texts) for texts in docs))
    passes = local._batcher.passes - passes_before
    assert passes < len(docs)  # 48 texts from 8 callers in fewer passes than callers
    for mine, reference in zip(together, alone, strict=True):
        assert len(mine.vectors) == 6
        np.testing.assert_allclose(np.asarray(mine.vectors), reference, atol=1e-4)


async def test_passes_respect_the_batch_size_and_failures_reach_every_caller() -> None:
    seen: list[int] = []

    def run(texts: Sequence[str], normalize: bool) -> np.ndarray:
        seen.append(len(texts))
        if any("poison" in t for t in texts):
            raise ValueError("the model refused")
        return np.asarray([[len(t), float(normalize)] for t in texts], dtype=np.float32)

    batcher = EmbedBatcher(run, max_batch=10, max_wait_seconds=0.01)
    groups = [["a" * (i + 1)] * 4 for i in range(5)]  # 20 texts, 4 per caller
    rows = await asyncio.gather(*(batcher.embed(g, normalize=True) for g in groups))
    assert all(size <= 10 for size in seen) and sum(seen) == 20
    for group, got in zip(groups, rows, strict=True):
        assert got[:, 0].tolist() == [len(t) for t in group]  # each its own rows, in order

    seen.clear()
    results = await asyncio.gather(
        batcher.embed(["fine"], normalize=True),
        batcher.embed(["poison"], normalize=True),
        return_exceptions=True,
    )
    assert all(isinstance(r, ValueError) for r in results)  # one pass, both told
    assert seen == [2]
