"""The embedded index with its ANN graph: results agree with the exact scan,
filters and tenants stay apart, and every write reaches the graph."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import numpy as np
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.db.connection import create_engine, create_sessionmaker, transaction
from engine.platform.settings import Settings
from engine.vectors import vector_index
from engine.vectors.base import Hit, VectorRow
from engine.vectors.database import DatabaseVectorIndex
from tests.conftest import make_tenant
from tests.vectors.test_vector_index import seed

pytestmark = pytest.mark.asyncio

DIM = 48
EXACT = 10**9  # a threshold no test reaches: the exact scan only


def clustered(rng: np.random.Generator, count: int, centers: np.ndarray) -> np.ndarray:
    """Unit vectors around a few centres, as embeddings of related text are."""
    picks = centers[rng.integers(0, len(centers), count)]
    vectors: np.ndarray = picks + 0.35 * rng.standard_normal((count, DIM))
    unit: np.ndarray = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return unit.astype(np.float32)


@pytest.fixture
async def sessions(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(settings)
    try:
        yield create_sessionmaker(engine)
    finally:
        await engine.dispose()


async def add_file(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    indexes: Sequence[DatabaseVectorIndex],
    tenant_id: str,
    project: str,
    vectors: np.ndarray,
) -> tuple[str, list[str]]:
    file_id, chunk_ids = await seed(settings, tenant_id, project, len(vectors))
    rows = [
        VectorRow(c, file_id, project, v.tolist()) for c, v in zip(chunk_ids, vectors, strict=True)
    ]
    async with transaction(sessions) as session:
        await indexes[0].upsert(session, tenant_id, "m", rows)  # any instance writes alike
    return file_id, chunk_ids


async def search(
    sessions: async_sessionmaker[AsyncSession],
    index: DatabaseVectorIndex,
    tenant_id: str,
    query: np.ndarray,
    **filters: object,
) -> list[Hit]:
    async with sessions() as session:
        return await index.search(session, tenant_id, "m", query.tolist(), top_k=10, **filters)  # type: ignore[arg-type]


async def graph_ready(
    sessions: async_sessionmaker[AsyncSession], index: DatabaseVectorIndex, tenant_id: str
) -> int:
    """Waits for the graph; the live rows it answers for."""
    async with sessions() as session:
        stats = await index.stats(session, tenant_id, "m", wait_for_graph=True)
    assert stats is not None and stats.graph, "the ANN graph should answer at this size"
    return stats.rows


def recall(got: list[Hit], truth: list[Hit]) -> float:
    return len({h.chunk_id for h in got} & {h.chunk_id for h in truth}) / max(1, len(truth))


async def test_ann_agrees_with_exact_search_and_filters_stay_apart(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    rng = np.random.default_rng(1)
    centers = rng.standard_normal((24, DIM))
    a, b = await make_tenant(settings, "A"), await make_tenant(settings, "B")
    ann = vector_index(settings.model_copy(update={"vector_ann_threshold": 500}))
    assert isinstance(ann, DatabaseVectorIndex)
    exact = DatabaseVectorIndex(ann_threshold=EXACT)
    big = clustered(rng, 1500, centers)
    files = {
        name: await add_file(settings, sessions, [ann], a.tenant_id, project, vectors)
        for name, project, vectors in (
            ("big", "p1", big),
            ("p2", "p2", clustered(rng, 900, centers)),
            ("small", "p1", clustered(rng, 40, centers)),
        )
    }
    # Tenant B holds the very same vectors as A's big file: nearest to everything.
    theirs = await add_file(settings, sessions, [ann], b.tenant_id, "p1", big)
    assert await graph_ready(sessions, ann, a.tenant_id) == 2440
    assert await graph_ready(sessions, ann, b.tenant_id) == 1500

    queries = clustered(rng, 120, centers)
    found = [0.0, 0.0]
    for query in queries:
        truth = await search(sessions, exact, a.tenant_id, query)
        got = await search(sessions, ann, a.tenant_id, query)
        found[0] += recall(got, truth)
        assert not {h.chunk_id for h in got} & set(theirs[1]), "another tenant's rows"
        assert [h.score for h in got] == sorted((h.score for h in got), reverse=True)
        scores = {h.chunk_id: h.score for h in truth}
        for hit in got:  # a score is the exact cosine, whichever path found it
            assert hit.score == pytest.approx(scores.get(hit.chunk_id, hit.score), abs=1e-5)
        # A project filter allowing a third of the rows is answered by the graph.
        truth = await search(sessions, exact, a.tenant_id, query, project_id="p2")
        got = await search(sessions, ann, a.tenant_id, query, project_id="p2")
        found[1] += recall(got, truth)
        assert len(got) == 10 and {h.file_id for h in got} == {files["p2"][0]}
    assert found[0] / len(queries) >= 0.95
    assert found[1] / len(queries) >= 0.95

    # A selective file filter is scanned exactly: the same answer as exact search.
    for query in queries[:20]:
        only = {"file_ids": [files["small"][0]]}
        got = await search(sessions, ann, a.tenant_id, query, **only)
        assert got == await search(sessions, exact, a.tenant_id, query, **only)
        assert len(got) == 10 and {h.file_id for h in got} == {files["small"][0]}
        both = {"file_ids": [files["small"][0], files["p2"][0]], "project_id": "p1"}
        got = await search(sessions, ann, a.tenant_id, query, **both)
        assert {h.file_id for h in got} == {files["small"][0]}
    query = queries[0]
    assert await search(sessions, ann, a.tenant_id, query, file_ids=[theirs[0]]) == []
    assert await search(sessions, ann, a.tenant_id, query, project_id="nowhere") == []
    mine = await search(sessions, ann, b.tenant_id, query)
    assert {h.file_id for h in mine} == {theirs[0]}


async def test_every_write_reaches_a_live_graph(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    rng = np.random.default_rng(2)
    centers = rng.standard_normal((16, DIM))
    tenant = await make_tenant(settings, "A")
    # Two replicas: one writes, both search; the reader learns of writes only
    # through the generation row.
    reader = DatabaseVectorIndex(ann_threshold=300)
    writer = DatabaseVectorIndex(ann_threshold=300)
    first, first_chunks = await add_file(
        settings, sessions, [writer], tenant.tenant_id, "p", clustered(rng, 600, centers)
    )
    await add_file(
        settings, sessions, [writer], tenant.tenant_id, "p", clustered(rng, 400, centers)
    )
    assert await graph_ready(sessions, reader, tenant.tenant_id) == 1000

    # A new document: found at once, by the same graph (no rebuild).
    target = clustered(rng, 1, centers)[0]
    new_file, new_chunks = await add_file(
        settings, sessions, [writer], tenant.tenant_id, "p", np.stack([target] * 3)
    )
    hits = await search(sessions, reader, tenant.tenant_id, target)
    assert {h.chunk_id for h in hits[:3]} == set(new_chunks)
    assert hits[0].score == pytest.approx(1.0, abs=1e-3)
    assert await graph_ready(sessions, reader, tenant.tenant_id) == 1003

    # A re-embedded chunk (same id, new vector) answers with its new vector only.
    moved = first_chunks[0]
    elsewhere = clustered(rng, 1, centers)[0]
    assert (await search(sessions, reader, tenant.tenant_id, elsewhere))[0].score < 0.999
    async with transaction(sessions) as session:
        await writer.upsert(
            session, tenant.tenant_id, "m", [VectorRow(moved, first, "p", elsewhere.tolist())]
        )
    hits = await search(sessions, reader, tenant.tenant_id, elsewhere)
    assert hits[0].chunk_id == moved and hits[0].score == pytest.approx(1.0, abs=1e-3)
    assert sum(h.chunk_id == moved for h in hits) == 1
    assert await graph_ready(sessions, reader, tenant.tenant_id) == 1003

    # A deleted file is gone from every answer, filtered or not.
    async with transaction(sessions) as session:
        await writer.forget_file(session, tenant.tenant_id, first)
    for query in clustered(rng, 30, centers):
        hits = await search(sessions, reader, tenant.tenant_id, query)
        assert len(hits) == 10 and not {h.file_id for h in hits} & {first}
        hits = await search(sessions, reader, tenant.tenant_id, query, file_ids=[first])
        assert hits == []
    assert await graph_ready(sessions, reader, tenant.tenant_id) == 403
    hits = await search(sessions, reader, tenant.tenant_id, target)
    assert {h.chunk_id for h in hits[:3]} == set(new_chunks)


async def test_many_deletions_compact_the_table_and_rebuild_the_graph(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    rng = np.random.default_rng(3)
    centers = rng.standard_normal((16, DIM))
    tenant = await make_tenant(settings, "A")
    index = DatabaseVectorIndex(ann_threshold=1000)
    exact = DatabaseVectorIndex(ann_threshold=EXACT)
    doomed, _ = await add_file(
        settings, sessions, [index], tenant.tenant_id, "p", clustered(rng, 5000, centers)
    )
    await add_file(
        settings, sessions, [index], tenant.tenant_id, "p", clustered(rng, 2500, centers)
    )
    assert await graph_ready(sessions, index, tenant.tenant_id) == 7500
    async with transaction(sessions) as session:
        await index.forget_file(session, tenant.tenant_id, doomed)
    async with sessions() as session:
        stats = await index.stats(session, tenant.tenant_id, "m")
    assert stats is not None and (stats.rows, stats.dead) == (2500, 0)  # compacted
    assert await graph_ready(sessions, index, tenant.tenant_id) == 2500  # and rebuilt
    found = 0.0
    queries = clustered(rng, 50, centers)
    for query in queries:
        got = await search(sessions, index, tenant.tenant_id, query)
        assert doomed not in {h.file_id for h in got}
        found += recall(got, await search(sessions, exact, tenant.tenant_id, query))
    assert found / len(queries) >= 0.95
