"""One delivery attempt of one event to one webhook, and its entry in the log.

The attempt reads the webhook and event afresh (a webhook disabled or deleted
since is skipped), signs the body, and POSTs it through the egress guard under
the tenant rules, to the address just checked; redirects are never followed.
2xx is delivered; 410 Gone disables the webhook; anything else (including a
redirect, a timeout, a refused address) is a failed attempt, retried on the
schedule, later when the receiver sent ``Retry-After`` with 429 or 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine import __version__
from engine.db.connection import transaction
from engine.db.tables import Event, Webhook, WebhookDelivery
from engine.events import outbox
from engine.events.catalog import EventType, public_event
from engine.events.signing import body_bytes, signature_headers
from engine.platform.crypto import decrypt_secret
from engine.platform.egress import EgressDenied, UpstreamTooLarge, guarded_stream
from engine.platform.settings import Settings
from workflows.event_payloads import AttemptInput, AttemptResult, ExhaustedInput

MAX_RETRY_AFTER = 24 * 3600.0


@dataclass(frozen=True)
class Response:
    status_code: int | None
    retry_after: float | None
    error: str | None
    latency_ms: int


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` as seconds from now (delta-seconds or an HTTP date), capped."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max((when - now).total_seconds(), 0.0), MAX_RETRY_AFTER)


class Deliverer:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        http: httpx.AsyncClient,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.http = http

    async def attempt(self, params: AttemptInput) -> AttemptResult:
        async with self.sessions() as session:
            hook = await session.get(Webhook, params.webhook_id)
            event = await session.get(Event, params.event_id)
        if hook is None or event is None or hook.tenant_id != params.tenant_id:
            return AttemptResult(outcome="skipped")  # deleted meanwhile: nothing to log
        if hook.status != "active":
            await self._log(params, event, "skipped", Response(None, None, "webhook disabled", 0))
            return AttemptResult(outcome="skipped")
        response = await self._post(hook, event)
        code = response.status_code
        if code is not None and 200 <= code < 300:
            await self._log(params, event, "delivered", response, reset=True)
            return AttemptResult(outcome="delivered", status_code=code)
        if code == 410:
            await self._log(params, event, "gone", response)
            await self._disable(params.webhook_id, "the receiver answered 410 Gone", event.id)
            return AttemptResult(outcome="gone", status_code=code)
        if params.next_delay_seconds is None:
            await self._log(params, event, "failed", response)
            return AttemptResult(outcome="failed", status_code=code)
        wait = params.next_delay_seconds
        if code in (429, 503) and response.retry_after is not None:
            wait = max(wait, response.retry_after)
        await self._log(params, event, "retrying", response, retry_in=wait)
        return AttemptResult(outcome="retry", status_code=code, retry_in_seconds=wait)

    async def exhausted(self, params: ExhaustedInput) -> None:
        """Every attempt of one event failed: one more failed event in a row."""
        # One atomic increment: two events failing at the same moment both count
        # (a read-then-write lost one of them on SQLite, which has no row locks).
        async with transaction(self.sessions) as session:
            failures = await session.scalar(
                update(Webhook)
                .where(Webhook.id == params.webhook_id, Webhook.status == "active")
                .values(consecutive_failures=Webhook.consecutive_failures + 1)
                .returning(Webhook.consecutive_failures)
            )
        limit = self.settings.webhook_disable_after_failures
        if failures is None or failures < limit:
            return
        await self._disable(
            params.webhook_id,
            f"deliveries of {limit} events in a row failed",
            params.event_id,
        )

    async def _post(self, hook: Webhook, event: Event) -> Response:
        settings = self.settings
        try:
            secret = decrypt_secret(settings, hook.secret_encrypted)
        except ValueError as exc:  # the deployment's key changed: no attempt can succeed
            return Response(None, None, str(exc), 0)
        body = body_bytes(public_event(event.id, event.type, event.created_at, event.data or {}))
        now = datetime.now(UTC)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"Weftworks-Webhooks/{__version__}",
            "X-Webhook-Event": event.type,
            "X-Webhook-Id": event.id,
            **signature_headers(secret, event.id, body, now),
        }
        started = time.monotonic()
        status: int | None = None
        retry_after: float | None = None
        error: str | None = None
        try:
            async with asyncio.timeout(settings.webhook_timeout_seconds):
                async with guarded_stream(
                    self.http,
                    "POST",
                    hook.url,
                    settings=settings,
                    headers=headers,
                    content=body,
                    timeout_seconds=settings.webhook_timeout_seconds,
                    tenant=True,
                    max_bytes=settings.webhook_max_response_bytes,
                ) as response:
                    status = response.status_code
                    retry_after = retry_after_seconds(response.headers.get("retry-after"), now)
                    with contextlib.suppress(UpstreamTooLarge):  # the answer is not needed
                        await response.aread()
        except TimeoutError:
            error = f"no answer within {settings.webhook_timeout_seconds:g}s"
        except EgressDenied as exc:
            error = exc.message
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        if status is not None and 300 <= status < 400:
            error = "redirect not followed"
        latency = int((time.monotonic() - started) * 1000)
        return Response(status, retry_after, error, latency)

    async def _log(
        self,
        params: AttemptInput,
        event: Event,
        status: str,
        response: Response,
        *,
        retry_in: float | None = None,
        reset: bool = False,
    ) -> None:
        """One row per attempt (an activity retried after writing it updates the row)."""
        async with transaction(self.sessions) as session:
            row = await session.scalar(
                select(WebhookDelivery).where(
                    WebhookDelivery.webhook_id == params.webhook_id,
                    WebhookDelivery.event_id == params.event_id,
                    WebhookDelivery.attempt == params.attempt,
                )
            )
            if row is None:
                row = WebhookDelivery(
                    tenant_id=params.tenant_id,
                    webhook_id=params.webhook_id,
                    event_id=params.event_id,
                    event_type=event.type,
                    attempt=params.attempt,
                )
                session.add(row)
            row.status, row.status_code = status, response.status_code
            row.error, row.latency_ms = response.error, response.latency_ms
            row.next_retry_at = (
                datetime.now(UTC) + timedelta(seconds=retry_in) if retry_in is not None else None
            )
            if reset:
                hook = await session.get(Webhook, params.webhook_id)
                if hook is not None:
                    hook.consecutive_failures = 0

    async def _disable(self, webhook_id: str, reason: str, event_id: str) -> None:
        """Disable the webhook and tell the tenant with a ``system.notification``."""
        async with transaction(self.sessions) as session:
            hook = await session.get(Webhook, webhook_id)
            if hook is None or hook.status != "active":
                return
            hook.status, hook.disabled_reason = "disabled", reason
            await outbox.emit(
                session,
                hook.tenant_id,
                EventType.SYSTEM_NOTIFICATION,
                {
                    "kind": "webhook.disabled",
                    "webhook_id": hook.id,
                    "url": hook.url,
                    "reason": reason,
                    "message": f"Webhook {hook.id} was disabled: {reason}.",
                },
                subject=hook.id,
                dedupe_key=f"webhook-disabled:{hook.id}:{event_id}",
            )
