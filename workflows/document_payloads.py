"""Payloads of the document activities (declared with their names in workflows.activities).

Only ids, blob keys, counts and short excerpts travel through workflow history;
document text and vectors stay in blob storage and the database.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from engine.documents.chunking import ChunkingConfig


class EmbeddingSpec(BaseModel):
    """Which model embeds: the local MiniLM, or an Ollama/OpenAI endpoint by id."""

    model: str = "all-MiniLM-L6-v2"
    endpoint_id: str | None = None  # a partio embedding endpoint of the tenant
    normalize: bool = True


class DocumentRef(BaseModel):
    tenant_id: str
    file_id: str


class ChunkInput(BaseModel):
    ref: DocumentRef
    pages_keys: list[str]
    chunking: ChunkingConfig = Field(default_factory=ChunkingConfig)


class ChunkResult(BaseModel):
    chunks_key: str
    chunks: int
    tokens: int


class ExtractInput(BaseModel):
    ref: DocumentRef
    first_page: int
    last_page: int
    ocr: bool = True
    # Given when this batch may be the whole document: then it is chunked in the
    # same activity (small documents cost one round trip less).
    chunking: ChunkingConfig | None = None


class ExtractResult(BaseModel):
    pages_key: str
    pages: int
    pages_total: int
    chars: int
    ocr_pages: int
    excerpt: str = ""
    chunked: ChunkResult | None = None


class EmbedInput(BaseModel):
    ref: DocumentRef
    chunks_key: str
    start: int
    end: int
    embedding: EmbeddingSpec
    workflow_id: str


class EmbedResult(BaseModel):
    vectors_key: str
    count: int
    tokens: int
    model: str
    dimensions: int


class FinishInput(BaseModel):
    ref: DocumentRef
    workflow_id: str
    ok: bool
    pages: int = 0
    chunks: int = 0
    model: str | None = None
    excerpt: str = ""
    ocr_pages: int = 0
    error_code: str | None = None
    error_message: str | None = None


class IndexInput(BaseModel):
    ref: DocumentRef
    chunks_key: str
    vectors_keys: list[str]
    model: str
    # The run's success, recorded in the same transaction as the index.
    finish: FinishInput | None = None


class IndexResult(BaseModel):
    chunks: int
    vectors: int


class CellsInput(BaseModel):
    """Partio semantic cells: the cells themselves wait in blob storage."""

    tenant_id: str
    batch_id: str
    cells_key: str
    endpoint_id: str | None
    model: str


class CellChunksResult(BaseModel):
    chunks_key: str
    chunks: int


class AssembleInput(BaseModel):
    ref: DocumentRef
    cells_key: str
    chunks_key: str
    vectors_keys: list[str]


class AssembleResult(BaseModel):
    result_key: str
    cells: int
    chunks: int
