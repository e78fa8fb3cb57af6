"""API keys (zentoria ``/api-keys``): shown once at creation, stored as hashes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, field_validator

from api.deps import Caller, requires
from api.envelope import Envelope, ok
from api.schemas.identity import ApiKeyCreatedPublic, ApiKeyPublic, ApiKeysPublic
from engine.db.tables import ApiKey, User
from engine.identity import accounts
from engine.identity.principals import SCOPES
from engine.platform.errors import InvalidInput, NotFound

router = APIRouter(prefix="/api/v1/api-keys", tags=["api keys"])


class ApiKeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    # Known scopes only (``_known_scopes``); a repeated one counts once.
    scopes: list[str] = Field(
        min_length=1,
        max_length=len(SCOPES),
        json_schema_extra={"items": {"type": "string", "enum": list(SCOPES)}},
    )
    expires_at: datetime | None = Field(
        default=None, description="With a time zone, and in the future"
    )

    @field_validator("scopes")
    @classmethod
    def _known_scopes(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(SCOPES))
        if unknown:
            raise ValueError(f"unknown scope(s): {', '.join(unknown)}")
        return sorted(set(value))

    @field_validator("expires_at")
    @classmethod
    def _future(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("expires_at needs a timezone (e.g. 2026-12-31T23:59:59Z)")
        if value <= datetime.now(UTC):
            raise ValueError("expires_at must be in the future")
        return value


def _sees_all_keys(caller: Caller) -> bool:
    return caller.principal.allows("admin")


@router.post(
    "",
    status_code=201,
    response_model=Envelope[ApiKeyCreatedPublic],
    summary="Create an API key (the key is shown once)",
)
async def create_api_key(
    request: Request, caller: Annotated[Caller, requires("keys:write")], body: ApiKeyCreate
) -> JSONResponse:
    if caller.principal.kind == "admin_key":
        raise InvalidInput("The settings admin key cannot own API keys")
    user = await caller.db.get(User, caller.principal.user_id, what="user")
    issued = await accounts.create_api_key(
        caller.session,
        user,
        body.name,
        body.scopes,
        expires_at=body.expires_at,
        issuer=caller.principal,
    )
    await caller.session.commit()
    return ok(
        ApiKeyCreatedPublic(**ApiKeyPublic.of(issued.record).model_dump(), key=issued.secret),
        request_id=request.state.request_id,
        status_code=201,
    )


@router.get(
    "", response_model=Envelope[ApiKeysPublic], summary="List API keys (never their secrets)"
)
async def read_api_keys(
    request: Request, caller: Annotated[Caller, requires("keys:read")]
) -> JSONResponse:
    query = caller.db.select(ApiKey).order_by(ApiKey.created_at.desc(), ApiKey.id)
    if not _sees_all_keys(caller):
        query = query.where(ApiKey.user_id == caller.principal.user_id)
    keys = (await caller.session.scalars(query)).all()
    data = ApiKeysPublic(api_keys=[ApiKeyPublic.of(key) for key in keys])
    return ok(data, request_id=request.state.request_id)


@router.delete("/{key_id}", status_code=204, summary="Revoke an API key")
async def delete_api_key(
    key_id: str, caller: Annotated[Caller, requires("keys:write")]
) -> Response:
    key = await caller.db.get(ApiKey, key_id, what="API key")
    if not _sees_all_keys(caller) and key.user_id != caller.principal.user_id:
        raise NotFound(f"API key {key_id} not found")  # same answer as a missing key
    await accounts.revoke_api_key(caller.session, key)
    await caller.session.commit()
    return Response(status_code=204)
