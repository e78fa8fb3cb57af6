"""Every error, mapped once to the contract's codes, statuses and envelope."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from temporalio.service import RPCError

from api.envelope import error_body, is_partio_path
from engine.db.connection import database_unavailable
from engine.platform.errors import WeftError
from engine.platform.temporal import temporal_unreachable

log = logging.getLogger("weft.api")

STATUS_BY_CODE: dict[str, int] = {
    "VALIDATION_ERROR": 422,
    "UNAUTHORIZED": 401,
    "INVALID_API_KEY": 401,
    "FORBIDDEN": 403,
    # A genuine credential of a deactivated user or tenant.
    "ACCOUNT_DISABLED": 403,
    "NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    # z2's named not-founds (agents, workflows) and the execution index's.
    "AGENT_NOT_FOUND": 404,
    "WORKFLOW_NOT_FOUND": 404,
    "EXECUTION_NOT_FOUND": 404,
    "TASK_NOT_FOUND": 404,
    "WEBHOOK_NOT_FOUND": 404,
    # Inbound callbacks: an unknown URL, and one used up, expired or whose run ended.
    "CALLBACK_NOT_FOUND": 404,
    "CALLBACK_GONE": 410,
    # MCP: commands, tools and z2 sessions.
    "COMMAND_NOT_FOUND": 404,
    "TOOL_NOT_FOUND": 404,
    "SESSION_NOT_FOUND": 404,
    # A2A: tasks, push configs, and remote agents called through the client.
    "A2A_TASK_NOT_FOUND": 404,
    "A2A_TASK_NOT_CANCELABLE": 409,
    "A2A_TASK_NOT_WAITING": 409,
    "A2A_PUSH_CONFIG_NOT_FOUND": 404,
    "A2A_REMOTE_ERROR": 502,
    "A2A_REMOTE_REFUSED": 502,
    # z2's A2A sessions: a refused message or turn, and a delivery that failed.
    "A2A_SESSION_NOT_FOUND": 404,
    "A2A_SESSION_CLOSED": 409,
    "A2A_LIMIT_EXCEEDED": 422,
    "A2A_MESSAGE_TOO_LARGE": 413,
    "A2A_MESSAGE_FAILED": 502,
    "TASK_NOT_COMPLETED": 409,
    # z2 consent: an unknown consent, a revoked one granted again, and an execution
    # whose data subject has not granted consent for its data categories.
    "CONSENT_NOT_FOUND": 404,
    "CONSENT_ALREADY_REVOKED": 409,
    "CONSENT_REQUIRED": 403,
    "DUPLICATE_RESOURCE": 409,
    "PAYLOAD_TOO_LARGE": 413,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "INSUFFICIENT_CREDITS": 402,
    "RATE_LIMIT_EXCEEDED": 429,
    "INTERNAL_ERROR": 500,
    "SERVICE_UNAVAILABLE": 503,
    # Models (z2 and sutazai codes) and the egress guard.
    "MODEL_NOT_AVAILABLE": 404,
    "MODEL_QUOTA_EXCEEDED": 429,
    "MODEL_API_ERROR": 502,
    "UPSTREAM_RESPONSE_TOO_LARGE": 502,
    "CIRCUIT_OPEN": 503,
    "GATEWAY_TIMEOUT": 504,
    "EGRESS_DENIED": 400,
    # A run the API waited for: it failed, or its upstream could not be reached.
    "RUN_FAILED": 502,
    "UPSTREAM_UNREACHABLE": 502,
}
CODE_BY_STATUS: dict[int, str] = {
    400: "VALIDATION_ERROR",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "DUPLICATE_RESOURCE",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMIT_EXCEEDED",
    503: "SERVICE_UNAVAILABLE",
}


def request_id_of(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def error_response(
    request: Request,
    status_code: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = error_body(
        path=request.url.path,
        status_code=status_code,
        code=code,
        message=message,
        details=details,
        request_id=request_id_of(request),
    )
    return JSONResponse(body, status_code=status_code, headers=headers)


def _validation_details(exc: RequestValidationError) -> tuple[int, str, dict[str, Any]]:
    errors = exc.errors()
    if any(error.get("type") == "json_invalid" for error in errors):
        return 400, "Malformed JSON in request body", {}
    # Only where and what: never echo the input (it may hold a password).
    items = [
        {
            "field": ".".join(str(part) for part in error.get("loc", ()) if part != "body"),
            "issue": str(error.get("msg", "invalid")),
            "type": str(error.get("type", "")),
        }
        for error in errors
    ]
    details: dict[str, Any] = {"errors": items}
    if items:
        details.update(field=items[0]["field"], issue=items[0]["issue"])
    return 422, "Request validation failed", details


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path: Starlette's 405 names only
    those of the first route that matched the path (GET of GET and PUT)."""
    found = []
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            found.append(method)
    return found


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(WeftError)
    async def on_domain_error(request: Request, exc: WeftError) -> JSONResponse:
        status = STATUS_BY_CODE.get(exc.code, 400)
        if status == 422 and is_partio_path(request.url.path):
            status = 400  # partio answers every invalid input with 400
        headers = None
        retry_after = exc.details.get("retry_after")
        if status in (429, 503) and isinstance(retry_after, int | float):
            headers = {"Retry-After": str(max(1, math.ceil(retry_after)))}
        return error_response(request, status, exc.code, exc.message, exc.details, headers)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        status, message, details = _validation_details(exc)
        if is_partio_path(request.url.path):
            status = 400  # partio answers every invalid body with 400
        return error_response(request, status, "VALIDATION_ERROR", message, details)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = CODE_BY_STATUS.get(exc.status_code, "INTERNAL_ERROR")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ").title()
        if exc.status_code == 404 and exc.detail == "Not Found":
            message = f"No route for {request.method} {request.url.path}"
        headers = dict(exc.headers) if exc.headers else None
        if exc.status_code == 405:
            message = f"Method {request.method} is not allowed on {request.url.path}"
            headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(request))}
        return error_response(request, exc.status_code, code, message, None, headers)

    @app.exception_handler(SQLAlchemyTimeout)
    async def on_database_busy(request: Request, exc: SQLAlchemyTimeout) -> JSONResponse:
        log.warning("database pool exhausted", extra={"request_id": request_id_of(request)})
        return error_response(
            request, 503, "SERVICE_UNAVAILABLE", "The database is busy; retry shortly",
            headers={"Retry-After": "1"},
        )  # fmt: skip

    @app.exception_handler(DBAPIError)
    async def on_database_error(request: Request, exc: DBAPIError) -> JSONResponse:
        if not database_unavailable(exc):
            raise exc  # a fault of the statement: the last-resort 500
        log.warning(
            "database unavailable: %s", exc.orig, extra={"request_id": request_id_of(request)}
        )
        return error_response(
            request, 503, "SERVICE_UNAVAILABLE", "The database is unavailable; retry shortly",
            headers={"Retry-After": "1"},
        )  # fmt: skip

    @app.exception_handler(RPCError)
    async def on_temporal_error(request: Request, exc: Exception) -> JSONResponse:
        log.warning("temporal call failed: %s", exc, extra={"request_id": request_id_of(request)})
        return error_response(
            request, 503, "SERVICE_UNAVAILABLE", "The workflow service is unavailable"
        )

    @app.exception_handler(RuntimeError)
    async def on_runtime_error(request: Request, exc: RuntimeError) -> JSONResponse:
        if not temporal_unreachable(exc):
            raise exc  # the last-resort 500
        return await on_temporal_error(request, exc)
