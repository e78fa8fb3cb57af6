"""Consents (z2 ``/api/v1/consent/…``) and their enforcement on pipeline executions.

A consent names a data subject (a user of the tenant), the categories of their
data it covers, a purpose and a retention period. It is requested (by anyone in
the tenant, for themselves or for another user), then granted by the subject
alone, and revoked by the subject or a tenant admin; a revoked consent stays
revoked (a new request starts over).

A pipeline definition (or one of its steps) may declare ``data_categories``.
Such an execution processes one subject's data — ``input_data.data_subject_id``,
else the user who starts it — and starts only while that subject's granted
consents cover every declared category (``ConsentRequired`` otherwise). The run
checks again before each step that touches categories (activity
``check_consent``), and a revoke signals the subject's running executions whose
categories no granted consent covers any more (signal ``consent_revoked``): they
stop, failed with ``CONSENT_REVOKED``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client
from temporalio.service import RPCError

from engine.db.scope import TenantScope
from engine.db.tables import Consent, Execution, User
from engine.identity.principals import ADMIN_SCOPE, Principal
from engine.platform.errors import Conflict, Forbidden, InvalidInput, NotFound, WeftError
from engine.platform.runs import is_not_found
from workflows.pipeline_payloads import CONSENT_REVOKED_SIGNAL, ConsentRevoked

log = logging.getLogger("weft.consent")

STATUSES = ("pending", "granted", "revoked")
OPEN_EXECUTIONS = ("scheduled", "running")
# Where an execution names whose data it processes (else: the user who starts it).
SUBJECT_INPUT = "data_subject_id"


class ConsentNotFound(NotFound):
    code = "CONSENT_NOT_FOUND"


class ConsentRequired(WeftError):
    """The data subject has not granted consent for categories an execution declares (403)."""

    code = "CONSENT_REQUIRED"


class ConsentAlreadyRevoked(Conflict):
    """A revoked consent cannot be granted again: request a new one (409)."""

    code = "CONSENT_ALREADY_REVOKED"


def is_tenant_admin(principal: Principal) -> bool:
    """An admin of the caller's own tenant (its role, or a credential with the admin scope)."""
    return principal.role == "admin" or ADMIN_SCOPE in principal.scopes


async def user_in_tenant(session: AsyncSession, tenant_id: str, user_id: str) -> bool:
    found = await session.scalar(
        select(User.id).where(User.id == user_id, User.tenant_id == tenant_id)
    )
    return found is not None


# --- the z2 routes ---------------------------------------------------------------


async def request_consent(
    db: TenantScope,
    *,
    requested_by: str,
    request_type: str,
    data_categories: Sequence[str],
    purpose: str,
    description: str | None = None,
    retention_period: str | None = None,
    user_id: str | None = None,
) -> Consent:
    """A pending consent of ``user_id`` (default: the requester) for ``data_categories``."""
    tenant_id = str(db.tenant_id)
    subject = user_id or requested_by
    if not await user_in_tenant(db.session, tenant_id, subject):
        raise InvalidInput(
            f"user_id {subject!r} names no user of this tenant", details={"field": "user_id"}
        )
    row = Consent(
        user_id=subject,
        request_type=request_type,
        description=description,
        data_categories=list(dict.fromkeys(data_categories)),
        purpose=purpose,
        retention_period=retention_period,
        status="pending",
        requested_by=requested_by,
    )
    db.add(row)
    await db.session.commit()
    await db.session.refresh(row)
    return row


@dataclass(frozen=True)
class ConsentStatus:
    user_id: str  # the data subject
    consents: list[Consent]  # newest first
    granted_categories: list[str]  # what the granted ones among them cover


async def consents_of(
    db: TenantScope,
    principal: Principal,
    *,
    user_id: str | None = None,
    status: str | None = None,
    data_category: str | None = None,
) -> ConsentStatus:
    """The consents of the caller (or, for a tenant admin, of ``user_id``), newest first."""
    subject = user_id or principal.user_id
    if subject != principal.user_id and not is_tenant_admin(principal):
        raise Forbidden("Only a tenant admin may read another user's consents")
    if status is not None and status not in STATUSES:
        raise InvalidInput(
            f"status must be one of {', '.join(STATUSES)}", details={"field": "status"}
        )
    query = db.select(Consent).where(Consent.user_id == subject)
    if status:
        query = query.where(Consent.status == status)
    rows = await db.session.scalars(query.order_by(Consent.created_at.desc(), Consent.id.desc()))
    found = [row for row in rows if data_category is None or data_category in row.data_categories]
    granted = sorted({c for row in found if row.status == "granted" for c in row.data_categories})
    return ConsentStatus(subject, found, granted)


