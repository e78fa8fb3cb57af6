"""Names and payloads of the activities that workflows call.

Implementations live in ``workers/activities`` and register under these names;
workflows refer to them through this enum, so neither side spells a string.
"""

from enum import StrEnum

from pydantic import BaseModel


class Activity(StrEnum):
    PING_QUEUE = "ping_queue"
    INSPECT_DOCUMENT = "inspect_document"
    EXTRACT_TEXT = "extract_text"
    CHUNK_TEXT = "chunk_text"
    EMBED_CHUNKS = "embed_chunks"
    INDEX_CHUNKS = "index_chunks"
    FINISH_DOCUMENT = "finish_document"
    CHUNK_CELLS = "chunk_cells"
    ASSEMBLE_CELLS = "assemble_cells"


class PingInput(BaseModel):
    queue: str


class PingResult(BaseModel):
    queue: str
    worker: str
    python: str
