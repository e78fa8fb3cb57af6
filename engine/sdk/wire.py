"""What both clients share: the base URL, the credential headers, and reading an answer."""

from __future__ import annotations

from typing import Any, TypeVar

import httpx

from engine import __version__
from engine.sdk.calls import Call, unwrapped
from engine.sdk.errors import error_from

T = TypeVar("T")
DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 30.0
TERMINAL_POLL = 0.5  # seconds between status reads while waiting


def api_root(base_url: str) -> str:
    """The server's root: ``http://host:8000``, also when given with ``/api`` or ``/api/v1``
    (the SDK adds each path's own prefix)."""
    root = base_url.strip().rstrip("/")
    for suffix in ("/api/v1", "/api"):
        if root.endswith(suffix):
            root = root[: -len(suffix)]
    if not root.startswith(("http://", "https://")):
        raise ValueError(f"base_url must start with http:// or https://, not {base_url!r}")
    return root


def headers(api_key: str | None, token: str | None) -> dict[str, str]:
    """An API key goes in ``X-API-Key``; a JWT access token as ``Authorization: Bearer``."""
    found = {"User-Agent": f"weft-sdk/{__version__}", "Accept": "application/json"}
    if api_key:
        found["X-API-Key"] = api_key
    if token:
        found["Authorization"] = f"Bearer {token}"
    return found


def request_options(call: Call[Any]) -> dict[str, Any]:
    options: dict[str, Any] = {"params": call.params or None, "headers": call.headers or None}
    if call.json is not None:
        options["json"] = call.json
    return options


def result(call: Call[T], response: httpx.Response) -> T:
    """The call's result, or the typed ``ApiError`` of a refusal."""
    if response.status_code >= 400:
        raise error_from(response)
    if response.status_code == 204 or not response.content:
        return call.read(None)
    return call.read(unwrapped(response.json()))
