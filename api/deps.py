"""FastAPI dependencies: typed aliases for what routers may ask for."""

import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from api.resources import Resources
from engine.db.scope import TenantScope
from engine.identity.principals import Principal, authenticate, presented_credential
from engine.platform import logs
from engine.platform.errors import Forbidden, Unauthorized
from engine.platform.settings import Settings


async def get_resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


async def get_settings(resources: Annotated[Resources, Depends(get_resources)]) -> Settings:
    return resources.settings


async def get_temporal(resources: Annotated[Resources, Depends(get_resources)]) -> Client:
    return resources.temporal


async def get_session(
    resources: Annotated[Resources, Depends(get_resources)],
) -> AsyncIterator[AsyncSession]:
    session = resources.sessions()
    try:
        yield session
    finally:
        # A request that ended its transactions (or never began one, as a chat
        # call with a cached principal) holds no connection: nothing to close.
        if session.in_transaction():
            await session.close()


ResourcesDep = Annotated[Resources, Depends(get_resources)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
TemporalDep = Annotated[Client, Depends(get_temporal)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]


# Declared as security schemes, so /docs offers both and the OpenAPI schema lists
# the scope every route needs.
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="ApiKey")
_bearer = HTTPBearer(auto_error=False, scheme_name="Bearer")


async def get_principal(
    request: Request,
    security_scopes: SecurityScopes,
    session: SessionDep,
    settings: SettingsDep,
    api_key: Annotated[str | None, Depends(_api_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The authenticated caller, checked against the route's declared scope."""
    # Read exactly as the rate limiter reads it (the declared schemes above
    # document the two headers in OpenAPI).
    credential = presented_credential(api_key, request.headers.get("authorization"))
    if not credential:
        raise Unauthorized("Authentication required: send a Bearer token or X-API-Key")
    principal = await authenticate(session, settings, credential)
    # End the read transaction: the connection goes back to the pool instead of
    # staying checked out while the route waits on a provider or Temporal.
    if session.in_transaction():  # none began when the principal was cached
        await session.commit()
    request.state.principal = principal  # read by request history
    logs.bind_tenant(principal.tenant_id)  # every line logged from here on names the tenant
    for scope in security_scopes.scopes:
        if not principal.allows(scope):
            raise Forbidden(f"This call needs the {scope!r} scope")
    return principal


@dataclass(frozen=True)
class Caller:
    """What a protected route works with: who calls, and their view of the data."""

    principal: Principal
    db: TenantScope
    settings: Settings

    @property
    def session(self) -> AsyncSession:
        return self.db.session

    @property
    def tenant_id(self) -> str:
        if self.principal.tenant_id is None:
            raise Forbidden("This credential is not bound to a tenant")
        return self.principal.tenant_id


def requires(scope: str, *, across_tenants: bool = False) -> Any:
    """Dependency for a route that needs ``scope``.

    ``across_tenants`` lets a global administrator see every tenant's rows (the
    partio admin surface); everyone else always sees only their own tenant.
    """

    async def caller(
        principal: Annotated[Principal, Security(get_principal, scopes=[scope])],
        session: SessionDep,
        settings: SettingsDep,
    ) -> Caller:
        spans_all = across_tenants and principal.is_superuser
        if principal.tenant_id is None and not spans_all:
            raise Forbidden("This credential is not bound to a tenant")
        db = TenantScope(session, principal.tenant_id, all_tenants=spans_all)
        return Caller(principal, db, settings)

    return Depends(caller)


async def get_operator(
    principal: Annotated[Principal, Security(get_principal, scopes=["admin"])],
) -> Principal:
    """A global administrator: the caller of deployment-wide operations."""
    if not principal.is_superuser:
        raise Forbidden("This call needs a global administrator")
    return principal


async def get_metrics_reader(
    request: Request,
    security_scopes: SecurityScopes,
    session: SessionDep,
    settings: SettingsDep,
    api_key: Annotated[str | None, Depends(_api_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Metrics readers: a scraper with ``Bearer $WEFT_METRICS_TOKEN``, or a global
    administrator (the series cover every tenant)."""
    token = settings.metrics_token
    offered = bearer.credentials if bearer is not None and not api_key else ""
    if token and offered and hmac.compare_digest(offered.encode(), token.encode()):
        return
    principal = await get_principal(request, security_scopes, session, settings, api_key, bearer)
    if not principal.is_superuser:
        raise Forbidden("Metrics need a global administrator or the metrics token")


Operator = Annotated[Principal, Depends(get_operator)]
MetricsReader = Security(get_metrics_reader, scopes=["admin"])
