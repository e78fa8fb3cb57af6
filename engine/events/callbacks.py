"""Inbound callbacks: a one-time URL an external system calls to wake a waiting workflow.

A workflow (a pipeline's ``wait_for_callback`` step, or any other) opens a
callback: a URL ``/api/v1/callbacks/{token}`` and a signing secret of its own.
The caller signs its request like a webhook (Standard Webhooks, or
``X-Webhook-Signature: sha256=<hex HMAC>``; ``engine.events.signing``); the
first verified request is delivered to the workflow as a signal carrying the
body, and the URL is used up. Repeating that same message (by its id) is
answered 200 again without a second signal; any other message gets 410, as do
expired URLs and URLs whose workflow has ended. How long the workflow waits is
the workflow's own business (its timer), not this module's.

The token is stored only as its SHA-256 and the secret only encrypted; neither
is ever logged or put into workflow history (the run knows the URL, never the
secret). A callback opened with a ``dedupe_key`` gets its token from an HMAC of
that key under the deployment's secret, so a retried opener (an activity whose
first attempt died) is handed the same URL and secret instead of a second,
usable callback; the tenant can read both again through its executions.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client
from temporalio.service import RPCError

from engine.db.dedupe import record_once
from engine.db.scope import TenantScope
from engine.db.tables import Callback
from engine.events.signing import SIGNATURE_HEADER, WHSEC, verify
from engine.platform.crypto import decrypt_secret, encrypt_secret
from engine.platform.errors import Conflict, NotFound, Unauthorized, WeftError
from engine.platform.ids import new_id
from engine.platform.runs import is_not_found
from engine.platform.settings import Settings
from workflows.pipeline_payloads import CallbackReceived

PATH_PREFIX = "/api/v1/callbacks/"
# A callback's body travels into workflow history: kept small.
MAX_BODY_BYTES = 256 * 1024
MAX_TOKEN_LENGTH = 200
WAITING, RECEIVED = "waiting", "received"


class CallbackNotFound(NotFound):
    code = "CALLBACK_NOT_FOUND"


class CallbackGone(WeftError):
    """Used, expired, or its workflow has ended (HTTP 410)."""

    code = "CALLBACK_GONE"


class CallbackTooLarge(WeftError):
    code = "PAYLOAD_TOO_LARGE"


class OpenedCallback(NamedTuple):
    """A callback as its opener gets it: the URL's path, its token and the secret."""

    callback_id: str
    url_path: str
    token: str
    secret: str


@dataclass(frozen=True)
class Received:
    callback_id: str
    message_id: str
    received_at: datetime
    duplicate: bool  # the same message again: answered, not delivered twice


@dataclass(frozen=True)
class CallbackInfo:
    """A callback as its tenant may read it (URL and secret only while it waits)."""

    id: str
    workflow_id: str
    dedupe_key: str | None
    status: str  # waiting | received | expired
    url_path: str | None
    secret: str | None
    expires_at: datetime
    created_at: datetime
    received_at: datetime | None
    message_id: str | None


# --- tokens and secrets ---------------------------------------------------------


def _token_key(settings: Settings) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"weftworks", info=b"callback-tokens"
    ).derive(settings.resolved_jwt_secret().encode())


