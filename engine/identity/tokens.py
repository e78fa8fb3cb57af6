"""Signed JWTs: short-lived access tokens and rotating refresh tokens.

The algorithm is pinned (HS256); issuer, audience, expiry and the token type
are checked on every decode, so an access token never works as a refresh token
and the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import jwt

from engine.platform.errors import Unauthorized
from engine.platform.settings import Settings

ALGORITHM = "HS256"


class TokenType(StrEnum):
    ACCESS = "access"
    REFRESH = "refresh"


@dataclass(frozen=True)
class TokenClaims:
    subject: str
    tenant_id: str
    session_id: str
    token_id: str
    token_type: TokenType
    expires_at: datetime


def issue(
    settings: Settings,
    *,
    token_type: TokenType,
    subject: str,
    tenant_id: str,
    session_id: str,
    token_id: str,
    ttl_seconds: int,
    extra: dict[str, Any] | None = None,
) -> str:
    now = datetime.now(UTC)
    claims = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": subject,
        "tid": tenant_id,
        "sid": session_id,
        "jti": token_id,
        "typ": token_type.value,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=ttl_seconds)).timestamp()),
        **(extra or {}),
    }
    return jwt.encode(claims, settings.resolved_jwt_secret(), algorithm=ALGORITHM)


def decode(settings: Settings, token: str, expected: TokenType) -> TokenClaims:
    """Verify signature, algorithm, issuer, audience, expiry and type, or raise Unauthorized."""
    try:
        claims = jwt.decode(
            token,
            settings.resolved_jwt_secret(),
            algorithms=[ALGORITHM],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": ["exp", "iat", "sub", "iss", "aud", "jti", "typ"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("Invalid or expired token", details={"reason": "expired"}) from None
    except jwt.PyJWTError:
        raise Unauthorized("Invalid or expired token") from None
    if claims.get("typ") != expected.value:
        raise Unauthorized("Invalid or expired token", details={"reason": "wrong token type"})
    return TokenClaims(
        subject=str(claims["sub"]),
        tenant_id=str(claims.get("tid", "")),
        session_id=str(claims.get("sid", "")),
        token_id=str(claims["jti"]),
        token_type=expected,
        expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
    )
