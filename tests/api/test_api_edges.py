"""What every client sees at the edge: envelope, codes, request ids, headers."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from api.app import create_app
from engine.platform.settings import Settings
from tests.conftest import api_client

pytestmark = pytest.mark.asyncio


def assert_envelope(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    assert body["data"] is None
    assert body["error"]["code"] == code
    assert body["error"]["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    # sutazai's clients read the same request id and time under "metadata".
    assert body["metadata"] == body["meta"]
    assert body["metadata"]["request_id"] == response.headers["x-request-id"]
    return body


async def test_unknown_route_is_a_not_found_envelope(client: httpx.AsyncClient) -> None:
    body = assert_envelope(await client.get("/api/v1/nothing-here"), 404, "NOT_FOUND")
    assert "/api/v1/nothing-here" in body["error"]["message"]


async def test_wrong_method_is_405_with_allow(client: httpx.AsyncClient) -> None:
    response = await client.delete("/health")
    assert_envelope(response, 405, "METHOD_NOT_ALLOWED")
    assert "GET" in response.headers["allow"]


async def test_malformed_json_is_a_400_validation_error(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    response = await client.post(
        "/api/v1/system/check",
        content=b'{"queues": [',
        headers={"X-API-Key": admin_key, "Content-Type": "application/json"},
    )
    assert_envelope(response, 400, "VALIDATION_ERROR")


async def test_invalid_field_is_a_422_naming_the_field(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    response = await client.post(
        "/api/v1/system/check",
        json={"queues": ["weft-nowhere"], "timeout_seconds": 5},
        headers={"X-API-Key": admin_key},
    )
    body = assert_envelope(response, 422, "VALIDATION_ERROR")
    assert body["error"]["details"]["field"] == "queues.0"
    assert "weft-nowhere" not in response.text  # the input is not echoed back


async def test_oversized_body_is_refused_with_413(client: httpx.AsyncClient) -> None:
    too_big = b"x" * (1_048_576 + 1)
    response = await client.post("/api/v1/system/check", content=too_big)
    body = assert_envelope(response, 413, "PAYLOAD_TOO_LARGE")
    assert body["error"]["details"]["limit_bytes"] == 1_048_576


async def test_oversized_streamed_body_without_length_is_refused(
    settings: Settings, admin_key: str
) -> None:
    small = settings.model_copy(update={"max_request_bytes": 64})

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b'{"queues": []}     '

    async with api_client(create_app(small)) as http:
        response = await http.post(
            "/api/v1/system/check",
            content=chunks(),
            headers={"X-API-Key": admin_key, "Content-Type": "application/json"},
        )
    assert_envelope(response, 413, "PAYLOAD_TOO_LARGE")


async def test_missing_credentials_are_401(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/system/check", json={})
    assert_envelope(response, 401, "UNAUTHORIZED")
    response = await client.post("/api/v1/system/check", json={}, headers={"X-API-Key": "znt_x"})
    assert_envelope(response, 401, "INVALID_API_KEY")


async def test_request_id_is_kept_or_generated(client: httpx.AsyncClient) -> None:
    kept = await client.get("/health", headers={"X-Request-ID": "client-trace-42"})
    assert kept.headers["x-request-id"] == "client-trace-42"
    unsafe = await client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})
    assert unsafe.headers["x-request-id"].startswith("req_")


async def test_security_headers_on_success_and_error(client: httpx.AsyncClient) -> None:
    for response in (await client.get("/health"), await client.get("/nope")):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"


async def test_unhandled_error_is_a_500_envelope_without_trace(settings: Settings) -> None:
    app = create_app(settings)

    @app.get("/api/v1/explode")
    async def explode() -> None:
        raise RuntimeError("secret internals")

    async with api_client(app) as http:
        response = await http.get("/api/v1/explode")
    body = assert_envelope(response, 500, "INTERNAL_ERROR")
    assert "secret internals" not in response.text
    assert body["error"]["message"] == "Internal server error"


async def test_partio_paths_answer_partio_errors(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1.0/nothing")
    assert response.status_code == 404
    body = response.json()
    assert body["StatusCode"] == 404 and body["Error"] == "NotFound"
    assert {"Message", "TimestampUtc"} <= body.keys()


async def test_openapi_and_docs_are_served(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    assert "/health" in schema["paths"]
    assert "/api/v1/health/detailed" in schema["paths"]
    for page in ("/docs", "/redoc"):
        response = await client.get(page)
        assert response.status_code == 200 and "text/html" in response.headers["content-type"]
        # Every asset the page loads is served here: the explorer works offline.
        assets = re.findall(r'(?:src|href)=["\']([^"\']+)["\']', response.text)
        assets += re.findall(r"(?:url): ?['\"]([^'\"]+)['\"]", response.text)
        assert assets and not [a for a in assets if "//" in a], assets
        for asset in assets:
            loaded = await client.get(asset)
            assert loaded.status_code == 200 and loaded.content, asset


async def test_cors_allows_configured_origins_only(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"cors_origins": ["http://ui.example"]}))
    async with api_client(app) as http:
        allowed = await http.options(
            "/health",
            headers={"Origin": "http://ui.example", "Access-Control-Request-Method": "GET"},
        )
        refused = await http.options(
            "/health",
            headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "GET"},
        )
    assert allowed.headers["access-control-allow-origin"] == "http://ui.example"
    assert "access-control-allow-origin" not in refused.headers
