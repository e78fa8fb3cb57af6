"""Who is calling: a presented credential resolved to a tenant-scoped Principal.

Three kinds of credential are accepted, all as ``Authorization: Bearer …`` (API
keys also as ``X-API-Key``): API keys and partio credentials (``znt_…``),
access JWTs from ``/auth/login``, and the global admin keys from settings.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from engine.db.tables import ApiKey, AuthSession, Tenant, User
from engine.identity.hashing import API_KEY_PREFIX, hash_api_key
from engine.identity.principal_cache import PrincipalCache, principals
from engine.identity.tokens import TokenClaims, TokenType, decode
from engine.platform.errors import Forbidden, Unauthorized, WeftError
from engine.platform.settings import Settings

ADMIN_SCOPE = "admin"
SCOPES: tuple[str, ...] = (
    "files:read",
    "files:write",
    "ai:chat",
    "ai:embeddings",
    "models:read",
    "models:write",
    "workflows:read",
    "workflows:execute",
    "workflows:write",
    "agents:read",
    "agents:write",
    "webhooks:read",
    "webhooks:write",
    "tasks:read",
    "tasks:write",
    "keys:read",
    "keys:write",
    "profile",
    ADMIN_SCOPE,
)
USER_SCOPES = frozenset(SCOPES) - {ADMIN_SCOPE}
ROLES = ("admin", "user", "architect", "operator")
LAST_USED_RESOLUTION = timedelta(minutes=1)


class InvalidApiKey(WeftError):
    code = "INVALID_API_KEY"


class AccountDisabled(Forbidden):
    """The credential is genuine, but its user or tenant has been deactivated."""

    code = "ACCOUNT_DISABLED"


def scopes_for_role(role: str) -> frozenset[str]:
    """Users signed in with a password act with their role's scopes."""
    return frozenset({ADMIN_SCOPE}) if role == "admin" else USER_SCOPES


def effective_scopes(granted: Iterable[str], role: str) -> frozenset[str]:
    """What a key may do now: its scopes within its owner's CURRENT role.

    Decided on every request, so a key outlives no demotion: an ``admin`` key
    of a user who is no longer an admin acts with a user's scopes only.
    """
    granted, allowed = frozenset(granted), scopes_for_role(role)
    if ADMIN_SCOPE in allowed:
        return granted
    if ADMIN_SCOPE in granted:  # "everything", within what the role allows
        return allowed
    return granted & allowed


def ensure_enabled(user: User, tenant: Tenant | None) -> None:
    """Refuse a user, or a user of a tenant, that has been deactivated."""
    if tenant is None or not tenant.active:
        raise AccountDisabled("This tenant is deactivated", details={"reason": "tenant"})
    if not user.active:
        raise AccountDisabled("This user is deactivated", details={"reason": "user"})


def presented_credential(api_key: str | None, authorization: str | None) -> str | None:
    """The credential a request carries, exactly as authentication reads it:
    ``X-API-Key`` first, else an ``Authorization: Bearer`` token, whitespace
    (any Unicode whitespace, such as a no-break space) stripped."""
    if api_key and api_key.strip():
        return api_key.strip()
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


@dataclass(frozen=True)
class Principal:
    """The caller of a request; every data access is scoped by ``tenant_id``.

    ``is_superuser`` marks a global administrator (settings admin keys, the first
    admin): it may manage tenants and act across them. A tenant ``admin`` role
    is all-powerful inside its own tenant only.
    """

    user_id: str
    tenant_id: str | None
    role: str
    scopes: frozenset[str]
    is_superuser: bool = False
    api_key_id: str | None = None
    session_id: str | None = None
    # When the credential itself stops working (API keys); keys it creates end no later.
    expires_at: datetime | None = None

    def allows(self, scope: str) -> bool:
        return ADMIN_SCOPE in self.scopes or scope in self.scopes

    @property
    def kind(self) -> str:
        if self.api_key_id:
            return "api_key"
        return "session" if self.session_id else "admin_key"


def looks_like_api_key(token: str) -> bool:
    return token.startswith(API_KEY_PREFIX)


