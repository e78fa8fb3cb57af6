"""Names and payloads of the activities that workflows call.

Implementations live in ``workers/activities`` and register under these names;
workflows refer to them through this enum, so neither side spells a string.
"""

from enum import StrEnum

from pydantic import BaseModel


class Activity(StrEnum):
    PING_QUEUE = "ping_queue"


class PingInput(BaseModel):
    queue: str


class PingResult(BaseModel):
    queue: str
    worker: str
    python: str
