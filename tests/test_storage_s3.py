"""S3-compatible blob storage against a real S3 wire-protocol server on loopback (moto)."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from contextlib import AsyncExitStack

import boto3
import pytest
from moto.server import ThreadedMotoServer

from api.app import create_app
from engine.queues import ALL_QUEUES
from engine.settings import Settings
from engine.storage import BlobTooLarge, blob_store, local_copy
from tests.conftest import api_client, free_port, make_tenant
from tests.documents_support import make_pdf, upload, wait_run
from workers.main import WorkerResources, build_workers

pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_settings(settings: Settings, s3_endpoint: str) -> Settings:
    bucket = f"weft-{uuid.uuid4().hex[:10]}"
    client = boto3.client(
        "s3", endpoint_url=s3_endpoint, region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test",
    )  # fmt: skip
    client.create_bucket(Bucket=bucket)
    return settings.model_copy(update={
        "blob_store": "s3", "s3_endpoint_url": s3_endpoint, "s3_bucket": bucket,
        "s3_access_key_id": "test", "s3_secret_access_key": "test",
    })  # fmt: skip


async def test_s3_store_round_trip(s3_settings: Settings) -> None:
    store = blob_store(s3_settings)
    stored = await store.put_file("files/t/f1", io.BytesIO(b"hello s3" * 1000), limit=10_000)
    assert stored.size == 8000 and len(stored.sha256) == 64
    assert await store.read_bytes("files/t/f1") == b"hello s3" * 1000
    assert b"".join([block async for block in store.stream("files/t/f1")]) == b"hello s3" * 1000
    async with local_copy(store, "files/t/f1") as path:
        assert path.read_bytes() == b"hello s3" * 1000
    with pytest.raises(BlobTooLarge):
        await store.put_file("files/t/big", io.BytesIO(b"x" * 5000), limit=100)
    await store.put_bytes("work/t/f1/a.json", b"{}")
    await store.delete_prefix("work/t/f1")
    assert not await store.exists("work/t/f1/a.json")
    assert await store.exists("files/t/f1")


async def test_pipeline_with_s3_blobs(s3_settings: Settings, temporal_env) -> None:  # type: ignore[no-untyped-def]
    if "postgresql" in s3_settings.resolved_database_url:
        pytest.skip("blob storage is independent of the database: SQLite covers it")
    isolated = s3_settings.model_copy(update={"task_queue_prefix": f"s{uuid.uuid4().hex[:8]}-"})
    tenant = await make_tenant(isolated, "s3")
    resources = WorkerResources.open(isolated)
    pdf = make_pdf(["Blobs live in S3 here. The answer is forty-two."])
    try:
        async with AsyncExitStack() as stack:
            for worker in build_workers(temporal_env.client, ALL_QUEUES, resources,
                                        prefix=isolated.task_queue_prefix):  # fmt: skip
                await stack.enter_async_context(worker)
            async with api_client(create_app(isolated)) as http:
                headers = {"X-API-Key": tenant.key}
                response = await upload(http, headers, "s3.pdf", pdf)
                file_id = response.json()["data"]["file_id"]
                run = await wait_run(http, headers, response.json()["data"]["execution_id"])
                assert run["status"] == "completed", run
                download = await http.get(f"/api/v1/mcp/files/{file_id}/download", headers=headers)
                assert download.content == pdf
                assert download.headers["content-disposition"].startswith("attachment")
                deleted = await http.delete(f"/api/v1/mcp/files/{file_id}", headers=headers)
                assert deleted.status_code == 204
    finally:
        await resources.close()
    assert not (isolated.data_dir / "blobs").exists()  # nothing went to local disk
    assert not await blob_store(isolated).exists(f"files/{tenant.tenant_id}/{file_id}")
