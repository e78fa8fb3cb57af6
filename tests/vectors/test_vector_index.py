"""Both vector indexes behave alike: tenant isolation, filters, idempotent upserts."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest

from engine.db.connection import create_engine, create_sessionmaker, transaction
from engine.db.tables import Chunk, File
from engine.platform.settings import Settings
from engine.vectors.base import VectorIndex, VectorRow
from engine.vectors.database import DatabaseVectorIndex
from engine.vectors.qdrant import QdrantVectorIndex
from tests.conftest import make_tenant

pytestmark = pytest.mark.asyncio


@pytest.fixture(params=["database", "qdrant"])
async def index(request: pytest.FixtureRequest) -> AsyncIterator[VectorIndex]:
    if request.param == "database":
        yield DatabaseVectorIndex()
        return
    from qdrant_client import AsyncQdrantClient

    client = AsyncQdrantClient(location=":memory:")  # Qdrant's own embedded engine
    yield QdrantVectorIndex(client)
    await client.close()


def unit(values: list[float]) -> list[float]:
    vector = np.asarray(values + [0.0] * (8 - len(values)), dtype=np.float32)
    return (vector / np.linalg.norm(vector)).tolist()


async def seed(
    settings: Settings, tenant_id: str, project: str, count: int
) -> tuple[str, list[str]]:
    engine = create_engine(settings)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            row = File(tenant_id=tenant_id, project_id=project, filename="f.txt",
                       mime_type="text/plain", size=1, sha256="0" * 64, blob_key="k")  # fmt: skip
            session.add(row)
            await session.flush()
            chunks = [Chunk(tenant_id=tenant_id, file_id=row.id, chunk_index=i, text=f"t{i}")
                      for i in range(count)]  # fmt: skip
            session.add_all(chunks)
            await session.flush()
            return row.id, [c.id for c in chunks]
    finally:
        await engine.dispose()


async def test_search_isolation_filters_and_forgetting(
    settings: Settings, index: VectorIndex
) -> None:
    a, b = await make_tenant(settings, "A"), await make_tenant(settings, "B")
    a_file, a_chunks = await seed(settings, a.tenant_id, "p1", 3)
    a2_file, a2_chunks = await seed(settings, a.tenant_id, "p2", 1)
    b_file, b_chunks = await seed(settings, b.tenant_id, "p1", 1)
    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)
    try:
        async with transaction(sessions) as session:
            rows = [
                VectorRow(cid, a_file, "p1", unit([1.0, i / 10])) for i, cid in enumerate(a_chunks)
            ]
            await index.upsert(session, a.tenant_id, "m", rows)
            await index.upsert(session, a.tenant_id, "m", rows)  # a re-run: no duplicates
            await index.upsert(
                session,
                a.tenant_id,
                "m",
                [VectorRow(a2_chunks[0], a2_file, "p2", unit([0.9, 0.5]))],
            )
            await index.upsert(
                session, b.tenant_id, "m", [VectorRow(b_chunks[0], b_file, "p1", unit([1.0]))]
            )
        async with sessions() as session:
            hits = await index.search(session, a.tenant_id, "m", unit([1.0]), top_k=10)
            assert [h.chunk_id for h in hits][:1] == [a_chunks[0]]
            assert len(hits) == 4 and b_chunks[0] not in {h.chunk_id for h in hits}
            assert hits[0].score == pytest.approx(1.0, abs=1e-4)
            only_p2 = await index.search(
                session, a.tenant_id, "m", unit([1.0]), top_k=10, project_id="p2"
            )
            assert [h.chunk_id for h in only_p2] == [a2_chunks[0]]
            only_file = await index.search(
                session, a.tenant_id, "m", unit([1.0]), top_k=10, file_ids=[a_file]
            )
            assert {h.file_id for h in only_file} == {a_file}
            assert (
                await index.search(session, a.tenant_id, "other-model", unit([1.0]), top_k=3) == []
            )
        async with transaction(sessions) as session:
            await index.forget_file(session, a.tenant_id, a_file)
        async with sessions() as session:
            left = await index.search(session, a.tenant_id, "m", unit([1.0]), top_k=10)
            assert [h.chunk_id for h in left] == [a2_chunks[0]]
            theirs = await index.search(session, b.tenant_id, "m", unit([1.0]), top_k=10)
            assert [h.chunk_id for h in theirs] == b_chunks
    finally:
        await engine.dispose()


async def test_pipeline_runs_on_qdrant(settings: Settings, temporal_env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The document pipeline end to end with the scale-out index (Qdrant, embedded)."""
    if "postgresql" in settings.resolved_database_url:
        pytest.skip("the index choice is independent of the database: SQLite covers it")
    from tests.conftest import worker_stack
    from tests.documents_support import upload, wait_run

    qdrant = settings.model_copy(
        update={"vector_index": "qdrant", "qdrant_url": str(tmp_path / "qdrant")}
    )
    async with worker_stack(qdrant, temporal_env) as stack:
        response = await upload(
            stack.http, stack.headers, "n.txt", b"The red fox sleeps. Owls hunt at night."
        )
        run = await wait_run(stack.http, stack.headers, response.json()["data"]["execution_id"])
        assert run["status"] == "completed"
        asked = {"query": "When do owls hunt?"}
        answer = await stack.http.post("/api/v1/ai/rag/query", headers=stack.headers, json=asked)
        answer = answer.json()["data"]
        assert answer["citations"][0]["file_id"] == response.json()["data"]["file_id"]
