"""z2 consent management: ``/api/v1/consent/request``, ``/status``, ``/grant`` and
``/revoke`` (a data subject's consent to process categories of their data)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from api.deps import Caller, TemporalDep, requires
from api.envelope import Envelope, ok
from api.schemas.consent import (
    ConsentDecisionIn,
    ConsentPublic,
    ConsentRequestIn,
    ConsentRevokedPublic,
    ConsentStatusPublic,
)
from engine.consent import consents

router = APIRouter(prefix="/api/v1/consent", tags=["consent"])

# Consent is about the caller's own data: every user's credential may manage it.
Subject = Annotated[Caller, requires("profile")]


@router.post(
    "/request",
    status_code=201,
    response_model=Envelope[ConsentPublic],
    summary="Request a user's consent to process categories of their data (pending)",
)
async def create_consent_request(
    request: Request, caller: Subject, body: ConsentRequestIn
) -> JSONResponse:
    row = await consents.request_consent(
        caller.db,
        requested_by=caller.principal.user_id,
        request_type=body.request_type,
        data_categories=body.data_categories,
        purpose=body.purpose,
        description=body.description,
        retention_period=body.retention_period,
        user_id=body.user_id,
    )
    return ok(ConsentPublic.of(row), request_id=request.state.request_id, status_code=201)


@router.get(
    "/status",
    response_model=Envelope[ConsentStatusPublic],
    summary="The current user's consents (a tenant admin may name user_id)",
)
async def read_consent_status(
    request: Request,
    caller: Subject,
    status: Annotated[str | None, Query(max_length=20)] = None,
    data_category: Annotated[str | None, Query(max_length=100)] = None,
    user_id: Annotated[str | None, Query(max_length=40)] = None,
) -> JSONResponse:
    found = await consents.consents_of(
        caller.db, caller.principal, user_id=user_id, status=status, data_category=data_category
    )
    data = ConsentStatusPublic(
        user_id=found.user_id,
        consents=[ConsentPublic.of(row) for row in found.consents],
        total=len(found.consents),
        granted_categories=found.granted_categories,
    )
    return ok(data, request_id=request.state.request_id)


@router.post(
    "/grant",
    response_model=Envelope[ConsentPublic],
    summary="Grant a pending consent (its data subject only)",
)
async def grant_consent(request: Request, caller: Subject, body: ConsentDecisionIn) -> JSONResponse:
    row = await consents.grant(caller.db, caller.principal, body.consent_id)
    return ok(ConsentPublic.of(row), request_id=request.state.request_id)


@router.post(
    "/revoke",
    response_model=Envelope[ConsentRevokedPublic],
    summary="Revoke a consent (the data subject or a tenant admin); stops the runs it covered",
)
async def revoke_consent(
    request: Request, caller: Subject, body: ConsentDecisionIn, client: TemporalDep
) -> JSONResponse:
    revoked = await consents.revoke(caller.db, client, caller.principal, body.consent_id)
    data = ConsentRevokedPublic(
        **ConsentPublic.of(revoked.consent).model_dump(),
        stopped_executions=revoked.stopped_executions,
    )
    return ok(data, request_id=request.state.request_id)
