"""Sign-up, sign-in, refresh and sign-out.

``/api/v1/auth/*`` answers the zentoria/z2 envelope; ``/api/auth/*`` answers
auterity's bare objects. Both call the same engine functions.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.deps import Caller, ResourcesDep, SessionDep, requires
from api.envelope import Envelope, ok
from api.schemas.identity import EmailAddress, LogoutPublic, TokenPublic, UserPublic
from engine.db.tables import User
from engine.identity import sign_in
from engine.identity.sign_in import TokenPair

v1 = APIRouter(prefix="/api/v1/auth", tags=["auth"])
auterity = APIRouter(prefix="/api/auth", tags=["auth (auterity)"])


class LoginRequest(BaseModel):
    email: EmailAddress
    password: str = Field(min_length=1, max_length=1024)


class RegisterRequest(BaseModel):
    email: EmailAddress
    password: str = Field(min_length=8, max_length=1024)
    full_name: str | None = Field(default=None, max_length=200)
    name: str | None = Field(default=None, max_length=200)
    # ``role`` may be sent (auterity documents it) but a sign-up never chooses it.


class RefreshRequest(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=4096)


class LogoutRequest(BaseModel):
    refresh_token: str | None = Field(default=None, max_length=4096)


# Each helper commits only after the whole operation succeeded; on an error the
# session closes and rolls back, so no partial rows are left behind.


async def _register(db: SessionDep, resources: ResourcesDep, body: RegisterRequest) -> User:
    user = await sign_in.register(
        db, resources.settings, body.email, body.password, body.full_name or body.name
    )
    await db.commit()
    return user


async def _login(db: SessionDep, resources: ResourcesDep, body: LoginRequest) -> TokenPair:
    pair = await sign_in.login(
        db, resources.settings, body.email, body.password, resources.rate_limiter
    )
    await db.commit()
    return pair


async def _refresh(db: SessionDep, resources: ResourcesDep, body: RefreshRequest) -> TokenPair:
    pair = await sign_in.refresh(db, resources.settings, body.refresh_token)
    await db.commit()
    return pair


async def _logout(caller: Caller, body: LogoutRequest | None) -> None:
    family = None
    if body and body.refresh_token:
        family = await sign_in.session_of_refresh_token(caller.settings, body.refresh_token)
    await sign_in.logout(caller.session, caller.principal, family)
    await caller.session.commit()


# --- /api/v1/auth ---------------------------------------------------------------


@v1.post(
    "/register",
    status_code=201,
    response_model=Envelope[UserPublic],
    summary="Create an account (and its own tenant)",
)
async def register_v1(
    request: Request, db: SessionDep, resources: ResourcesDep, body: RegisterRequest
) -> JSONResponse:
    user = await _register(db, resources, body)
    return ok(UserPublic.of(user), request_id=request.state.request_id, status_code=201)


@v1.post(
    "/login",
    response_model=Envelope[TokenPublic],
    summary="Exchange e-mail and password for tokens",
)
async def login_v1(
    request: Request, db: SessionDep, resources: ResourcesDep, body: LoginRequest
) -> JSONResponse:
    pair = await _login(db, resources, body)
    return ok(TokenPublic.of(pair, "Bearer"), request_id=request.state.request_id)


@v1.post("/refresh", response_model=Envelope[TokenPublic], summary="Rotate a refresh token")
async def refresh_v1(
    request: Request, db: SessionDep, resources: ResourcesDep, body: RefreshRequest
) -> JSONResponse:
    pair = await _refresh(db, resources, body)
    return ok(TokenPublic.of(pair, "Bearer"), request_id=request.state.request_id)


@v1.post(
    "/logout",
    response_model=Envelope[LogoutPublic],
    summary="End the session (its access and refresh tokens)",
)
async def logout_v1(
    request: Request,
    caller: Annotated[Caller, requires("profile")],
    body: Annotated[LogoutRequest | None, Body()] = None,
) -> JSONResponse:
    await _logout(caller, body)
    return ok(LogoutPublic(logged_out=True), request_id=request.state.request_id)


# --- /api/auth (auterity) -----------------------------------------------------


@auterity.post(
    "/register",
    status_code=201,
    response_model=UserPublic,
    summary="Create an account (auterity shape)",
)
async def register_auterity(
    db: SessionDep, resources: ResourcesDep, body: RegisterRequest
) -> UserPublic:
    return UserPublic.of(await _register(db, resources, body))


@auterity.post(
    "/login",
    response_model=TokenPublic,
    summary="Exchange e-mail and password for tokens (auterity shape)",
)
async def login_auterity(
    db: SessionDep, resources: ResourcesDep, body: LoginRequest
) -> TokenPublic:
    return TokenPublic.of(await _login(db, resources, body), "bearer")


@auterity.post(
    "/refresh", response_model=TokenPublic, summary="Rotate a refresh token (auterity shape)"
)
async def refresh_auterity(
    db: SessionDep, resources: ResourcesDep, body: RefreshRequest
) -> TokenPublic:
    return TokenPublic.of(await _refresh(db, resources, body), "bearer")


@auterity.post("/logout", status_code=204, summary="End the session (auterity shape)")
async def logout_auterity(
    caller: Annotated[Caller, requires("profile")],
    body: Annotated[LogoutRequest | None, Body()] = None,
) -> Response:
    await _logout(caller, body)
    return Response(status_code=204)
