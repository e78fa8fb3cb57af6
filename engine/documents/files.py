"""Files: validated uploads into blob storage, listing, and complete deletion.

An upload either lands whole (blob, row and ``file.uploaded`` event) or leaves
nothing behind: the blob is written first under a generated key and removed
again if the row cannot be committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from engine.db.scope import TenantScope
from engine.db.tables import File
from engine.documents.extract import MAX_IMAGE_PIXELS, image_pixels
from engine.documents.sniff import IMAGES, compatible, declared_type, sniff
from engine.events import outbox
from engine.events.catalog import EventType
from engine.platform.errors import InvalidInput, WeftError
from engine.platform.ids import new_id
from engine.storage.base import BlobStore, BlobTooLarge, file_key, work_prefix
from engine.vectors.base import VectorIndex

SORTABLE = {"created_at", "filename", "size"}
HEAD_BYTES = 8192


class UnsupportedMedia(WeftError):
    code = "UNSUPPORTED_MEDIA_TYPE"


class TooLarge(WeftError):
    code = "PAYLOAD_TOO_LARGE"


def check_filename(filename: str) -> str:
    name = filename.strip()
    if not name:
        raise InvalidInput("filename is required", details={"field": "filename"})
    if "/" in name or "\\" in name or name in (".", "..") or "\x00" in name:
        raise InvalidInput(
            "filename must be a plain name without path components",
            details={"field": "filename"},
        )
    if len(name) > 255:
        raise InvalidInput("filename is longer than 255 characters", details={"field": "filename"})
    return name


def inspect_upload(source: BinaryIO, filename: str, content_type: str | None) -> str:
    """The real type of an upload, refusing empty, unknown, mislabelled and bomb files."""
    source.seek(0)
    head = source.read(HEAD_BYTES)
    source.seek(0)
    if not head:
        raise InvalidInput("the file is empty", details={"field": "file", "reason": "EMPTY_FILE"})
    actual = sniff(head, whole=source).mime_type
    if actual is None:
        raise UnsupportedMedia("this kind of file is not supported")
    claimed = declared_type(filename, content_type)
    if not compatible(claimed, actual):
        raise UnsupportedMedia(
            f"the file's content is {actual}, but it was declared as {claimed}",
            details={"declared": claimed, "detected": actual},
        )
    if actual in IMAGES:
        pixels = image_pixels(source.read())
        source.seek(0)
        if pixels > MAX_IMAGE_PIXELS or pixels == 0:
            raise InvalidInput(
                "the image is too large to process" if pixels else "the image cannot be read",
                details={"field": "file", "pixels": pixels, "limit": MAX_IMAGE_PIXELS},
            )
    return actual


@dataclass(frozen=True)
class Upload:
    file: File
    created: bool


async def store_upload(
    session: AsyncSession,
    store: BlobStore,
    *,
    tenant_id: str,
    user_id: str | None,
    source: BinaryIO,
    filename: str,
    content_type: str | None,
    project_id: str | None,
    idempotency_key: str | None,
    max_bytes: int,
    base_url: str = "",
) -> Upload:
    name = check_filename(filename)
    if idempotency_key:
        earlier = await session.scalar(
            select(File).where(File.tenant_id == tenant_id, File.idempotency_key == idempotency_key)
        )
        if earlier is not None:
            return Upload(earlier, created=False)
    mime_type = inspect_upload(source, name, content_type)
    file_id = new_id("file")
    key = file_key(tenant_id, file_id)
    try:
        blob = await store.put_file(key, source, limit=max_bytes)
    except BlobTooLarge as exc:
        raise TooLarge(str(exc), details={"limit_bytes": exc.limit}) from None
    row = File(
        id=file_id,
        tenant_id=tenant_id,
        project_id=project_id,
        filename=name,
        mime_type=mime_type,
        size=blob.size,
        sha256=blob.sha256,
        blob_key=key,
        idempotency_key=idempotency_key,
        uploaded_by=user_id,
    )
    try:
        session.add(row)
        await outbox.emit(
            session, tenant_id, EventType.FILE_UPLOADED, file_event(row, base_url), subject=row.id
        )
        await session.commit()
    except IntegrityError:
        await session.rollback()
        await store.delete_prefix(key)
        if idempotency_key:  # a concurrent upload with the same key won
            earlier = await session.scalar(
                select(File).where(
                    File.tenant_id == tenant_id, File.idempotency_key == idempotency_key
                )
            )
            if earlier is not None:
                return Upload(earlier, created=False)
        raise
    except BaseException:
        await store.delete_prefix(key)
        raise
    return Upload(row, created=True)


def file_url(file_id: str, base_url: str = "") -> str:
    """Where a file's bytes are downloaded: absolute given the API's base URL."""
    return f"{base_url.rstrip('/')}/api/v1/mcp/files/{file_id}/download"


def file_event(row: File, base_url: str = "") -> dict[str, object]:
    return {
        "file_id": row.id,
        "filename": row.filename,
        "size": row.size,
        "mime_type": row.mime_type,
        "url": file_url(row.id, base_url),
        "user_id": row.uploaded_by,
    }


async def list_files(
    db: TenantScope, *, project_id: str | None, limit: int, offset: int, sort: str
) -> tuple[list[File], int]:
    field, _, direction = sort.partition(":")
    if field not in SORTABLE or direction not in ("", "asc", "desc"):
        raise InvalidInput(
            f"sort must be one of {', '.join(sorted(SORTABLE))} with :asc or :desc",
            details={"field": "sort"},
        )
    column = getattr(File, field)
    query = db.select(File)
    if project_id:
        query = query.where(File.project_id == project_id)
    total = await db.session.scalar(select(func.count()).select_from(query.subquery()))
    ordered = column.asc() if direction == "asc" else column.desc()
    rows = await db.session.scalars(query.order_by(ordered, File.id).limit(limit).offset(offset))
    return list(rows.all()), int(total or 0)


async def delete_file(db: TenantScope, store: BlobStore, index: VectorIndex, file_id: str) -> File:
    """Row, chunks, vectors, blob and intermediate results: all of it goes."""
    row = await db.get(File, file_id, what="file")
    await index.forget_file(db.session, row.tenant_id, row.id)
    await db.session.delete(row)  # chunks and vectors cascade
    await db.session.commit()
    await store.delete_prefix(row.blob_key)
    await store.delete_prefix(work_prefix(row.tenant_id, row.id))
    return row
