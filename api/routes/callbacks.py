"""Inbound callbacks: ``POST /api/v1/callbacks/{token}`` (filled in by the callbacks work)."""

from fastapi import APIRouter

router = APIRouter()