def derived_token(settings: Settings, dedupe_key: str) -> str:
    """The token of the callback opened with ``dedupe_key`` (unguessable without the
    deployment's secret, and the same on every attempt)."""
    digest = hmac.new(_token_key(settings), dedupe_key.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def url_path(token: str) -> str:
    return PATH_PREFIX + token


def new_secret() -> str:
    """A signing secret in the ``whsec_<base64>`` form Standard Webhooks libraries take
    (for ``sha256=`` signatures, the HMAC key is this whole string)."""
    return WHSEC + base64.b64encode(secrets.token_bytes(24)).decode()


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- opening ---------------------------------------------------------------------


async def open_callback(
    session: AsyncSession,
    settings: Settings,
    tenant_id: str,
    workflow_id: str,
    signal: str,
    dedupe_key: str | None,
    *,
    ttl_seconds: float | None = None,
) -> OpenedCallback:
    """Open a callback that signals ``workflow_id`` with ``signal`` (the caller commits).

    The URL stays valid for ``ttl_seconds`` (at most ``WEFT_CALLBACK_TTL_SECONDS``).
    Opening again with the same ``dedupe_key`` returns the same callback, token
    and secret; nothing second is created.
    """
    if dedupe_key:
        existing = await session.scalar(select(Callback).where(Callback.dedupe_key == dedupe_key))
        if existing is not None:
            return await _reopen(session, settings, existing, tenant_id, dedupe_key)
    seconds = float(settings.callback_ttl_seconds)
    if ttl_seconds is not None and ttl_seconds > 0:
        seconds = min(seconds, ttl_seconds)
    token = derived_token(settings, dedupe_key) if dedupe_key else secrets.token_urlsafe(32)
    secret = new_secret()
    row = Callback(
        id=new_id("cbk"),
        tenant_id=tenant_id,
        token_hash=token_hash(token),
        secret_encrypted=encrypt_secret(settings, secret),
        workflow_id=workflow_id,
        signal=signal,
        dedupe_key=dedupe_key,
        status=WAITING,
        expires_at=datetime.now(UTC) + timedelta(seconds=seconds),
    )
    if not await record_once(session, row, Callback.dedupe_key, dedupe_key):
        # A concurrent attempt opened it first (its row is there now).
        existing = await session.scalar(select(Callback).where(Callback.dedupe_key == dedupe_key))
        if existing is None or not dedupe_key:
            raise Conflict("the callback could not be opened; try again")
        return await _reopen(session, settings, existing, tenant_id, dedupe_key)
    return OpenedCallback(row.id, url_path(token), token, secret)


async def _reopen(
    session: AsyncSession, settings: Settings, row: Callback, tenant_id: str, dedupe_key: str
) -> OpenedCallback:
    """The callback already opened under ``dedupe_key``. Should the deployment's
    secret have changed since, the old URL is invalidated and a new one issued."""
    if row.tenant_id != tenant_id:
        raise Conflict("this callback key is taken")
    token = derived_token(settings, dedupe_key)
    try:
        secret = decrypt_secret(settings, row.secret_encrypted)
    except ValueError:
        secret = None
    if secret is None or row.token_hash != token_hash(token):
        secret = new_secret()
        row.token_hash = token_hash(token)
        row.secret_encrypted = encrypt_secret(settings, secret)
        await session.flush()
    return OpenedCallback(row.id, url_path(token), token, secret)


# --- receiving --------------------------------------------------------------------


def _signed(headers: Mapping[str, str]) -> bool:
    names = {key.lower() for key in headers}
    return "webhook-signature" in names or SIGNATURE_HEADER.lower() in names


def _parsed(body: bytes) -> Any:
    """The body as JSON when it is JSON, else as text."""
    text = body.decode("utf-8", errors="replace")
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


async def receive(
    session: AsyncSession,
    client: Client,
    settings: Settings,
    token: str,
    body: bytes,
    headers: Mapping[str, str],
) -> Received:
    """Verify a call to a callback URL and deliver it to the waiting workflow.

    Unsigned: 401 before anything is looked up (an unsigned request learns nothing
    about tokens). Unknown token: 404. Expired: 410. Bad signature: 401 (the
    callback keeps waiting). Already used: the same message id again is answered
    as before (no second signal), any other message gets 410. Otherwise the
    workflow is signalled with ``{callback_id, body, message_id, received_at}``,
    and the callback is marked received in the same transaction that claimed it,
    so two racing messages cannot both be accepted, and a failed signal leaves
    the callback waiting.
    """
    if len(body) > MAX_BODY_BYTES:
        raise CallbackTooLarge(
            f"a callback body holds at most {MAX_BODY_BYTES} bytes",
            details={"limit_bytes": MAX_BODY_BYTES},
        )
    if not _signed(headers):
        raise Unauthorized(
            "the request is not signed (send webhook-id, webhook-timestamp and "
            "webhook-signature, or X-Webhook-Signature: sha256=…)"
        )
    row = None
    if 0 < len(token) <= MAX_TOKEN_LENGTH:
        row = await session.scalar(select(Callback).where(Callback.token_hash == token_hash(token)))
    if row is None:
        raise CallbackNotFound("No callback at this URL")
    now = datetime.now(UTC)
    if _aware(row.expires_at) <= now:
        raise CallbackGone("This callback URL has expired", details={"reason": "expired"})
    try:
        secret = decrypt_secret(settings, row.secret_encrypted)
    except ValueError:
        raise CallbackGone(
            "This callback URL is no longer valid", details={"reason": "reissued"}
        ) from None
    message_id = verify(secret, body, headers) or "sha256:" + hashlib.sha256(body).hexdigest()
    callback_id = row.id
    if row.status == RECEIVED:
        return _repeat(row, message_id)
    claimed = await session.execute(
        update(Callback)
        .where(Callback.id == callback_id, Callback.status == WAITING)
        .values(status=RECEIVED, received_message_id=message_id[:200], received_at=now)
        .execution_options(synchronize_session=False)
    )
    if getattr(claimed, "rowcount", 0) != 1:  # another message won the race
        await session.rollback()
        fresh = await session.get(Callback, callback_id, populate_existing=True)
        if fresh is None:
            raise CallbackNotFound("No callback at this URL")
        return _repeat(fresh, message_id)
    delivered = CallbackReceived(
        callback_id=callback_id, body=_parsed(body), message_id=message_id, received_at=now
    )
    try:
        await client.get_workflow_handle(row.workflow_id).signal(row.signal, delivered)
    except RPCError as exc:
        await session.rollback()
        if is_not_found(exc):  # the run has ended (completed, failed, timed out)
            raise CallbackGone(
                "The workflow waiting for this callback has ended",
                details={"reason": "workflow_ended"},
            ) from None
        raise
    except BaseException:
        await session.rollback()
        raise
    await session.commit()
    return Received(callback_id, message_id, now, duplicate=False)


def _repeat(row: Callback, message_id: str) -> Received:
    if row.received_message_id == message_id[:200] and row.received_at is not None:
        return Received(row.id, message_id, _aware(row.received_at), duplicate=True)
    raise CallbackGone("This callback URL was already used", details={"reason": "used"})


# --- reading -----------------------------------------------------------------------


async def callbacks_of(db: TenantScope, settings: Settings, workflow_id: str) -> list[CallbackInfo]:
    """The callbacks a run (and the sub-runs it started) opened, oldest first.

    A waiting, unexpired callback comes with its URL and secret, for the tenant
    to hand to the system that will call it.
    """
    rows = await db.session.scalars(
        db.select(Callback)
        .where(
            or_(
                Callback.workflow_id == workflow_id,
                Callback.workflow_id.startswith(f"{workflow_id}-", autoescape=True),
            )
        )
        .order_by(Callback.created_at, Callback.id)
    )
    now = datetime.now(UTC)
    found = []
    for row in rows:
        status = row.status
        if status == WAITING and _aware(row.expires_at) <= now:
            status = "expired"
        path = secret = None
        if status == WAITING and row.dedupe_key:
            token = derived_token(settings, row.dedupe_key)
            if token_hash(token) == row.token_hash:
                try:
                    secret = decrypt_secret(settings, row.secret_encrypted)
                    path = url_path(token)
                except ValueError:
                    secret = None
        found.append(
            CallbackInfo(
                id=row.id,
                workflow_id=row.workflow_id,
                dedupe_key=row.dedupe_key,
                status=status,
                url_path=path,
                secret=secret,
                expires_at=_aware(row.expires_at),
                created_at=_aware(row.created_at),
                received_at=_aware(row.received_at) if row.received_at else None,
                message_id=row.received_message_id,
            )
        )
    return found
