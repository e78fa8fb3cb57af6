"""The OpenAPI document, made to tell the truth about what the server answers.

FastAPI declares each route's success answer and a 422 in its own shape, which
this API never sends. Here every operation also gets the errors it really
answers, in the body it really answers them with (``ErrorEnvelope``; partio's
``PartioErrorPublic`` under ``/v1.0`` and ``/``):

- 400 malformed JSON (any JSON body), and every invalid input on partio paths
  (partio answers 400 where the others answer 422);
- 401 and 403 where a credential is needed (or checked, as at sign-in);
- 404 where the path (or, for a signed-in caller, the body) names an object;
- 413 where there is a body (``EdgeMiddleware``'s limits);
- 422 invalid input (not on partio paths);
- 429 on every route (rate limits count every request) and 503 on every route
  (a busy database, an unavailable rate-limit store, Temporal down);
- and, from ``PARTICULAR``, what only some operations answer: 409 conflicts, 410
  for spent callbacks, 415 for files, and 402/502/504 where a model provider, a
  remote agent or a run is waited for.

Event streams are described one event at a time (``ServerSentEvent``), which
is how OpenAPI before 3.2 reads a ``text/event-stream`` schema.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from api.envelope import is_partio_path
from api.schemas.errors import ErrorEnvelope, PartioErrorPublic, ServerSentEvent

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
REF = "#/components/schemas/{model}"
# Sign-in and token refresh check a credential that is in the body.
CREDENTIAL_PATHS = frozenset(
    {"/api/v1/auth/login", "/api/v1/auth/refresh", "/api/auth/login", "/api/auth/refresh"}
)
WHY: dict[int, str] = {
    400: "Malformed JSON, a URL the egress policy refuses, or (partio) an invalid input",
    401: "No credential, or one that is unknown, expired or revoked",
    402: "The tenant's model budget is spent (a hard limit)",
    403: "The credential lacks the scope, or its user or tenant is deactivated",
    404: "No such object, model or route target (or it belongs to another tenant)",
    409: "The request conflicts with the object's state (taken name, finished run, …)",
    410: "The callback URL was used, has expired, or its run has ended",
    413: "The body is over the size limit",
    415: "The file's type is not one that can be processed",
    422: "Invalid input: `error.details.errors` names each field",
    429: "Over the rate limit: `Retry-After` says when to try again",
    502: "The model provider, remote agent or run failed",
    503: "A dependency (database, Temporal, rate-limit store) is unavailable",
    504: "The model provider, remote agent or run did not answer in time",
}
# Calls that reach a model provider (or a remote agent, or wait for a run): its
# failures and timeouts pass through as 502 and 504, a spent budget as 402.
UPSTREAM = frozenset({402, 502, 504})
# Statuses particular to some operations, beyond what the rules below give.
PARTICULAR: dict[str, frozenset[int]] = {
    "POST /api/v1/auth/register": frozenset({409}),  # the e-mail is taken
    "POST /api/auth/register": frozenset({409}),
    "PUT /api/v1/users/me": frozenset({409}),
    "PUT /v1.0/users": frozenset({409}),
    "PUT /v1.0/users/{object_id}": frozenset({409}),
    "POST /api/v1/models/providers": frozenset({409}),  # the name is taken
    "PUT /api/v1/models/providers/{provider_id}": frozenset({409}),
    "POST /api/v1/executions/{execution_id}/cancel": frozenset({409}),  # already over
    "POST /api/executions/{execution_id}/cancel": frozenset({409}),
    "POST /api/v1/executions/{execution_id}/approvals/{step_id}": frozenset({409}),
    "GET /api/v1/tasks/{task_id}/result": frozenset({409}),  # not finished yet
    "POST /api/v1/callbacks/{token}": frozenset({409, 410}),
    "POST /api/v1/consent/grant": frozenset({409}),  # revoked for good
    "POST /api/v1/consent/revoke": frozenset({409}),
    "POST /api/v1/a2a/negotiate": frozenset({409}),  # the session has ended
    "POST /api/v1/a2a/message": frozenset({409}) | UPSTREAM,
    "POST /api/v1/a2a/handshake": UPSTREAM,
    "POST /api/v1/mcp/upload": frozenset({415}),
    "POST /api/v1/system/check": frozenset({502, 504}),
    "POST /api/v1/ai/chat": UPSTREAM,
    "POST /api/v1/chat": UPSTREAM,
    "POST /api/v1/chat/stream": UPSTREAM,
    "POST /api/v1/models/test": UPSTREAM,
    "POST /api/ai/route": UPSTREAM,
    "POST /api/models/route": UPSTREAM,
    "POST /api/v1/ai/embeddings": UPSTREAM,
    "POST /api/v1/ai/rag/query": UPSTREAM,
    "POST /api/v1/agents/{agent_id}/test": UPSTREAM,
    "POST /api/v1/agents/{agent_id}/invoke": UPSTREAM,
    "POST /api/v1/mcp/tools/{tool_name}": UPSTREAM,
    "POST /v1.0/endpoints/{endpoint_id}/process": UPSTREAM,
    "POST /v1.0/endpoints/{endpoint_id}/process/batch": UPSTREAM,
    "POST /api/v1/ai/models/pull": frozenset({502}),
    "POST /api/v1/models/pull": frozenset({502}),
}


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` (and so ``/openapi.json``) the corrected document."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            describe(generate())  # FastAPI keeps it in app.openapi_schema
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]


def describe(schema: dict[str, Any]) -> None:
    """Add the error answers and stream events to ``schema``, in place."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    _add_models(components, ErrorEnvelope, PartioErrorPublic, ServerSentEvent)
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if method in METHODS:
                _describe_operation(path, method, operation)
    for unused in ("HTTPValidationError", "ValidationError"):
        if unused in components and f'"{REF.format(model=unused)}"' not in _text(schema):
            del components[unused]


