"""Remembers which of the app's routes serves a method and path.

FastAPI's router tries its routes in order on every request; with each of our
routers kept whole (``app.include_router``), a chat call was tried against about
ninety routes first (0.2 ms of CPU on this machine, before the route even
started). The index asks the route that served the same method and path last
time; only a miss scans, exactly as the router does, and remembers its answer.

It is exact because routing depends only on the request's type, method and path
here (no host routes) and the route list does not change after start-up: the
first route that fully matched a path is again the first one. A path the router
cannot fully match (404, 405) is never remembered. The index is bounded: full,
it starts over.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, FastAPI
from starlette.routing import BaseRoute, Host, Match, Mount
from starlette.types import Receive, Scope, Send

log = logging.getLogger("weft.api")
MAX_PATHS = 8192

try:  # what the router itself does with a route it selected (FastAPI's own helpers)
    from fastapi.routing import _apply_router_form_limits, _update_scope
    from fastapi.telemetry._api import _route_selected

    AVAILABLE = True
except ImportError:  # another FastAPI: the router scans as it always did
    AVAILABLE = False


class RouteIndex:
    """The app router's entry point, with a memory of (type, method, path) → route."""

    def __init__(self, router: APIRouter) -> None:
        self.router = router
        self.scan = router.app  # the router's own matching, for misses
        self._routes: dict[tuple[str, str, str], BaseRoute] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.scan(scope, receive, send)
            return
        key = (scope["type"], scope.get("method", ""), scope["path"])
        route = self._routes.get(key) or self._find(key, scope)
        if route is None:  # 404, 405, a redirect: the router answers as it does
            await self.scan(scope, receive, send)
            return
        _apply_router_form_limits(scope, self.router.form_limits)
        scope.setdefault("router", self.router)
        match, child_scope = route.matches(scope)
        if match is not Match.FULL:  # cannot happen for a remembered path; be safe
            await self.scan(scope, receive, send)
            return
        _update_scope(scope, child_scope)
        _route_selected(
            scope=scope, path=getattr(route, "path_format", None), mount=isinstance(route, Mount)
        )
        await route.handle(scope, receive, send)

    def _find(self, key: tuple[str, str, str], scope: Scope) -> BaseRoute | None:
        """The first route that fully matches, as the router scans (remembered)."""
        probe = dict(scope)  # matching may leave marks on a scope; keep the real one clean
        for route in self.router.routes:
            match, _ = route.matches(probe)
            if match is Match.FULL:
                if len(self._routes) >= MAX_PATHS:
                    self._routes.clear()
                self._routes[key] = route
                return route
        return None


def install_route_index(app: FastAPI) -> None:
    """Put the index in front of ``app``'s router (after every route is added)."""
    router = app.router
    usable = (
        AVAILABLE
        and router.middleware_stack == router.app  # no router-level middleware to keep
        and not any(isinstance(route, Host) for route in router.routes)
    )
    if not usable:
        log.warning("route index not installed: this FastAPI routes differently")
        return
    router.middleware_stack = RouteIndex(router)
