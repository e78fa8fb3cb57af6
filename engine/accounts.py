"""Tenants, users and API keys: the operations the CLI and the API share."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from engine.errors import Conflict, InvalidInput, NotFound
from engine.models import ApiKey, Tenant, User
from engine.security import hash_api_key, hash_password, new_api_key, new_password

ROLES = ("admin", "user", "architect", "operator")
DEFAULT_TENANT = "default"
FIRST_ADMIN_EMAIL = "admin@localhost"


@dataclass(frozen=True)
class IssuedKey:
    """An API key as created: ``secret`` exists only here, never in the database."""

    record: ApiKey
    secret: str


async def create_tenant(session: AsyncSession, name: str) -> Tenant:
    if not name.strip():
        raise InvalidInput("tenant name must not be empty")
    tenant = Tenant(name=name.strip())
    session.add(tenant)
    await session.flush()
    return tenant


async def find_tenant(session: AsyncSession, ref: str) -> Tenant:
    """A tenant by id or by name."""
    tenant = await session.get(Tenant, ref)
    if tenant is None:
        tenant = (await session.scalars(select(Tenant).where(Tenant.name == ref))).first()
    if tenant is None:
        raise NotFound(f"no tenant {ref!r}")
    return tenant


async def create_user(
    session: AsyncSession,
    tenant: Tenant,
    email: str,
    password: str,
    *,
    role: str = "user",
    full_name: str | None = None,
) -> User:
    email = email.strip().lower()
    if "@" not in email:
        raise InvalidInput(f"{email!r} is not an e-mail address")
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
    if len(password) < 8:
        raise InvalidInput("password must have at least 8 characters")
    taken = await session.scalar(select(func.count()).select_from(User).where(User.email == email))
    if taken:
        raise Conflict(f"a user with e-mail {email} already exists")
    user = User(
        tenant_id=tenant.id,
        email=email,
        password_hash=hash_password(password),
        role=role,
        full_name=full_name,
    )
    session.add(user)
    await session.flush()
    return user


async def find_user(session: AsyncSession, email: str) -> User:
    user = (await session.scalars(select(User).where(User.email == email.strip().lower()))).first()
    if user is None:
        raise NotFound(f"no user {email!r}")
    return user


async def create_api_key(
    session: AsyncSession,
    user: User,
    name: str,
    scopes: list[str],
    *,
    expires_at: datetime | None = None,
) -> IssuedKey:
    secret = new_api_key()
    record = ApiKey(
        tenant_id=user.tenant_id,
        user_id=user.id,
        name=name,
        prefix=secret[:12],
        key_hash=hash_api_key(secret),
        scopes=scopes,
        expires_at=expires_at,
    )
    session.add(record)
    await session.flush()
    return IssuedKey(record, secret)


@dataclass(frozen=True)
class FirstAdmin:
    email: str
    password: str
    api_key: str


async def ensure_first_admin(session: AsyncSession) -> FirstAdmin | None:
    """On an empty database, create the default tenant and its admin.

    Returns the credentials (to be shown once) or None when users already exist.
    """
    if await session.scalar(select(func.count()).select_from(User)):
        return None
    tenant = await create_tenant(session, DEFAULT_TENANT)
    password = new_password()
    admin = await create_user(session, tenant, FIRST_ADMIN_EMAIL, password, role="admin")
    issued = await create_api_key(session, admin, "first admin key", ["admin"])
    return FirstAdmin(admin.email, password, issued.secret)
