"""Migrations and account storage on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, inspect, select

from engine.db import migrate
from engine.db.connection import create_engine, create_sessionmaker, transaction
from engine.db.tables import ApiKey, Base, Tenant, User
from engine.identity import accounts
from engine.identity.hashing import hash_api_key, verify_password
from engine.platform.errors import Conflict, InvalidInput
from engine.platform.settings import Settings

pytestmark = pytest.mark.asyncio


async def _count(settings: Settings, model: type) -> int:
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            return int(await session.scalar(select(func.count()).select_from(model)) or 0)
    finally:
        await engine.dispose()


async def test_migrations_create_tenant_scoped_tables_and_rerun_cleanly(
    settings: Settings,
) -> None:
    await asyncio.to_thread(migrate.upgrade, settings)  # second run: nothing to do
    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            tables, columns, drift = await connection.run_sync(
                lambda sync: (
                    set(inspect(sync).get_table_names()),
                    {c["name"] for c in inspect(sync).get_columns("api_keys")},
                    compare_metadata(MigrationContext.configure(sync), Base.metadata),
                )
            )
    finally:
        await engine.dispose()
    assert {"tenants", "users", "api_keys", "alembic_version"} <= tables
    assert "tenant_id" in columns
    assert drift == [], "the migrations and engine/db/tables.py disagree"
    config = migrate.alembic_config(settings)
    await asyncio.to_thread(command.downgrade, config, "base")
    await asyncio.to_thread(command.upgrade, config, "head")


async def test_first_admin_is_created_once_with_only_hashes_stored(settings: Settings) -> None:
    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)
    try:
        async with transaction(sessions) as session:
            first = await accounts.ensure_first_admin(session)
        async with transaction(sessions) as session:
            second = await accounts.ensure_first_admin(session)
        async with sessions() as session:
            user = (await session.scalars(select(User))).one()
            key = (await session.scalars(select(ApiKey))).one()
    finally:
        await engine.dispose()
    assert first is not None and second is None
    assert user.role == "admin" and user.tenant_id == key.tenant_id
    assert user.password_hash != first.password
    assert user.password_hash is not None and user.password_hash.startswith("$argon2id$")
    assert verify_password(first.password, user.password_hash)
    assert first.api_key.startswith("znt_") and first.api_key not in key.key_hash
    assert key.key_hash == hash_api_key(first.api_key)


async def test_a_failed_create_leaves_no_partial_rows(settings: Settings) -> None:
    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)
    try:
        with pytest.raises(InvalidInput):
            async with transaction(sessions) as session:
                tenant = await accounts.create_tenant(session, "acme")
                await accounts.create_user(session, tenant, "bob@acme.test", "short")
    finally:
        await engine.dispose()
    assert await _count(settings, Tenant) == 0
    assert await _count(settings, User) == 0


async def test_duplicate_email_is_a_conflict(settings: Settings) -> None:
    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)
    try:
        async with transaction(sessions) as session:
            tenant = await accounts.create_tenant(session, "acme")
            await accounts.create_user(session, tenant, "Bob@Acme.test", "correct horse")
        with pytest.raises(Conflict):
            async with transaction(sessions) as session:
                tenant = await accounts.find_tenant(session, "acme")
                await accounts.create_user(session, tenant, "bob@acme.test", "battery staple")
    finally:
        await engine.dispose()
    assert await _count(settings, User) == 1