def _add_models(components: dict[str, Any], *models: type[BaseModel]) -> None:
    _, found = models_json_schema([(model, "serialization") for model in models], ref_template=REF)
    for name, definition in found.get("$defs", {}).items():
        components.setdefault(name, definition)


def _describe_operation(path: str, method: str, operation: dict[str, Any]) -> None:
    partio = is_partio_path(path)
    model = "PartioErrorPublic" if partio else "ErrorEnvelope"
    secured = bool(operation.get("security"))
    has_body = "requestBody" in operation
    has_input = has_body or bool(operation.get("parameters"))
    statuses = {429, 503}
    if has_body:
        statuses |= {400, 413}
    if has_input:
        statuses.add(400 if partio else 422)
    if secured or path in CREDENTIAL_PATHS:
        statuses |= {401, 403}
    # A path names an object; a body names models, workflows, sessions, files …
    if "{" in path or (secured and has_body):
        statuses.add(404)
    statuses |= PARTICULAR.get(f"{method.upper()} {path}", frozenset())
    responses = operation.setdefault("responses", {})
    if partio:
        responses.pop("422", None)  # partio never answers 422
    for status in sorted(statuses):
        declared = responses.get(str(status))
        if declared is None or _is_fastapi_default(declared):
            responses[str(status)] = _error_response(status, model, with_body=method != "head")
    operation["responses"] = dict(sorted(responses.items()))
    for response in responses.values():
        stream = response.get("content", {}).get("text/event-stream")
        if stream is not None:
            stream["schema"] = {"$ref": REF.format(model="ServerSentEvent")}


def _is_fastapi_default(response: dict[str, Any]) -> bool:
    """FastAPI's own 422 (``HTTPValidationError``), which this API never answers."""
    return "HTTPValidationError" in _text(response)


def _error_response(status: int, model: str, *, with_body: bool) -> dict[str, Any]:
    response: dict[str, Any] = {"description": f"{HTTPStatus(status).phrase}: {WHY[status]}"}
    if with_body:
        response["content"] = {"application/json": {"schema": {"$ref": REF.format(model=model)}}}
    if status in (429, 503):
        response["headers"] = {
            "Retry-After": {
                "description": "Seconds to wait before trying again (when known)",
                "schema": {"type": "integer", "minimum": 1},
            }
        }
    return response


def _text(value: Any) -> str:
    return json.dumps(value)
