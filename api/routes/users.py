"""The caller's own profile (z2 ``/users/me``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import Caller, requires
from api.envelope import Envelope, ok
from api.schemas.identity import EmailAddress, UserPublic
from engine.db.tables import User
from engine.identity import accounts
from engine.platform.errors import Forbidden

router = APIRouter(prefix="/api/v1/users", tags=["users"])


class UserUpdate(BaseModel):
    # Privilege fields (role, tenant_id, is_admin, …) are not part of the model,
    # so a body that carries them changes nothing but name and e-mail.
    model_config = ConfigDict(extra="ignore")

    name: str | None = Field(default=None, max_length=200)
    full_name: str | None = Field(default=None, max_length=200)
    email: EmailAddress | None = None


async def _me(caller: Caller) -> User:
    if caller.principal.kind == "admin_key":
        raise Forbidden("The settings admin key has no user profile")
    return await caller.db.get(User, caller.principal.user_id, what="user")


@router.get("/me", response_model=Envelope[UserPublic], summary="Read the caller's profile")
async def read_user_me(
    request: Request, caller: Annotated[Caller, requires("profile")]
) -> JSONResponse:
    return ok(UserPublic.of(await _me(caller)), request_id=request.state.request_id)


@router.put(
    "/me", response_model=Envelope[UserPublic], summary="Update the caller's name or e-mail"
)
async def update_user_me(
    request: Request, caller: Annotated[Caller, requires("profile")], body: UserUpdate
) -> JSONResponse:
    user = await _me(caller)
    name = body.full_name if body.full_name is not None else body.name
    if name is not None:
        user.full_name = name
    if body.email is not None:
        email = accounts.normalise_email(body.email)
        await accounts.ensure_email_free(caller.session, email, except_id=user.id)
        user.email = email
    await caller.session.commit()
    return ok(UserPublic.of(user), request_id=request.state.request_id)
