"""A tenant's webhooks: register, list, read, update, delete, test, and the delivery log.

A URL is checked when registered (and again by every delivery): http or https
only, and every address its host resolves to must be public unless the
operator allowed that host and port (``WEFT_TENANT_EGRESS_ALLOWED_HOSTS``). The
secret is kept encrypted, since signing needs it; it is never returned, only,
once at registration, its Standard Webhooks form.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import httpx
from pydantic import BaseModel, Field, StringConstraints, field_validator
from sqlalchemy import func, select

from engine.db.scope import TenantScope
from engine.db.tables import Webhook, WebhookDelivery
from engine.events import outbox
from engine.events.catalog import ALL, SUBSCRIBABLE, EventType
from engine.events.signing import standard_secret
from engine.platform.crypto import encrypt_secret
from engine.platform.egress import EgressDenied, resolve_target
from engine.platform.errors import InvalidInput, NotFound
from engine.platform.settings import Settings

# Any string is read, but only these are accepted (``_check_events``); the schema says so.
EventName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=60),
    Field(json_schema_extra={"enum": sorted({ALL, *SUBSCRIBABLE})}),
]
Secret = Annotated[str, StringConstraints(min_length=8, max_length=500)]
WebhookStatus = Literal["active", "disabled"]
MAX_PAGE_SIZE = 100


class WebhookNotFound(NotFound):
    code = "WEBHOOK_NOT_FOUND"


def _check_events(events: list[str]) -> list[str]:
    unknown = [name for name in events if name != ALL and name not in SUBSCRIBABLE]
    if unknown:
        raise ValueError(
            f"unknown event type(s) {', '.join(unknown)}; known: {', '.join(sorted(SUBSCRIBABLE))}"
            " or *"
        )
    return list(dict.fromkeys(events))


class WebhookCreate(BaseModel):
    url: str = Field(min_length=1, max_length=2048)
    events: list[EventName] = Field(min_length=1, max_length=50)
    # Optional: one is generated (and shown once) when none is given.
    secret: Secret | None = None
    description: str | None = Field(default=None, max_length=500)

    _events = field_validator("events")(_check_events)


class WebhookUpdate(BaseModel):
    url: str | None = Field(default=None, min_length=1, max_length=2048)
    events: list[EventName] | None = Field(default=None, min_length=1, max_length=50)
    secret: Secret | None = None
    description: str | None = Field(default=None, max_length=500)
    # "active" re-enables a disabled webhook (its failure count starts again).
    status: WebhookStatus | None = None

    @field_validator("events")
    @classmethod
    def _known(cls, events: list[str] | None) -> list[str] | None:
        return None if events is None else _check_events(events)


@dataclass(frozen=True)
class Registered:
    webhook: Webhook
    # The secret in Standard Webhooks form, shown once; and the secret itself
    # when the engine generated it.
    signing_secret: str
    generated_secret: str | None


@dataclass(frozen=True)
class Page:
    items: list[Any]
    total: int
    page: int
    limit: int

    @property
    def pages(self) -> int:
        return math.ceil(self.total / self.limit) if self.total else 0


async def check_url(settings: Settings, url: str) -> str:
    """The URL if a tenant may register it; ``InvalidInput`` (422) naming why not."""
    try:
        target = await resolve_target(url, settings, tenant=True)
    except EgressDenied as exc:
        raise InvalidInput(
            f"webhook url refused: {exc.message}", details={"field": "url", **exc.details}
        ) from None
    except httpx.ConnectError as exc:
        raise InvalidInput(
            f"webhook url refused: {exc}", details={"field": "url", "reason": "unresolvable"}
        ) from None
    return str(target.url)


async def register(
    db: TenantScope, settings: Settings, values: WebhookCreate, *, created_by: str | None
) -> Registered:
    url = await check_url(settings, values.url)
    generated = None if values.secret else standard_secret(secrets.token_hex(24))
    secret = values.secret or str(generated)
    row = Webhook(
        url=url,
        events=values.events,
        description=values.description,
        secret_encrypted=encrypt_secret(settings, secret),
        status="active",
        consecutive_failures=0,
        created_by=created_by,
    )
    db.add(row)
    await db.session.commit()
    return Registered(row, standard_secret(secret), generated)


async def get_webhook(db: TenantScope, webhook_id: str) -> Webhook:
    row = await db.find(Webhook, webhook_id)
    if row is None:
        raise WebhookNotFound(f"webhook {webhook_id} not found")
    return row


async def list_webhooks(db: TenantScope, *, page: int, limit: int) -> Page:
    query = db.select(Webhook)
    total = await db.session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await db.session.scalars(
        query.order_by(Webhook.created_at.desc(), Webhook.id)
        .offset((page - 1) * limit)
        .limit(limit)
    )
    return Page(list(rows), int(total or 0), page, limit)


async def update_webhook(
    db: TenantScope, settings: Settings, webhook_id: str, changes: WebhookUpdate
) -> Webhook:
    row = await get_webhook(db, webhook_id)
    if changes.url is not None:
        row.url = await check_url(settings, changes.url)
    if changes.events is not None:
        row.events = changes.events
    if changes.secret is not None:
        row.secret_encrypted = encrypt_secret(settings, changes.secret)
    if "description" in changes.model_fields_set:
        row.description = changes.description
    if changes.status is not None and changes.status != row.status:
        row.status = changes.status
        row.consecutive_failures = 0
        row.disabled_reason = None if changes.status == "active" else "disabled by a user"
    await db.session.commit()
    return row


async def delete_webhook(db: TenantScope, webhook_id: str) -> None:
    row = await get_webhook(db, webhook_id)
    await db.delete(row)
    await db.session.commit()


async def send_test(db: TenantScope, webhook_id: str) -> str:
    """Emit a ``webhook.test`` event that goes to this webhook only; its event id."""
    row = await get_webhook(db, webhook_id)
    data = {"webhook_id": row.id, "message": "This is a test event from Weftworks."}
    event_id = await outbox.emit(
        db.session, row.tenant_id, EventType.WEBHOOK_TEST, data, subject=row.id
    )
    await db.session.commit()
    return str(event_id)


async def list_deliveries(db: TenantScope, webhook_id: str, *, page: int, limit: int) -> Page:
    await get_webhook(db, webhook_id)
    query = db.select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
    total = await db.session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await db.session.scalars(
        query.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.attempt.desc())
        .offset((page - 1) * limit)
        .limit(limit)
    )
    return Page(list(rows), int(total or 0), page, limit)
