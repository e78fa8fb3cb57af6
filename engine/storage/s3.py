"""S3-compatible blob storage (AWS S3, MinIO, Ceph, …): the scale-out choice.

boto3 is synchronous, so every call runs in a thread. Client-side retries are
switched off: Temporal retries the activities that use storage.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, BinaryIO

from engine.platform.settings import Settings
from engine.storage.base import CHUNK, BlobTooLarge, StoredBlob


class _Hashing:
    """A read-only file that hashes, counts and caps what boto3 reads from it."""

    def __init__(self, source: BinaryIO, limit: int) -> None:
        self.source, self.limit = source, limit
        self.digest, self.size = hashlib.sha256(), 0

    def read(self, size: int = -1) -> bytes:
        block = self.source.read(size)
        self.size += len(block)
        if self.size > self.limit:
            raise BlobTooLarge(self.limit)
        self.digest.update(block)
        return block


class S3BlobStore:
    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    @classmethod
    def from_settings(cls, settings: Settings) -> S3BlobStore:
        import boto3
        from botocore.config import Config

        client = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key_id,
            aws_secret_access_key=settings.s3_secret_access_key,
            config=Config(retries={"max_attempts": 1, "mode": "standard"}),
        )
        return cls(client, settings.s3_bucket)

    async def put_file(self, key: str, source: BinaryIO, *, limit: int) -> StoredBlob:
        reader = _Hashing(source, limit)
        await asyncio.to_thread(self.client.upload_fileobj, reader, self.bucket, key)
        return StoredBlob(key, reader.size, reader.digest.hexdigest())

    async def put_bytes(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self.client.put_object, Bucket=self.bucket, Key=key, Body=data)

    async def read_bytes(self, key: str) -> bytes:
        answer = await asyncio.to_thread(self.client.get_object, Bucket=self.bucket, Key=key)
        data: bytes = await asyncio.to_thread(answer["Body"].read)
        return data

    async def stream(self, key: str) -> AsyncIterator[bytes]:
        answer = await asyncio.to_thread(self.client.get_object, Bucket=self.bucket, Key=key)
        body = answer["Body"]
        try:
            while block := await asyncio.to_thread(body.read, CHUNK):
                yield block
        finally:
            body.close()

    def local_path(self, key: str) -> Path | None:
        return None  # callers that need a file use engine.storage.base.local_copy

    async def download_to(self, key: str, target: Path) -> None:
        await asyncio.to_thread(self.client.download_file, self.bucket, key, str(target))

    async def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            await asyncio.to_thread(self.client.head_object, Bucket=self.bucket, Key=key)
        except ClientError:
            return False
        return True

    async def delete_prefix(self, prefix: str) -> None:
        def remove() -> None:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if keys:
                    self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})

        await asyncio.to_thread(remove)
