"""Tenants, users and API keys: the operations the CLI and the API share."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from engine.db.tables import ApiKey, EmbeddingEndpoint, Tenant, User
from engine.identity.hashing import hash_api_key, hash_password, new_api_key, new_password
from engine.identity.principals import ROLES, USER_SCOPES, Principal
from engine.platform.errors import Conflict, Forbidden, InvalidInput, NotFound

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
DEFAULT_TENANT = "default"
FIRST_ADMIN_EMAIL = "admin@localhost"


@dataclass(frozen=True)
class IssuedKey:
    """An API key as created: ``secret`` exists only here, never in the database."""

    record: ApiKey
    secret: str


async def create_tenant(
    session: AsyncSession,
    name: str,
    *,
    labels: list[str] | None = None,
    tags: dict[str, str] | None = None,
) -> Tenant:
    if not name.strip():
        raise InvalidInput("tenant name must not be empty", details={"field": "name"})
    tenant = Tenant(name=name.strip(), labels=labels or [], tags=tags or {})
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
    first_name: str | None = None,
    last_name: str | None = None,
    is_superuser: bool = False,
) -> User:
    email = normalise_email(email)
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}", details={"field": "role"})
    check_password(password)
    await ensure_email_free(session, email)
    user = User(
        tenant_id=tenant.id,
        email=email,
        password_hash=hash_password(password),
        role=role,
        full_name=full_name or " ".join(p for p in (first_name, last_name) if p) or None,
        first_name=first_name,
        last_name=last_name,
        is_superuser=is_superuser,
    )
    session.add(user)
    await session.flush()
    return user


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    local, _, domain = email.partition("@")
    if not local or not domain or "@" in domain or any(c.isspace() for c in email):
        raise InvalidInput(f"{email!r} is not an e-mail address", details={"field": "email"})
    return email


def check_password(password: str) -> None:
    if len(password) < 8:
        raise InvalidInput(
            "password must have at least 8 characters", details={"field": "password"}
        )


async def ensure_email_free(
    session: AsyncSession, email: str, *, except_id: str | None = None
) -> None:
    query = select(func.count()).select_from(User).where(User.email == email)
    if except_id:
        query = query.where(User.id != except_id)
    if await session.scalar(query):
        raise Conflict(f"a user with e-mail {email} already exists")


async def find_user(session: AsyncSession, email: str) -> User:
    user = (await session.scalars(select(User).where(User.email == email.strip().lower()))).first()
    if user is None:
        raise NotFound(f"no user {email!r}")
    return user


def bounded_by_issuer(
    issuer: Principal, scopes: list[str], expires_at: datetime | None
) -> datetime | None:
    """The expiry of a key ``issuer`` creates, after checking its scopes.

    A key never out-scopes its creator (Forbidden, naming the scopes), and a
    key created with an API key never outlives that key: its expiry is
    clamped to the creator's (a key asked for without one, or for a later
    one, ends when its creator ends; the answer shows the clamped expiry).
    """
    missing = [scope for scope in scopes if not issuer.allows(scope)]
    if missing:
        raise Forbidden("A key cannot have scopes its creator lacks", details={"scopes": missing})
    ceiling = issuer.expires_at if issuer.api_key_id else None
    if ceiling is None:
        return expires_at
    return ceiling if expires_at is None else min(expires_at, ceiling)


async def create_api_key(
    session: AsyncSession,
    user: User,
    name: str,
    scopes: list[str],
    *,
    expires_at: datetime | None = None,
    labels: list[str] | None = None,
    tags: dict[str, str] | None = None,
    issuer: Principal | None = None,
) -> IssuedKey:
    """A new key of ``user``; ``issuer``, when a caller creates it, bounds its
    scopes and expiry (see ``bounded_by_issuer``)."""
    if issuer is not None:
        expires_at = bounded_by_issuer(issuer, scopes, expires_at)
    secret = new_api_key()
    record = ApiKey(
        tenant_id=user.tenant_id,
        user_id=user.id,
        name=name,
        prefix=secret[:12],
        key_hash=hash_api_key(secret),
        scopes=scopes,
        expires_at=expires_at,
        labels=labels or [],
        tags=tags or {},
        parent_key_id=issuer.api_key_id if issuer is not None else None,
    )
    session.add(record)
    await session.flush()
    return IssuedKey(record, secret)


async def revoke_api_key(session: AsyncSession, key: ApiKey) -> None:
    """Revoke ``key`` and every key created with it, however deep: a child
    never outlives its parent. Keys already revoked keep their time."""
    now = datetime.now(UTC)
    if key.revoked_at is None:
        key.revoked_at = now
    parents = [key.id]
    while parents:
        children = (
            await session.scalars(select(ApiKey).where(ApiKey.parent_key_id.in_(parents)))
        ).all()
        for child in children:
            child.revoked_at = child.revoked_at or now
        parents = [child.id for child in children]


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
    admin = await create_user(
        session, tenant, FIRST_ADMIN_EMAIL, password, role="admin", is_superuser=True
    )
    issued = await create_api_key(session, admin, "first admin key", ["admin"])
    return FirstAdmin(admin.email, password, issued.secret)


@dataclass(frozen=True)
class NewTenant:
    tenant: Tenant
    user: User
    user_password: str
    credential: IssuedKey
    endpoint: EmbeddingEndpoint


async def create_tenant_with_defaults(
    session: AsyncSession,
    name: str,
    *,
    labels: list[str] | None = None,
    tags: dict[str, str] | None = None,
) -> NewTenant:
    """A tenant ready to use, as partio creates it: a default user, a credential
    for that user and an embedding endpoint on the local MiniLM model."""
    tenant = await create_tenant(session, name, labels=labels, tags=tags)
    password = new_password()
    user = await create_user(
        session,
        tenant,
        f"default@{tenant.id.replace('_', '-')}.weft.local",
        password,
        role="admin",
        first_name="Default",
        last_name="User",
    )
    credential = await create_api_key(session, user, "Default credential", sorted(USER_SCOPES))
    endpoint = EmbeddingEndpoint(
        tenant_id=tenant.id,
        name="Default endpoint",
        model=DEFAULT_EMBEDDING_MODEL,
        endpoint=None,
        api_format="Local",
    )
    session.add(endpoint)
    await session.flush()
    return NewTenant(tenant, user, password, credential, endpoint)
