"""Providers added at run time (z2's providers list), for global administrators.

API keys are encrypted at rest (``engine.platform.crypto``) and never returned: a
provider says only whether it has one. A base URL is checked against the
egress policy when it is saved, and again at every call.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from engine.ai.providers.catalog import parse_specs
from engine.ai.providers.factory import KINDS
from engine.ai.providers.local_chat import LOCAL_PROVIDER
from engine.db.tables import ModelProvider
from engine.platform.crypto import encrypt_secret
from engine.platform.egress import resolve_target
from engine.platform.errors import Conflict, InvalidInput, NotFound
from engine.platform.settings import Settings

NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")


def provider_public(row: ModelProvider) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "kind": row.kind,
        "base_url": row.base_url,
        "has_api_key": bool(row.api_key_encrypted),
        "active": row.active,
        "priority": row.priority,
        "models": row.models or [],
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat() if row.updated_at else None,
    }


async def _check_url(settings: Settings, kind: str, base_url: str | None) -> None:
    if kind == "local":
        return
    if not base_url:
        raise InvalidInput("base_url is required", details={"field": "base_url"})
    # A name that does not resolve now is accepted: it is checked again at every call.
    with contextlib.suppress(httpx.ConnectError):
        await resolve_target(base_url, settings)


def _check_kind(kind: str) -> str:
    kind = kind.lower()
    if kind not in KINDS or kind == "local":
        raise InvalidInput("kind must be ollama or openai", details={"field": "kind"})
    return kind


async def list_providers(session: AsyncSession) -> list[dict[str, Any]]:
    rows = (await session.scalars(select(ModelProvider).order_by(ModelProvider.priority))).all()
    return [provider_public(row) for row in rows]


async def create_provider(
    session: AsyncSession, settings: Settings, values: dict[str, Any]
) -> dict[str, Any]:
    name = str(values["name"])
    if not NAME.match(name) or name == LOCAL_PROVIDER or name in settings.providers:
        raise InvalidInput(
            f"Provider name {name!r} is invalid or taken by settings",
            details={"field": "name"},
        )
    kind = _check_kind(str(values["kind"]))
    await _check_url(settings, kind, values.get("base_url"))
    specs = parse_specs(values.get("models") or [], name)
    api_key = values.get("api_key")
    row = ModelProvider(
        name=name,
        kind=kind,
        base_url=values.get("base_url"),
        api_key_encrypted=encrypt_secret(settings, api_key) if api_key else None,
        active=bool(values.get("active", True)),
        priority=int(values.get("priority", 100)),
        models=[spec.as_config() for spec in specs],
    )
    session.add(row)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise Conflict(f"A provider named {name} exists", details={"field": "name"}) from None
    return provider_public(row)


async def get_provider(session: AsyncSession, provider_id: str) -> ModelProvider:
    row = await session.get(ModelProvider, provider_id)
    if row is None:
        row = await session.scalar(select(ModelProvider).where(ModelProvider.name == provider_id))
    if row is None:
        raise NotFound(f"Provider {provider_id} not found")
    return row


async def update_provider(
    session: AsyncSession, settings: Settings, provider_id: str, values: dict[str, Any]
) -> dict[str, Any]:
    """Change the given fields; ``api_key: ""`` removes the key."""
    row = await get_provider(session, provider_id)
    if "kind" in values:
        row.kind = _check_kind(str(values["kind"]))
    if "base_url" in values:
        await _check_url(settings, row.kind, values["base_url"])
        row.base_url = values["base_url"]
    if "api_key" in values:
        key = values["api_key"]
        row.api_key_encrypted = encrypt_secret(settings, key) if key else None
    if "models" in values:
        row.models = [spec.as_config() for spec in parse_specs(values["models"] or [], row.name)]
    for field in ("active", "priority"):
        if field in values and values[field] is not None:
            setattr(row, field, values[field])
    await session.commit()
    return provider_public(row)


async def delete_provider(session: AsyncSession, provider_id: str) -> None:
    row = await get_provider(session, provider_id)
    await session.delete(row)
    await session.commit()
