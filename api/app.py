"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline

from api.errors import install_error_handlers
from api.history import RequestHistoryMiddleware
from api.middleware import EdgeMiddleware
from api.openapi import install_openapi
from api.query import refuse_repeated_values
from api.ratelimit import RateLimitMiddleware
from api.resources import Resources
from api.route_index import install_route_index
from api.routes import (
    a2a_protocol,
    a2a_sessions,
    agents,
    analytics,
    api_keys,
    auterity_workflows,
    auth,
    callbacks,
    chat,
    consent,
    executions,
    files,
    health,
    mcp_tools,
    metrics,
    model_providers,
    model_routing,
    models,
    partio_admin,
    partio_process,
    partio_requests,
    rag,
    schedules,
    streams,
    system,
    tasks,
    templates,
    users,
    webhooks,
    workflows,
)
from api.routes import cache as cache_routes
from engine import __version__
from engine.platform.settings import Settings, get_settings

DOCS_ASSETS = "/docs/assets"  # Swagger UI's and ReDoc's files (request history skips /docs/)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API; ``settings`` defaults to the process-wide Settings."""
    settings = settings or get_settings()
    mcp_endpoint = mcp_tools.McpEndpoint()  # the MCP server at /mcp, one per app

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resources = await Resources.open(settings)
        app.state.resources = resources
        try:
            async with mcp_endpoint.running(resources):  # its session manager
                yield
        finally:
            await resources.close()

    # /docs and /redoc load Swagger UI and ReDoc from the package, not a CDN.
    app = FastAPIOffline(
        static_url=DOCS_ASSETS,
        title="Weftworks",
        version=__version__,
        description="Workflow orchestration engine for AI work on Temporal task queues.",
        lifespan=lifespan,
        # A one-value query parameter given twice is a 422, not a silent pick.
        dependencies=[Depends(refuse_repeated_values)],
    )
    install_error_handlers(app)
    install_openapi(app)  # the errors and streams each route really answers
    # Inside CORS (added before it): a 429 still carries the CORS headers a
    # browser needs to read it, and preflights are not counted.
    app.add_middleware(RateLimitMiddleware, settings=settings)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=[
                "X-Request-ID",
                "X-RateLimit-Limit",
                "X-RateLimit-Remaining",
                "X-RateLimit-Reset",
                "X-RateLimit-Window",
                "Retry-After",
            ],
        )
    # Just inside the edge: the request id is set, and 429s and CORS answers are recorded.
    app.add_middleware(RequestHistoryMiddleware, settings=settings)
    # Added last, so it is outermost: every response gets its headers.
    app.add_middleware(
        EdgeMiddleware,
        max_body=settings.max_request_bytes,
        max_upload=settings.max_upload_bytes,
    )
    for router in (
        health.router,
        auth.v1,
        auth.auterity,
        users.router,
        api_keys.router,
        partio_admin.router,
        files.router,
        rag.router,
        partio_process.router,
        partio_requests.router,
        system.router,
        metrics.router,
        # Models: the providers router first, so /models/providers/{id} is not
        # taken for a model named "providers/...".
        model_providers.router,
        models.router,
        chat.router,
        model_routing.router,
        cache_routes.router,
        agents.router,
        workflows.router,
        auterity_workflows.router,
        executions.v1,
        executions.auterity,
        schedules.router,
        templates.auterity,
        templates.v1,
        tasks.router,
        analytics.router,
        webhooks.router,
        callbacks.router,
        streams.router,
        a2a_protocol.router,
        a2a_sessions.router,
        mcp_tools.router,
        consent.router,
    ):
        app.include_router(router)
    app.router.routes.append(mcp_endpoint.route())
    install_route_index(app)  # last: it reads the finished route list
    return app
