"""The embedded default: blobs as files under ``<data_dir>/blobs``."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from engine.storage.base import CHUNK, SAFE_KEY, BlobTooLarge, StoredBlob


class LocalBlobStore:
    """Blobs as files under ``<data_dir>/blobs``, written atomically (temp + rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, key: str) -> Path:
        if not SAFE_KEY.match(key) or ".." in key.split("/"):
            raise ValueError(f"unsafe blob key {key!r}")
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise ValueError(f"unsafe blob key {key!r}")
        return path

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    async def download_to(self, key: str, target: Path) -> None:
        await asyncio.to_thread(shutil.copyfile, self._path(key), target)

    async def put_file(self, key: str, source: BinaryIO, *, limit: int) -> StoredBlob:
        return await asyncio.to_thread(self._put_file, key, source, limit)

    def _put_file(self, key: str, source: BinaryIO, limit: int) -> StoredBlob:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(path.name + ".part")
        digest, size = hashlib.sha256(), 0
        try:
            with temp.open("wb") as out:
                while block := source.read(CHUNK):
                    size += len(block)
                    if size > limit:
                        raise BlobTooLarge(limit)
                    digest.update(block)
                    out.write(block)
            os.replace(temp, path)
        finally:
            temp.unlink(missing_ok=True)
        return StoredBlob(key, size, digest.hexdigest())

    async def put_bytes(self, key: str, data: bytes) -> None:
        def write() -> None:
            path = self._path(key)
            path.parent.mkdir(parents=True, exist_ok=True)
            temp = path.with_name(path.name + ".part")
            temp.write_bytes(data)
            os.replace(temp, path)

        await asyncio.to_thread(write)

    async def read_bytes(self, key: str) -> bytes:
        return await asyncio.to_thread(self._path(key).read_bytes)

    async def stream(self, key: str) -> AsyncIterator[bytes]:
        handle = await asyncio.to_thread(self._path(key).open, "rb")
        try:
            while block := await asyncio.to_thread(handle.read, CHUNK):
                yield block
        finally:
            handle.close()

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).exists)

    async def delete_prefix(self, prefix: str) -> None:
        def remove() -> None:
            target = self._path(prefix.rstrip("/"))
            if target.is_dir():
                for child in sorted(target.rglob("*"), reverse=True):
                    child.unlink() if child.is_file() else child.rmdir()
                target.rmdir()
            else:
                target.unlink(missing_ok=True)

        await asyncio.to_thread(remove)
