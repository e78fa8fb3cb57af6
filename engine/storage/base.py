"""The blob store interface, and the key layout every backend shares."""

from __future__ import annotations

import re
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

CHUNK = 1024 * 1024
SAFE_KEY = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_\-./]*$")


@dataclass(frozen=True)
class StoredBlob:
    key: str
    size: int
    sha256: str


class BlobStore(Protocol):
    async def put_file(self, key: str, source: BinaryIO, *, limit: int) -> StoredBlob: ...

    async def put_bytes(self, key: str, data: bytes) -> None: ...

    async def read_bytes(self, key: str) -> bytes: ...

    def stream(self, key: str) -> AsyncIterator[bytes]: ...

    def local_path(self, key: str) -> Path | None: ...

    async def download_to(self, key: str, target: Path) -> None: ...

    async def exists(self, key: str) -> bool: ...

    async def delete_prefix(self, prefix: str) -> None: ...


class BlobTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"file is larger than {limit} bytes")
        self.limit = limit


@asynccontextmanager
async def local_copy(store: BlobStore, key: str) -> AsyncIterator[Path]:
    """A file on disk with the blob's bytes (the blob itself when it is local)."""
    path = store.local_path(key)
    if path is not None:
        if not path.exists():
            raise FileNotFoundError(key)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="weft-blob-") as folder:
        target = Path(folder) / "blob"
        await store.download_to(key, target)
        yield target


def file_key(tenant_id: str, file_id: str) -> str:
    return f"files/{tenant_id}/{file_id}"


def work_prefix(tenant_id: str, file_id: str) -> str:
    """Where processing keeps its intermediate results (pages, chunks, vectors)."""
    return f"work/{tenant_id}/{file_id}"


def cells_prefix(tenant_id: str, batch_id: str) -> str:
    """Where one partio process/batch request keeps its cells and results."""
    return work_prefix(tenant_id, f"cells-{batch_id}")
