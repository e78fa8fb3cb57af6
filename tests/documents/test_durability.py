"""Durability: a worker killed during embed_chunks; the run resumes, nothing doubles."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from api.app import create_app
from engine.db.connection import create_engine, create_sessionmaker
from engine.db.tables import Chunk, ChunkVector
from engine.platform.settings import Settings
from tests.conftest import api_client, make_tenant
from tests.documents_support import upload, wait_run

pytestmark = pytest.mark.asyncio


def start_worker(
    settings: Settings, log: Path, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """A ``weft worker`` process on ``settings``' database and task queues."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEFT_")}
    env.update(
        DATABASE_URL=settings.database_url,
        TEMPORAL_ADDRESS=settings.temporal_target,
        WEFT_DATA_DIR=str(settings.data_dir),
        WEFT_TASK_QUEUE_PREFIX=settings.task_queue_prefix,
        WEFT_LOG_LEVEL="WARNING",
    )
    env.update(extra_env or {})
    return subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "worker", "--queues", "all"],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


async def chunk_counts(settings: Settings, file_id: str) -> tuple[int, int, int]:
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            rows = await session.scalar(
                select(func.count()).select_from(Chunk).where(Chunk.file_id == file_id)
            )
            distinct = await session.scalar(
                select(func.count(func.distinct(Chunk.chunk_index))).where(Chunk.file_id == file_id)
            )
            vectors = await session.scalar(
                select(func.count()).select_from(ChunkVector).where(ChunkVector.file_id == file_id)
            )
    finally:
        await engine.dispose()
    return int(rows or 0), int(distinct or 0), int(vectors or 0)


async def test_worker_killed_during_embedding_resumes_without_duplicates(
    settings: Settings, tmp_path: Path
) -> None:
    if "postgresql" in settings.database_url:
        # PostgreSQL's side (no duplicated chunks or vectors after a restart mid-run)
        # is tests/faults/test_outages.py's; the killed worker is the same on both.
        pytest.skip("a killed worker is the same on both databases: SQLite covers it")
    isolated = settings.model_copy(
        update={"task_queue_prefix": f"k{uuid.uuid4().hex[:8]}-", "rate_limits_enabled": False}
    )
    tenant = await make_tenant(isolated, "durable")
    headers = {"X-API-Key": tenant.key}
    text = " ".join(
        f"Sentence number {i} talks about topic {i % 97} at some length." for i in range(9000)
    )
    log = tmp_path / "worker.log"
    worker = start_worker(isolated, log)
    try:
        async with api_client(create_app(isolated)) as http:
            response = await upload(http, headers, "long.txt", text.encode())
            assert response.status_code == 201, response.text
            execution_id = response.json()["data"]["execution_id"]
            deadline = time.monotonic() + 240
            killed_at = None
            while time.monotonic() < deadline:
                run = (
                    await http.get(f"/api/v1/mcp/workflow/{execution_id}", headers=headers)
                ).json()
                progress = run["data"].get("progress") or {}
                if progress.get("stage") == "embedding" and progress.get("chunks_done", 0) > 0:
                    killed_at = progress["chunks_done"]
                    worker.send_signal(signal.SIGKILL)
                    worker.wait()
                    break
                await asyncio.sleep(0.1)
            assert killed_at is not None, (
                f"never saw embedding in progress: {run}\n{log.read_text()}"
            )
            assert killed_at < progress["chunks_total"]
            worker = start_worker(isolated, log)  # a new worker picks the run up
            result = await wait_run(http, headers, execution_id, seconds=300)
    finally:
        worker.kill()
        worker.wait()
    assert result["status"] == "completed", f"{result}\n{log.read_text()[-3000:]}"
    total = result["result"]["chunks"]
    rows, distinct, vectors = await chunk_counts(isolated, response.json()["data"]["file_id"])
    assert rows == distinct == vectors == total > killed_at