async def consent_of(db: TenantScope, consent_id: str) -> Consent:
    row = await db.find(Consent, consent_id)
    if row is None:
        raise ConsentNotFound(f"Consent {consent_id} not found")
    return row


async def grant(db: TenantScope, principal: Principal, consent_id: str) -> Consent:
    """Grant a pending consent: only its data subject may (granting again changes nothing)."""
    row = await consent_of(db, consent_id)
    if row.user_id != principal.user_id:
        raise Forbidden("Only the data subject may grant this consent")
    if row.status == "revoked":
        raise ConsentAlreadyRevoked(
            f"Consent {consent_id} was revoked; request a new one",
            details={"consent_id": consent_id, "status": row.status},
        )
    if row.status != "granted":
        row.status, row.granted_at = "granted", datetime.now(UTC)
        await db.session.commit()
        await db.session.refresh(row)
    return row


@dataclass(frozen=True)
class Revoked:
    consent: Consent
    stopped_executions: list[str]  # the running executions told to stop


async def revoke(db: TenantScope, client: Client, principal: Principal, consent_id: str) -> Revoked:
    """Revoke a consent (the data subject or a tenant admin; again: nothing changes) and
    stop the subject's running executions that it leaves without consent."""
    row = await consent_of(db, consent_id)
    if row.user_id != principal.user_id and not is_tenant_admin(principal):
        raise Forbidden("Only the data subject or a tenant admin may revoke this consent")
    if row.status != "revoked":
        row.status, row.revoked_at = "revoked", datetime.now(UTC)
        await db.session.commit()
        await db.session.refresh(row)
    stopped = await stop_executions(db.session, client, row)
    return Revoked(row, stopped)


async def stop_executions(session: AsyncSession, client: Client, consent: Consent) -> list[str]:
    """Signal ``consent_revoked`` to each open execution of the consent's subject whose
    categories, among the revoked ones, no other granted consent covers."""
    revoked = set(consent.data_categories)
    rows = await session.scalars(
        select(Execution).where(
            Execution.tenant_id == consent.tenant_id,
            Execution.data_subject_id == consent.user_id,
            Execution.status.in_(OPEN_EXECUTIONS),
        )
    )
    candidates = [row for row in rows if revoked & set(row.data_categories or ())]
    if not candidates:
        return []
    covered = await granted_categories(session, consent.tenant_id, consent.user_id)
    stopped = []
    for row in candidates:
        missing = [c for c in row.data_categories or () if c in revoked and c not in covered]
        if not missing:
            continue
        signal = ConsentRevoked(consent_id=consent.id, categories=missing)
        try:
            await client.get_workflow_handle(row.workflow_id).signal(CONSENT_REVOKED_SIGNAL, signal)
        except RPCError as exc:
            if not is_not_found(exc):  # a run that already ended needs nothing
                raise
            continue
        stopped.append(row.id)
    if stopped:
        log.info("consent %s revoked: stopping executions %s", consent.id, ", ".join(stopped))
    return stopped


# --- enforcement --------------------------------------------------------------------


async def granted_categories(session: AsyncSession, tenant_id: str, user_id: str) -> set[str]:
    """Every category the subject's granted consents cover."""
    rows = await session.scalars(
        select(Consent.data_categories).where(
            Consent.tenant_id == tenant_id,
            Consent.user_id == user_id,
            Consent.status == "granted",
        )
    )
    return {category for categories in rows for category in categories or ()}


async def missing_categories(
    session: AsyncSession, tenant_id: str, user_id: str, categories: Iterable[str]
) -> list[str]:
    """The ``categories`` no granted consent of the subject covers (empty: consent holds)."""
    wanted = list(dict.fromkeys(categories))
    if not wanted:
        return []
    covered = await granted_categories(session, tenant_id, user_id)
    return [category for category in wanted if category not in covered]


async def require_consent(
    session: AsyncSession,
    tenant_id: str,
    *,
    input_data: dict[str, Any],
    started_by: str,
    categories: Sequence[str],
) -> str:
    """The data subject of an execution that declares ``categories``, once their granted
    consents cover every one (``ConsentRequired`` naming the missing ones otherwise)."""
    named = input_data.get(SUBJECT_INPUT)
    if named is not None:
        if not isinstance(named, str) or not await user_in_tenant(session, tenant_id, named):
            raise InvalidInput(
                f"input_data.{SUBJECT_INPUT} names no user of this tenant",
                details={"field": f"input_data.{SUBJECT_INPUT}"},
            )
        subject = named
    else:
        subject = started_by
    missing = await missing_categories(session, tenant_id, subject, categories)
    if missing:
        raise ConsentRequired(
            "The data subject has not granted consent for: " + ", ".join(missing),
            details={
                "data_subject_id": subject,
                "missing_categories": missing,
                "required_categories": list(categories),
            },
        )
    return subject
