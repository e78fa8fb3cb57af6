"""FastAPI dependencies: typed aliases for what routers may ask for."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from api.resources import Resources
from engine.auth import Principal, authenticate_api_key, looks_like_api_key
from engine.errors import Forbidden, Unauthorized
from engine.settings import Settings


def get_resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


def get_settings(resources: Annotated[Resources, Depends(get_resources)]) -> Settings:
    return resources.settings


def get_temporal(resources: Annotated[Resources, Depends(get_resources)]) -> Client:
    return resources.temporal


async def get_session(
    resources: Annotated[Resources, Depends(get_resources)],
) -> AsyncIterator[AsyncSession]:
    async with resources.sessions() as session:
        yield session


ResourcesDep = Annotated[Resources, Depends(get_resources)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
TemporalDep = Annotated[Client, Depends(get_temporal)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]


def _presented_key(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


async def get_principal(request: Request, session: SessionDep) -> Principal:
    key = _presented_key(request)
    if key is None:
        raise Unauthorized("Authentication required: send a Bearer token or X-API-Key")
    if not looks_like_api_key(key):
        raise Unauthorized("Invalid or expired token")
    return await authenticate_api_key(session, key)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require_scope(scope: str) -> Callable[[Principal], Principal]:
    """A dependency that lets the call through only with ``scope`` (or admin)."""

    def check(principal: PrincipalDep) -> Principal:
        if not principal.allows(scope):
            raise Forbidden(f"This call needs the {scope!r} scope")
        return principal

    check.required_scope = scope  # type: ignore[attr-defined]
    return check
