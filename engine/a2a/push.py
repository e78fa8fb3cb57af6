"""A2A push notifications, delivered by the webhook machinery.

A task's push config is a row (``a2a_push_configs``) plus a webhook of the
tenant that carries its deliveries: the config's URL, checked under the tenant
egress rules like any webhook, and the config's ``token`` as its signing
secret (one is generated when the client sends none). That webhook subscribes
to no event type, so the dispatcher never routes the tenant's other events to
it; instead each change of the task (an ``a2a.task.status`` event) starts one
``WebhookDeliveryWorkflow`` per push config of that task. Deliveries are
therefore signed (``X-Webhook-Signature`` and Standard Webhooks headers keyed
with the token), retried on the webhook schedule and logged, like every
webhook's; the body is the event, whose ``data.task`` is the A2A task.

A config's id is the client's (or a generated one); it is unique per task.
"""

from __future__ import annotations

import contextlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError

from engine.a2a.errors import A2ATaskNotFound, PushConfigNotFound
from engine.db.scope import TenantScope
from engine.db.tables import A2APushConfig, A2ATask, Webhook
from engine.events.webhooks import check_url
from engine.platform.crypto import decrypt_secret, encrypt_secret
from engine.platform.errors import InvalidInput
from engine.platform.runs import RunOptions, start_run
from engine.platform.settings import Settings
from workflows.event_payloads import DeliveryInput
from workflows.webhook_delivery import WebhookDeliveryWorkflow, delivery_id

MAX_CONFIG_ID = 30
MAX_CONFIGS_PER_TASK = 10


@dataclass(frozen=True)
class PushConfig:
    """A push config as A2A shows it (``TaskPushNotificationConfig``)."""

    id: str
    task_id: str
    url: str
    token: str | None
    scheme: str | None
    credentials: str | None

    def as_dict(self) -> dict[str, Any]:
        """The 1.0 ``TaskPushNotificationConfig`` dict."""
        out: dict[str, Any] = {"id": self.id, "taskId": self.task_id, "url": self.url}
        if self.token:
            out["token"] = self.token
        if self.scheme:
            auth: dict[str, Any] = {"scheme": self.scheme}
            if self.credentials:
                auth["credentials"] = self.credentials
            out["authentication"] = auth
        return out


def row_id(task_id: str, config_id: str) -> str:
    return f"{task_id}/{config_id}"


def _config_of(settings: Settings, row: A2APushConfig) -> PushConfig:
    auth = dict(row.authentication or {})
    credentials = auth.get("credentials_encrypted")
    return PushConfig(
        id=row.id.split("/", 1)[1],
        task_id=row.task_id,
        url=row.url,
        token=decrypt_secret(settings, row.token_encrypted) if row.token_encrypted else None,
        scheme=auth.get("scheme"),
        credentials=decrypt_secret(settings, credentials) if credentials else None,
    )


async def _task(db: TenantScope, task_id: str) -> A2ATask:
    row = await db.find(A2ATask, task_id)
    if row is None:
        raise A2ATaskNotFound(f"task {task_id} not found")
    return row


@dataclass(frozen=True)
class PushRequest:
    """A push config as a client asks for it."""

    url: str
    config_id: str | None = None
    token: str | None = None
    scheme: str | None = None
    credentials: str | None = None


