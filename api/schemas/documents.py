"""Files, embeddings and semantic answers (zentoria ``/mcp/*`` and ``/ai/*``).

Document runs and RAG answers reuse the engine's own models
(``engine.documents.processing.DocumentRunPublic``, ``engine.documents.rag.RagAnswer``).
"""

from __future__ import annotations

from pydantic import BaseModel
from pydantic.json_schema import SkipJsonSchema

from engine.ai.providers.base import EmbeddingResult
from engine.db.tables import File
from engine.documents.files import file_url


class FileErrorPublic(BaseModel):
    code: str
    message: str | None


class FilePublic(BaseModel):
    id: str
    file_id: str
    filename: str
    size: int
    mime_type: str
    sha256: str
    project_id: str | None
    status: str
    pages: int | None
    chunks: int | None
    embedding_model: str | None
    error: FileErrorPublic | None
    uploaded_at: str
    processed_at: str | None
    url: str

    @classmethod
    def of(cls, row: File, base_url: str = "") -> FilePublic:
        """``url`` is absolute given the API's ``base_url`` (``api.links.base_url``)."""
        return cls(
            id=row.id,
            file_id=row.id,
            filename=row.filename,
            size=row.size,
            mime_type=row.mime_type,
            sha256=row.sha256,
            project_id=row.project_id,
            status=row.status,
            pages=row.pages,
            chunks=row.chunks,
            embedding_model=row.embedding_model,
            error=(
                FileErrorPublic(code=row.error_code, message=row.error_message)
                if row.error_code
                else None
            ),
            uploaded_at=row.created_at.isoformat(),
            processed_at=row.processed_at.isoformat() if row.processed_at else None,
            url=file_url(row.id, base_url),
        )


class FileUploadPublic(FilePublic):
    """An upload's answer; ``execution_id`` (and ``temporal_ui_url``) are absent when no
    run was started or joined."""

    execution_id: str | SkipJsonSchema[None] = None
    temporal_ui_url: str | SkipJsonSchema[None] = None  # with a run: it in the Web UI


class PaginationPublic(BaseModel):
    total: int
    limit: int
    offset: int
    has_more: bool


class FilesPublic(BaseModel):
    """``files`` and ``items`` hold the same page (both names are in the contract)."""

    files: list[FilePublic]
    items: list[FilePublic]
    pagination: PaginationPublic


class EmbeddingUsagePublic(BaseModel):
    tokens: int
    prompt_tokens: int


class EmbeddingsPublic(BaseModel):
    embeddings: list[list[float]]
    model: str
    dimensions: int
    usage: EmbeddingUsagePublic

    @classmethod
    def of(cls, result: EmbeddingResult) -> EmbeddingsPublic:
        return cls(
            embeddings=result.vectors,
            model=result.model,
            dimensions=len(result.vectors[0]) if result.vectors else 0,
            usage=EmbeddingUsagePublic(tokens=result.tokens, prompt_tokens=result.tokens),
        )
