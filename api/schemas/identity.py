"""Accounts, tokens and API keys (zentoria, z2 and auterity shapes)."""

from __future__ import annotations

from pydantic import BaseModel

from engine.db.tables import ApiKey, User
from engine.identity.sign_in import TokenPair


class UserPublic(BaseModel):
    """A user as ``/auth/register`` and ``/users/me`` show it (``name`` is ``full_name``)."""

    id: str
    email: str
    name: str | None
    full_name: str | None
    role: str
    tenant_id: str
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, user: User) -> UserPublic:
        return cls(
            id=user.id,
            email=user.email,
            name=user.full_name,
            full_name=user.full_name,
            role=user.role,
            tenant_id=user.tenant_id,
            created_at=user.created_at.isoformat(),
            updated_at=user.updated_at.isoformat(),
        )


class TokenUserPublic(BaseModel):
    id: str
    email: str
    role: str


class TokenPublic(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int
    user: TokenUserPublic

    @classmethod
    def of(cls, pair: TokenPair, token_type: str) -> TokenPublic:
        """``token_type`` is ``Bearer`` on ``/api/v1``, ``bearer`` for auterity."""
        return cls(
            access_token=pair.access_token,
            refresh_token=pair.refresh_token,
            token_type=token_type,
            expires_in=pair.expires_in,
            user=TokenUserPublic(id=pair.user.id, email=pair.user.email, role=pair.user.role),
        )


class LogoutPublic(BaseModel):
    logged_out: bool


class ApiKeyPublic(BaseModel):
    """An API key as listed: never its secret."""

    id: str
    name: str
    prefix: str
    scopes: list[str]
    created_at: str
    expires_at: str | None
    last_used: str | None
    revoked: bool

    @classmethod
    def of(cls, key: ApiKey) -> ApiKeyPublic:
        return cls(
            id=key.id,
            name=key.name,
            prefix=key.prefix,
            scopes=key.scopes,
            created_at=key.created_at.isoformat(),
            expires_at=key.expires_at.isoformat() if key.expires_at else None,
            last_used=key.last_used_at.isoformat() if key.last_used_at else None,
            revoked=key.revoked_at is not None,
        )


class ApiKeyCreatedPublic(ApiKeyPublic):
    """The answer that creates a key: the only one that carries the secret."""

    key: str


class ApiKeysPublic(BaseModel):
    api_keys: list[ApiKeyPublic]
