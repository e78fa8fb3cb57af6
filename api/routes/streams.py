"""Live event streams: WebSockets and SSE (filled in by the streams work)."""

from fastapi import APIRouter

router = APIRouter()
