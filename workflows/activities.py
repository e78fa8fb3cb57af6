"""Names and payloads of the activities that workflows call.

Implementations live in ``workers/activities`` and register under these names;
workflows refer to them through this enum, so neither side spells a string.
"""

from enum import StrEnum

from pydantic import BaseModel


class Activity(StrEnum):
    PING_QUEUE = "ping_queue"
    EXTRACT_TEXT = "extract_text"
    CHUNK_TEXT = "chunk_text"
    EMBED_CHUNKS = "embed_chunks"
    INDEX_CHUNKS = "index_chunks"
    FINISH_DOCUMENT = "finish_document"
    PULL_MODEL = "pull_model"
    CHUNK_CELLS = "chunk_cells"
    ASSEMBLE_CELLS = "assemble_cells"


class PingInput(BaseModel):
    queue: str


class PingResult(BaseModel):
    queue: str
    worker: str
    python: str


class PullModelInput(BaseModel):
    """Pull ``model`` onto the named provider (resolved by the worker: no URL or key here)."""

    provider: str
    model: str


class PullModelResult(BaseModel):
    provider: str
    model: str
    status: str
    total: int | None = None
    completed: int | None = None
