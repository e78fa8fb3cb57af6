"""Webhooks (zentoria and z2): ``/api/v1/webhooks`` register, list, read, update,
delete, test, and each webhook's delivery log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from api.deps import Caller, requires
from api.envelope import Envelope, ok
from api.query import PageNumber
from api.schemas.webhooks import (
    DeliveriesPublic,
    WebhookCreatedPublic,
    WebhookPublic,
    WebhooksPublic,
    WebhookTestPublic,
)
from engine.events import webhooks
from engine.events.webhooks import MAX_PAGE_SIZE, WebhookCreate, WebhookUpdate

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])

Reader = Annotated[Caller, requires("webhooks:read")]
Writer = Annotated[Caller, requires("webhooks:write")]

PageSize = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]


@router.post(
    "",
    status_code=201,
    response_model=Envelope[WebhookCreatedPublic],
    summary="Register a webhook (url, events, secret)",
)
async def create_webhook(request: Request, caller: Writer, body: WebhookCreate) -> JSONResponse:
    made = await webhooks.register(
        caller.db, caller.settings, body, created_by=caller.principal.user_id
    )
    data = WebhookCreatedPublic.of_registered(made)
    return ok(data, request_id=request.state.request_id, status_code=201)


@router.get("", response_model=Envelope[WebhooksPublic], summary="List the tenant's webhooks")
async def read_webhooks(
    request: Request, caller: Reader, page: PageNumber = 1, limit: PageSize = 20
) -> JSONResponse:
    found = await webhooks.list_webhooks(caller.db, page=page, limit=limit)
    return ok(WebhooksPublic.of(found), request_id=request.state.request_id)


@router.get("/{webhook_id}", response_model=Envelope[WebhookPublic], summary="Read a webhook")
async def read_webhook(request: Request, webhook_id: str, caller: Reader) -> JSONResponse:
    row = await webhooks.get_webhook(caller.db, webhook_id)
    return ok(WebhookPublic.of(row), request_id=request.state.request_id)


async def _update(
    request: Request, webhook_id: str, caller: Caller, body: WebhookUpdate
) -> JSONResponse:
    row = await webhooks.update_webhook(caller.db, caller.settings, webhook_id, body)
    return ok(WebhookPublic.of(row), request_id=request.state.request_id)


@router.put(
    "/{webhook_id}",
    response_model=Envelope[WebhookPublic],
    summary="Update a webhook (only the fields sent; status active re-enables it)",
)
async def update_webhook(
    request: Request, webhook_id: str, caller: Writer, body: WebhookUpdate
) -> JSONResponse:
    return await _update(request, webhook_id, caller, body)


@router.patch("/{webhook_id}", response_model=Envelope[WebhookPublic], summary="Update a webhook")
async def patch_webhook(
    request: Request, webhook_id: str, caller: Writer, body: WebhookUpdate
) -> JSONResponse:
    return await _update(request, webhook_id, caller, body)


@router.delete("/{webhook_id}", status_code=204, summary="Delete a webhook")
async def delete_webhook(webhook_id: str, caller: Writer) -> Response:
    await webhooks.delete_webhook(caller.db, webhook_id)
    return Response(status_code=204)


@router.post(
    "/{webhook_id}/test",
    status_code=202,
    response_model=Envelope[WebhookTestPublic],
    summary="Send a signed webhook.test event to this webhook",
)
async def test_webhook(request: Request, webhook_id: str, caller: Writer) -> JSONResponse:
    event_id = await webhooks.send_test(caller.db, webhook_id)
    data = WebhookTestPublic(webhook_id=webhook_id, event_id=event_id, status="queued")
    return ok(data, request_id=request.state.request_id, status_code=202)


@router.get(
    "/{webhook_id}/deliveries",
    response_model=Envelope[DeliveriesPublic],
    summary="The webhook's delivery log: attempts, status codes, latency, next retry",
)
async def read_deliveries(
    request: Request,
    webhook_id: str,
    caller: Reader,
    page: PageNumber = 1,
    limit: PageSize = 50,
) -> JSONResponse:
    found = await webhooks.list_deliveries(caller.db, webhook_id, page=page, limit=limit)
    return ok(DeliveriesPublic.of(found), request_id=request.state.request_id)