async def authenticate(session: AsyncSession, settings: Settings, credential: str) -> Principal:
    """Resolve any accepted credential, or raise Unauthorized / InvalidApiKey.

    Resolved principals are kept for a few seconds (``principal_cache``); an
    access token's signature and expiry are checked on every call regardless.
    """
    for admin_key in settings.admin_api_keys:
        if hmac.compare_digest(credential.encode(), admin_key.encode()):
            return Principal(
                user_id="admin",
                tenant_id=None,
                role="admin",
                scopes=frozenset({ADMIN_SCOPE}),
                is_superuser=True,
            )
    seconds = settings.principal_cache_seconds
    if looks_like_api_key(credential):
        cache_key = PrincipalCache.key(credential)
        cached = principals.get(cache_key)
        if cached is not None:
            return cached
        principal = await authenticate_api_key(session, credential)
        principals.put(cache_key, principal, seconds, principal.expires_at)
        return principal
    claims = decode(settings, credential, TokenType.ACCESS)
    cache_key = f"session:{claims.session_id}:{claims.subject}"
    cached = principals.get(cache_key)
    if cached is not None:
        return cached
    principal = await _session_principal(session, claims)
    principals.put(cache_key, principal, seconds, claims.expires_at)
    return principal


async def live_api_key_id(session: AsyncSession, key: str) -> str | None:
    """The id of an unrevoked, unexpired key (what rate limits count a key
    by), or None: an unknown key is no principal of its own."""
    row = (
        await session.execute(
            select(ApiKey.id, ApiKey.revoked_at, ApiKey.expires_at).where(
                ApiKey.key_hash == hash_api_key(key)
            )
        )
    ).first()
    if row is None or row.revoked_at is not None:
        return None
    if row.expires_at is not None and row.expires_at <= datetime.now(UTC):
        return None
    return str(row.id)


async def authenticate_api_key(session: AsyncSession, key: str) -> Principal:
    """Unknown and revoked keys fail alike; expired ones say so; a key of a
    deactivated user or tenant is refused with ``ACCOUNT_DISABLED``. The key
    acts with its scopes within its owner's current role."""
    now = datetime.now(UTC)
    row = (
        await session.execute(
            select(ApiKey, User, Tenant)
            .join(User, User.id == ApiKey.user_id)
            .join(Tenant, Tenant.id == User.tenant_id)
            .where(ApiKey.key_hash == hash_api_key(key))
        )
    ).first()
    if row is None:
        raise InvalidApiKey("API key invalid or revoked")
    api_key, user, tenant = row
    if api_key.revoked_at is not None:
        raise InvalidApiKey("API key invalid or revoked")
    if api_key.expires_at is not None and api_key.expires_at <= now:
        raise InvalidApiKey(
            "API key expired", details={"expired_at": api_key.expires_at.isoformat()}
        )
    ensure_enabled(user, tenant)
    # Record use at most once a minute: a write per request would serialise
    # every call on the database (SQLite most of all).
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
        api_key.last_used_at = now
        await session.commit()
    scopes = effective_scopes(api_key.scopes, user.role)
    return Principal(
        user_id=user.id,
        tenant_id=api_key.tenant_id,
        role=user.role,
        scopes=scopes,
        is_superuser=user.is_superuser and ADMIN_SCOPE in scopes,
        api_key_id=api_key.id,
        expires_at=api_key.expires_at,
    )


async def _session_principal(session: AsyncSession, claims: TokenClaims) -> Principal:
    row = (
        await session.execute(
            select(AuthSession, User, Tenant)
            .join(User, User.id == AuthSession.user_id)
            .join(Tenant, Tenant.id == User.tenant_id)
            .where(AuthSession.id == claims.session_id, User.id == claims.subject)
        )
    ).first()
    if row is None:
        raise Unauthorized("Invalid or expired token")
    auth_session, user, tenant = row
    if auth_session.revoked_at is not None:
        raise Unauthorized("Invalid or expired token", details={"reason": "session ended"})
    ensure_enabled(user, tenant)
    return Principal(
        user_id=user.id,
        tenant_id=user.tenant_id,
        role=user.role,
        scopes=scopes_for_role(user.role),
        is_superuser=user.is_superuser,
        session_id=auth_session.id,
    )
