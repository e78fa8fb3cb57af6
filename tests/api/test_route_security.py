"""Every route is protected and declares its scope, except the few public ones."""

from __future__ import annotations

import re

import httpx
import pytest

pytestmark = pytest.mark.asyncio

PUBLIC = {
    ("get", "/health"),
    ("get", "/api/v1/health/detailed"),
    ("get", "/api/ready"),
    ("get", "/"),
    ("get", "/v1.0/health"),
    ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/register"),
    ("post", "/api/v1/auth/refresh"),
    ("post", "/api/auth/login"),
    ("post", "/api/auth/register"),
    ("post", "/api/auth/refresh"),
}


async def operations(client: httpx.AsyncClient) -> list[tuple[str, str, dict]]:
    schema = (await client.get("/openapi.json")).json()
    return [
        (method, path, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
    ]


async def test_every_non_public_route_answers_401_without_credentials(
    client: httpx.AsyncClient,
) -> None:
    checked = 0
    for method, path, _ in await operations(client):
        if (method, path) in PUBLIC:
            continue
        url = re.sub(r"\{[^}]+\}", "some-id", path)
        response = await client.request(
            method.upper(), url, json={} if method in ("post", "put", "patch") else None
        )
        assert response.status_code == 401, f"{method.upper()} {path}: {response.status_code}"
        if method != "head":
            body = response.json()
            code = body["StatusCode"] if path.startswith("/v1.0") else body["error"]["code"]
            assert code in (401, "UNAUTHORIZED"), f"{method.upper()} {path}: {body}"
        checked += 1
    assert checked >= 20


async def test_every_non_public_route_declares_a_scope(client: httpx.AsyncClient) -> None:
    for method, path, operation in await operations(client):
        if (method, path) in PUBLIC:
            continue
        declared = {
            scope
            for item in operation.get("security", [])
            for scopes in item.values()
            for scope in scopes
        }
        assert declared, f"{method.upper()} {path} declares no scope"


async def test_public_routes_need_no_credentials(client: httpx.AsyncClient) -> None:
    for method, path in PUBLIC:
        if method == "get":
            assert (await client.get(path)).status_code != 401, path
