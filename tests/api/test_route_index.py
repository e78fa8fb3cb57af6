"""The route index picks the route the router's own scan picks, for every route
of the app, and answers 404 and 405 as the router does."""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from starlette.routing import BaseRoute

from api.app import create_app
from api.route_index import RouteIndex, install_route_index
from engine.platform.settings import Settings

pytestmark = pytest.mark.asyncio


async def served_by(app: FastAPI, method: str, path: str) -> tuple[Any, ...]:
    """(the endpoint that took the request, its path parameters, the status
    answered), without a
    lifespan: routing happens before any resource is needed."""
    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
        "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
        "root_path": "", "query_string": b"", "headers": [], "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80), "state": {},
    }  # fmt: skip
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(scope, receive, send)
    endpoint = scope.get("endpoint")
    name = getattr(endpoint, "__qualname__", type(endpoint).__qualname__)
    return name, scope.get("path_params"), statuses[0]


def requests_for(routes: list[BaseRoute]) -> list[tuple[str, str]]:
    """A request for every method of every route (path parameters filled in),
    twice, so the second is answered from the index."""
    found: list[tuple[str, str]] = []
    for route in routes:
        router = getattr(route, "original_router", None)  # an included router, kept whole
        for each in router.routes if router is not None else [route]:
            template = getattr(each, "path", None)
            if not isinstance(template, str):
                continue
            concrete = re.sub(r"\{[^}]+\}", "x1", template)
            for method in sorted(getattr(each, "methods", None) or {"GET"}):
                found.append((method, concrete))
    return found * 2


async def test_every_route_is_found_as_the_router_finds_it(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'weft.db'}", data_dir=tmp_path)
    indexed = create_app(settings)
    plain = create_app(settings)
    assert isinstance(indexed.router.middleware_stack, RouteIndex)
    plain.router.middleware_stack = plain.router.app  # the router's own scan
    probes = requests_for(plain.routes) + [
        ("GET", "/api/v1/no/such/route"),  # 404
        ("DELETE", "/api/v1/ai/chat"),  # 405
        ("GET", "/api/v1/models/providers/x1"),  # providers first, not a model named so
        ("GET", "/api/v1/models/some/model:tag"),
    ]
    assert len(probes) > 200
    for method, path in probes:
        assert await served_by(indexed, method, path) == await served_by(plain, method, path), (
            method,
            path,
        )
    index = indexed.router.middleware_stack
    assert isinstance(index, RouteIndex)
    assert index._routes  # the repeated requests were answered from it


async def test_of_two_routers_that_both_match_the_first_included_serves() -> None:
    first, second = APIRouter(), APIRouter()

    @first.get("/things/{name}")
    async def named_thing(name: str) -> dict[str, str]:
        return {"by": "first"}

    @second.get("/things/special")
    async def special_thing() -> dict[str, str]:
        return {"by": "second"}

    app = FastAPI()
    app.include_router(first)
    app.include_router(second)
    install_route_index(app)
    assert isinstance(app.router.middleware_stack, RouteIndex)
    for _ in range(3):  # the first call scans, the others are answered from the index
        name, params, status = await served_by(app, "GET", "/things/special")
        assert name.endswith(".named_thing")
        assert (params, status) == ({"name": "special"}, 200)
