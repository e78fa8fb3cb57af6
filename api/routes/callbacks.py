"""Inbound callbacks: ``POST /api/v1/callbacks/{token}`` wakes the workflow waiting on
that one-time URL, and ``GET /api/v1/executions/{id}/callbacks`` hands an
execution's waiting callback URLs and secrets to their tenant.

The POST carries no bearer token or API key: the URL's token names the callback
and the request's signature (made with that callback's own secret) is the
authentication, as for a webhook. OpenAPI declares both signature headers as
its security schemes.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader

from api.deps import Caller, SessionDep, SettingsDep, TemporalDep, requires
from api.envelope import Envelope, ok
from api.schemas.callbacks import CallbackPublic, CallbackReceivedPublic, CallbacksPublic
from engine.events import callbacks
from engine.events.callbacks import MAX_BODY_BYTES, MAX_TOKEN_LENGTH, CallbackTooLarge
from engine.events.signing import SIGNATURE_HEADER
from engine.pipelines import executions

router = APIRouter(tags=["callbacks"])

# Declared (not enforced here: the engine verifies the signature against the
# callback's secret), so the schema says how this route is authenticated.
SIGNED = "callback:signed"
_standard_signature = APIKeyHeader(
    name="webhook-signature",
    scheme_name="StandardWebhooksSignature",
    auto_error=False,
    description="Standard Webhooks: webhook-id, webhook-timestamp and webhook-signature "
    "(v1,<base64 HMAC>), made with the callback's secret",
)
_hmac_signature = APIKeyHeader(
    name=SIGNATURE_HEADER,
    scheme_name="HmacSignature",
    auto_error=False,
    description="sha256=<hex HMAC-SHA256 of the body>, keyed with the callback's secret",
)
Token = Annotated[str, Path(min_length=1, max_length=MAX_TOKEN_LENGTH)]


async def _body(request: Request) -> bytes:
    """The request body, refused (413) as soon as it passes the callback cap."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise CallbackTooLarge(
            f"a callback body holds at most {MAX_BODY_BYTES} bytes",
            details={"limit_bytes": MAX_BODY_BYTES},
        )
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise CallbackTooLarge(
                f"a callback body holds at most {MAX_BODY_BYTES} bytes",
                details={"limit_bytes": MAX_BODY_BYTES},
            )
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/api/v1/callbacks/{token}",
    response_model=Envelope[CallbackReceivedPublic],
    summary="Call back a waiting workflow (signed with the callback's secret; one use)",
    description=(
        "The body (JSON or text, at most 256 KiB) is delivered to the workflow waiting "
        "on this URL. Sign it like a webhook with the callback's secret: Standard "
        "Webhooks headers (webhook-id, webhook-timestamp within 5 minutes, "
        "webhook-signature), or X-Webhook-Signature: sha256=<hex HMAC-SHA256 of the body>. "
        "The first verified message uses the URL up; the same message id again answers "
        "200 with duplicate=true and is not delivered twice. Unsigned or wrongly signed: "
        "401 UNAUTHORIZED; unknown URL: 404 CALLBACK_NOT_FOUND; used by another message, "
        "expired, or its workflow has ended: 410 CALLBACK_GONE."
    ),
    dependencies=[
        Security(_standard_signature, scopes=[SIGNED]),
        Security(_hmac_signature, scopes=[SIGNED]),
    ],
)
async def deliver_callback(
    request: Request,
    token: Token,
    session: SessionDep,
    client: TemporalDep,
    settings: SettingsDep,
) -> JSONResponse:
    body = await _body(request)
    received = await callbacks.receive(
        session, client, settings, token, body, dict(request.headers.items())
    )
    return ok(CallbackReceivedPublic.of(received), request_id=request.state.request_id)


@router.get(
    "/api/v1/executions/{execution_id}/callbacks",
    response_model=Envelope[CallbacksPublic],
    summary=(
        "An execution's callbacks: while one waits, its URL path and signing secret "
        "(for a wait_for_callback step without notify)"
    ),
)
async def read_execution_callbacks(
    request: Request,
    execution_id: str,
    caller: Annotated[Caller, requires("workflows:execute")],
) -> JSONResponse:
    found = await executions.execution_callbacks(caller.db, caller.settings, execution_id)
    data = CallbacksPublic(
        execution_id=execution_id, callbacks=[CallbackPublic.of(item) for item in found]
    )
    return ok(data, request_id=request.state.request_id)
