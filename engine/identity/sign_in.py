"""Sign-up, sign-in, token refresh and sign-out.

Refresh tokens rotate: each use marks the token used and issues a new one in
the same session (its *family*). Presenting a used token again means it was
stolen or replayed, so the whole family is revoked. Logging out revokes the
session, which also ends its access tokens (they carry the session id).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from engine.db.tables import AuthSession, RefreshToken, Tenant, User
from engine.identity import accounts
from engine.identity.hashing import hash_password, verify_password
from engine.identity.principals import Principal, ensure_enabled
from engine.identity.tokens import TokenType, decode, issue
from engine.platform.errors import Forbidden, Unauthorized, WeftError
from engine.platform.settings import Settings

if TYPE_CHECKING:
    from engine.platform.ratelimit import RateLimiter

# Verified against when the e-mail is unknown, so both failures cost the same time.
_DUMMY_HASH = hash_password("weftworks-timing-equaliser")
LOGIN_FAILED = "Invalid e-mail or password"


class TooManyFailedLogins(WeftError):
    code = "RATE_LIMIT_EXCEEDED"


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    user: User
    token_type: str = "Bearer"


async def register(
    session: AsyncSession, settings: Settings, email: str, password: str, full_name: str | None
) -> User:
    """A self-service sign-up gets its own tenant and the plain ``user`` role."""
    if not settings.allow_registration:
        raise Forbidden("Registration is disabled")
    tenant = await accounts.create_tenant(session, f"{email.strip().lower()}")
    return await accounts.create_user(
        session, tenant, email, password, role="user", full_name=full_name
    )


async def _start_session(session: AsyncSession, settings: Settings, user: User) -> TokenPair:
    now = datetime.now(UTC)
    auth_session = AuthSession(
        tenant_id=user.tenant_id,
        user_id=user.id,
        expires_at=now + timedelta(seconds=settings.refresh_token_ttl_seconds),
    )
    session.add(auth_session)
    await session.flush()
    return await _issue_pair(session, settings, user, auth_session)


async def _issue_pair(
    session: AsyncSession, settings: Settings, user: User, auth_session: AuthSession
) -> TokenPair:
    refresh_row = RefreshToken(session_id=auth_session.id, expires_at=auth_session.expires_at)
    session.add(refresh_row)
    await session.flush()
    access = issue(
        settings,
        token_type=TokenType.ACCESS,
        subject=user.id,
        tenant_id=user.tenant_id,
        session_id=auth_session.id,
        token_id=f"at_{refresh_row.id}",
        ttl_seconds=settings.access_token_ttl_seconds,
        extra={"role": user.role},
    )
    remaining = int((auth_session.expires_at - datetime.now(UTC)).total_seconds())
    refresh = issue(
        settings,
        token_type=TokenType.REFRESH,
        subject=user.id,
        tenant_id=user.tenant_id,
        session_id=auth_session.id,
        token_id=refresh_row.id,
        ttl_seconds=max(1, remaining),
    )
    return TokenPair(access, refresh, settings.access_token_ttl_seconds, user)


async def login(
    session: AsyncSession,
    settings: Settings,
    email: str,
    password: str,
    failures: RateLimiter | None = None,
) -> TokenPair:
    """Unknown e-mail and wrong password answer the same message in the same time;
    the right password of a deactivated user or tenant answers ``ACCOUNT_DISABLED``."""
    key = f"login-failures:{email.strip().lower()}"
    limit, window = settings.login_failure_limit, settings.login_failure_window_seconds
    if failures is not None:
        seen = await failures.peek(key, limit, window)
        if not seen.allowed:
            raise TooManyFailedLogins(
                "Too many failed logins; try again later",
                details={"retry_after": seen.retry_after, "limit": limit},
            )
    user = (await session.scalars(select(User).where(User.email == email.strip().lower()))).first()
    valid = verify_password(password, user.password_hash if user else _DUMMY_HASH)
    if user is None or not valid:
        if failures is not None:
            await failures.hit(key, limit, window)
        raise Unauthorized(LOGIN_FAILED)
    ensure_enabled(user, await session.get(Tenant, user.tenant_id))
    return await _start_session(session, settings, user)


async def refresh(session: AsyncSession, settings: Settings, token: str) -> TokenPair:
    claims = decode(settings, token, TokenType.REFRESH)
    row = await session.get(RefreshToken, claims.token_id)
    auth_session = await session.get(AuthSession, claims.session_id)
    if row is None or auth_session is None or row.session_id != auth_session.id:
        raise Unauthorized("Invalid or expired token")
    now = datetime.now(UTC)
    if auth_session.revoked_at is not None:
        raise Unauthorized("Invalid or expired token", details={"reason": "session ended"})
    if row.used_at is not None:
        # Replay of a rotated token: end the whole family, the thief's copy included.
        auth_session.revoked_at, auth_session.revoked_reason = now, "refresh token reuse"
        await session.commit()
        raise Unauthorized("Invalid or expired token", details={"reason": "token reuse"})
    user = await session.get(User, auth_session.user_id)
    if user is None:
        raise Unauthorized("Invalid or expired token")
    ensure_enabled(user, await session.get(Tenant, user.tenant_id))
    # Mark used only if still unused: two concurrent refreshes cannot both win.
    claimed = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == row.id, RefreshToken.used_at.is_(None))
        .values(used_at=now)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise Unauthorized("Invalid or expired token", details={"reason": "token reuse"})
    return await _issue_pair(session, settings, user, auth_session)


async def logout(
    session: AsyncSession, principal: Principal, refresh_token_session: str | None
) -> None:
    """End the caller's session (or the one a refresh token belongs to)."""
    session_id = principal.session_id or refresh_token_session
    if session_id is None:
        return
    auth_session = await session.get(AuthSession, session_id)
    if auth_session is None or auth_session.user_id != principal.user_id:
        return
    if auth_session.revoked_at is None:
        auth_session.revoked_at, auth_session.revoked_reason = datetime.now(UTC), "logout"


async def session_of_refresh_token(settings: Settings, token: str) -> str | None:
    try:
        return decode(settings, token, TokenType.REFRESH).session_id
    except Unauthorized:
        return None
