"""Who is calling: API keys resolved to a tenant-scoped principal."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from engine.errors import WeftError
from engine.models import ApiKey, User
from engine.security import API_KEY_PREFIX, hash_api_key

ADMIN_SCOPE = "admin"


class InvalidApiKey(WeftError):
    code = "INVALID_API_KEY"


@dataclass(frozen=True)
class Principal:
    """The caller of a request; every data access is scoped by ``tenant_id``."""

    user_id: str
    tenant_id: str
    role: str
    scopes: frozenset[str]
    api_key_id: str | None = None

    def allows(self, scope: str) -> bool:
        return ADMIN_SCOPE in self.scopes or scope in self.scopes


def looks_like_api_key(token: str) -> bool:
    return token.startswith(API_KEY_PREFIX)


async def authenticate_api_key(session: AsyncSession, key: str) -> Principal:
    """Resolve a presented key; unknown, revoked and expired keys all fail alike."""
    now = datetime.now(UTC)
    row = (
        await session.execute(
            select(ApiKey, User)
            .join(User, User.id == ApiKey.user_id)
            .where(ApiKey.key_hash == hash_api_key(key))
        )
    ).first()
    if row is None:
        raise InvalidApiKey("API key invalid or revoked")
    api_key, user = row
    if api_key.revoked_at is not None or not user.active:
        raise InvalidApiKey("API key invalid or revoked")
    if api_key.expires_at is not None and api_key.expires_at <= now:
        raise InvalidApiKey("API key expired")
    api_key.last_used_at = now
    await session.commit()
    return Principal(
        user_id=user.id,
        tenant_id=api_key.tenant_id,
        role=user.role,
        scopes=frozenset(api_key.scopes),
        api_key_id=api_key.id,
    )
