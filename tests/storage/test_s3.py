"""S3-compatible blob storage against a real S3 wire-protocol server on loopback (moto)."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer

from engine.platform.settings import Settings
from engine.storage import blob_store
from engine.storage.base import BlobTooLarge, local_copy
from tests.conftest import free_port, worker_stack
from tests.documents_support import make_pdf, upload, wait_run

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
    pdf = make_pdf(["Blobs live in S3 here. The answer is forty-two."])
    async with worker_stack(s3_settings, temporal_env, "s3") as stack:
        http, headers = stack.http, stack.headers
        response = await upload(http, headers, "s3.pdf", pdf)
        file_id = response.json()["data"]["file_id"]
        run = await wait_run(http, headers, response.json()["data"]["execution_id"])
        assert run["status"] == "completed", run
        download = await http.get(f"/api/v1/mcp/files/{file_id}/download", headers=headers)
        assert download.content == pdf
        assert download.headers["content-disposition"].startswith("attachment")
        store = blob_store(stack.settings)
        assert await store.exists(f"files/{stack.tenant.tenant_id}/{file_id}")
        deleted = await http.delete(f"/api/v1/mcp/files/{file_id}", headers=headers)
        assert deleted.status_code == 204
        assert not await store.exists(f"files/{stack.tenant.tenant_id}/{file_id}")
    assert not (s3_settings.data_dir / "blobs").exists()  # nothing went to local disk
