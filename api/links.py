"""Absolute URLs in answers: the configured public address, else the request's."""

from __future__ import annotations

from fastapi import Request

from engine.platform.settings import Settings


def base_url(request: Request, settings: Settings) -> str:
    """``WEFT_PUBLIC_BASE_URL`` when set, else the request's own base URL (scheme,
    host and root path; behind a trusted proxy, its forwarded scheme); no
    trailing slash, so ``base_url(...) + "/api/..."`` is the link."""
    return (settings.public_base_url or str(request.base_url)).rstrip("/")