async def save_config(
    db: TenantScope,
    settings: Settings,
    task_id: str,
    asked: PushRequest,
    *,
    created_by: str | None = None,
) -> PushConfig:
    """Create a task's push config, or replace the one with the same id."""
    url, config_id, token = asked.url, asked.config_id, asked.token
    scheme, credentials = asked.scheme, asked.credentials
    task = await _task(db, task_id)
    config_id = config_id or uuid.uuid4().hex[:MAX_CONFIG_ID]
    if len(config_id) > MAX_CONFIG_ID or "/" in config_id:
        raise InvalidInput(
            f"a push config id has at most {MAX_CONFIG_ID} characters and no '/'",
            details={"field": "id"},
        )
    checked = await check_url(settings, url)  # InvalidInput naming why not
    secret = token or secrets.token_urlsafe(32)
    auth: dict[str, Any] = {}
    if scheme:
        auth["scheme"] = scheme
    if credentials:
        auth["credentials_encrypted"] = encrypt_secret(settings, credentials)
    row = await db.find(A2APushConfig, row_id(task.id, config_id))
    if row is None and len(await _rows(db, task.id)) >= MAX_CONFIGS_PER_TASK:
        raise InvalidInput(f"a task has at most {MAX_CONFIGS_PER_TASK} push configs")
    hook = await db.find(Webhook, row.webhook_id) if row is not None and row.webhook_id else None
    if hook is None:
        hook = Webhook(events=[], status="active", consecutive_failures=0, created_by=created_by)
        db.add(hook)
    hook.url = checked
    hook.description = f"A2A push notifications of task {task.id} (config {config_id})"
    hook.secret_encrypted = encrypt_secret(settings, secret)
    await db.session.flush()  # the webhook's id
    if row is None:
        row = A2APushConfig(id=row_id(task.id, config_id), task_id=task.id, url=checked)
        db.add(row)
    row.url = checked
    row.token_encrypted = encrypt_secret(settings, token) if token else None
    row.authentication = auth
    row.webhook_id = hook.id
    await db.session.commit()
    return _config_of(settings, row)


async def _rows(db: TenantScope, task_id: str) -> list[A2APushConfig]:
    query = (
        db.select(A2APushConfig)
        .where(A2APushConfig.task_id == task_id)
        .order_by(A2APushConfig.created_at, A2APushConfig.id)
    )
    return list(await db.session.scalars(query))


async def get_config(
    db: TenantScope, settings: Settings, task_id: str, config_id: str
) -> PushConfig:
    task = await _task(db, task_id)
    row = await db.find(A2APushConfig, row_id(task.id, config_id))
    if row is None:
        raise PushConfigNotFound(f"push config {config_id} of task {task_id} not found")
    return _config_of(settings, row)


async def list_configs(db: TenantScope, settings: Settings, task_id: str) -> list[PushConfig]:
    task = await _task(db, task_id)
    return [_config_of(settings, row) for row in await _rows(db, task.id)]


async def delete_config(db: TenantScope, task_id: str, config_id: str) -> None:
    """Delete a push config and its webhook (a missing one is already gone)."""
    task = await _task(db, task_id)
    row = await db.find(A2APushConfig, row_id(task.id, config_id))
    if row is None:
        return
    if row.webhook_id:
        hook = await db.find(Webhook, row.webhook_id)
        if hook is not None:
            await db.delete(hook)
    await db.delete(row)
    await db.session.commit()


async def push_targets(
    session: AsyncSession, tenant_id: str, task_id: str
) -> list[tuple[str, str]]:
    """``(webhook id, URL)`` of each webhook that carries a task's pushes."""
    rows = await session.execute(
        select(Webhook.id, Webhook.url)
        .join(A2APushConfig, A2APushConfig.webhook_id == Webhook.id)
        .where(A2APushConfig.task_id == task_id, A2APushConfig.tenant_id == tenant_id)
    )
    return [(str(hook_id), str(url)) for hook_id, url in rows]


async def deliver(
    client: Client, settings: Settings, tenant_id: str, event_id: str, webhook: tuple[str, str]
) -> None:
    """Start the delivery of one event to one push config's webhook (once)."""
    webhook_id, url = webhook
    with contextlib.suppress(WorkflowAlreadyStartedError):
        await start_run(
            client,
            settings,
            WebhookDeliveryWorkflow.run,
            DeliveryInput(
                tenant_id=tenant_id,
                event_id=event_id,
                webhook_id=webhook_id,
                schedule_seconds=settings.webhook_retry_schedule_seconds,
                jitter=settings.webhook_retry_jitter,
                attempt_timeout_seconds=settings.webhook_timeout_seconds + 120,
            ),
            RunOptions(
                workflow_id=delivery_id(event_id, webhook_id),
                kind="webhook",
                tenant_id=tenant_id,
                started_by="system",
                summary=f"a2a.task.status push to {urlsplit(url).netloc}",
                once=True,
            ),
        )
