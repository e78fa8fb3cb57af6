"""Every column that holds an encrypted secret, and their re-encryption with the
first of ``WEFT_ENCRYPTION_KEYS`` (``weft admin rotate-secrets``)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from engine.db.tables import A2APushConfig, Callback, EmbeddingEndpoint, ModelProvider, Webhook
from engine.platform.crypto import rotate
from engine.platform.settings import Settings

ENCRYPTED_COLUMNS = (
    (ModelProvider, "api_key_encrypted"),
    (EmbeddingEndpoint, "api_key_encrypted"),
    (Webhook, "secret_encrypted"),
    (Callback, "secret_encrypted"),
    (A2APushConfig, "token_encrypted"),
)


async def rotate_stored_secrets(session: AsyncSession, settings: Settings) -> dict[str, int]:
    """Re-encrypt every stored secret with the first key, in the caller's transaction
    (all or nothing); how many of each table. A secret no key opens fails it all."""
    counts: dict[str, int] = {}
    for model, column in ENCRYPTED_COLUMNS:
        rows = await session.scalars(select(model).where(getattr(model, column).is_not(None)))
        rotated = 0
        for row in rows:
            setattr(row, column, rotate(settings, getattr(row, column)))
            rotated += 1
        counts[model.__tablename__] = rotated
    return counts
