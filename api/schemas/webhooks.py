"""Webhooks and their delivery log as the API shows them (zentoria's and z2's
registration shape; the secret is never shown again after registration)."""

from __future__ import annotations

from pydantic import BaseModel

from engine.db.tables import Webhook, WebhookDelivery
from engine.events.catalog import iso
from engine.events.webhooks import Page, Registered


class WebhookPublic(BaseModel):
    id: str
    url: str
    events: list[str]
    status: str
    description: str | None
    disabled_reason: str | None
    consecutive_failures: int
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, row: Webhook) -> WebhookPublic:
        return cls(
            id=row.id,
            url=row.url,
            events=list(row.events),
            status=row.status,
            description=row.description,
            disabled_reason=row.disabled_reason,
            consecutive_failures=row.consecutive_failures,
            created_at=iso(row.created_at),
            updated_at=iso(row.updated_at),
        )


class WebhookCreatedPublic(WebhookPublic):
    """Registration's answer: the only time anything about the secret is shown."""

    # The secret in the Standard Webhooks form (``whsec_…``) for verifying the
    # ``webhook-signature`` header with a Standard Webhooks library.
    signing_secret: str
    # Only when no secret was sent: the one the engine generated.
    secret: str | None = None

    @classmethod
    def of_registered(cls, made: Registered) -> WebhookCreatedPublic:
        return cls(
            **WebhookPublic.of(made.webhook).model_dump(),
            signing_secret=made.signing_secret,
            secret=made.generated_secret,
        )


class WebhooksPublic(BaseModel):
    webhooks: list[WebhookPublic]
    total: int
    page: int
    pages: int

    @classmethod
    def of(cls, found: Page) -> WebhooksPublic:
        return cls(
            webhooks=[WebhookPublic.of(row) for row in found.items],
            total=found.total,
            page=found.page,
            pages=found.pages,
        )


class DeliveryPublic(BaseModel):
    id: str
    event_id: str
    event_type: str
    attempt: int
    status: str
    status_code: int | None
    error: str | None
    latency_ms: int | None
    next_retry_at: str | None
    created_at: str

    @classmethod
    def of(cls, row: WebhookDelivery) -> DeliveryPublic:
        return cls(
            id=row.id,
            event_id=row.event_id,
            event_type=row.event_type,
            attempt=row.attempt,
            status=row.status,
            status_code=row.status_code,
            error=row.error,
            latency_ms=row.latency_ms,
            next_retry_at=iso(row.next_retry_at) if row.next_retry_at else None,
            created_at=iso(row.created_at),
        )


class DeliveriesPublic(BaseModel):
    deliveries: list[DeliveryPublic]
    total: int
    page: int
    pages: int

    @classmethod
    def of(cls, found: Page) -> DeliveriesPublic:
        return cls(
            deliveries=[DeliveryPublic.of(row) for row in found.items],
            total=found.total,
            page=found.page,
            pages=found.pages,
        )


class WebhookTestPublic(BaseModel):
    webhook_id: str
    event_id: str
    status: str  # "queued": the delivery log shows how it went
