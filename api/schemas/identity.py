"""Accounts, tokens and API keys (zentoria, z2 and auterity shapes)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field

from engine.db.tables import ApiKey, User
from engine.identity.sign_in import TokenPair

# An e-mail address as the API accepts it: a dot-atom local part, "@", and a host
# name of letter-digit-hyphen labels. Every address it accepts is valid under JSON
# Schema's "email" format, and the schema declares both, so clients (and fuzzers)
# that read the schema never send one the server refuses, nor expect it to take
# one that it refuses.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
EMAIL_PATTERN = rf"^{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})*$"


def _parts_in_bounds(address: str) -> str:
    """RFC 5321's lengths: a local part of at most 64, labels of at most 63."""
    local, _, domain = address.rpartition("@")
    if len(local) > 64 or len(domain) > 253 or any(len(x) > 63 for x in domain.split(".")):
        raise ValueError("not an e-mail address: a part of it is too long")
    return address


EmailAddress = Annotated[
    str,
    Field(
        min_length=3, max_length=320, pattern=EMAIL_PATTERN, json_schema_extra={"format": "email"}
    ),
    AfterValidator(_parts_in_bounds),
]


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
