"""Secrets at rest: a dedicated key (not the JWT secret) encrypts them, and keys
rotate with `weft admin rotate-secrets` (a real subprocess on a real database)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from engine.db.connection import create_engine, create_sessionmaker, transaction
from engine.db.tables import ModelProvider
from engine.platform.crypto import decrypt_secret, encrypt_secret
from engine.platform.settings import Settings

pytestmark = pytest.mark.asyncio

OLD, NEW = "old-key-" + "o" * 32, "new-key-" + "n" * 32


async def stored_token(settings: Settings) -> str:
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            row = await session.scalar(select(ModelProvider).where(ModelProvider.name == "hosted"))
            assert row is not None and row.api_key_encrypted
            return row.api_key_encrypted
    finally:
        await engine.dispose()


async def test_rotating_the_jwt_secret_leaves_stored_secrets_readable(settings: Settings) -> None:
    keyed = settings.model_copy(update={"encryption_keys": [OLD], "jwt_secret": "j" * 40})
    token = encrypt_secret(keyed, "sk-live-123")
    rotated_jwt = keyed.model_copy(update={"jwt_secret": "k" * 40})
    assert decrypt_secret(rotated_jwt, token) == "sk-live-123"
    with pytest.raises(ValueError, match="cannot be decrypted"):
        decrypt_secret(keyed.model_copy(update={"encryption_keys": [NEW]}), token)


async def test_rotate_secrets_re_encrypts_every_row_with_the_new_key(
    settings: Settings, tmp_path: Path
) -> None:
    old = settings.model_copy(update={"encryption_keys": [OLD]})
    engine = create_engine(old)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            secret = encrypt_secret(old, "sk-live-123")
            session.add(ModelProvider(name="hosted", kind="openai", api_key_encrypted=secret))
    finally:
        await engine.dispose()
    before = await stored_token(old)

    env = {k: v for k, v in os.environ.items() if not k.startswith("WEFT_")}
    env.update(DATABASE_URL=str(settings.database_url), WEFT_DATA_DIR=str(settings.data_dir),
               WEFT_ENCRYPTION_KEYS=f"{NEW},{OLD}")  # fmt: skip
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "engine.cli", "admin", "rotate-secrets"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "model_providers 1" in done.stdout
    assert "sk-live" not in done.stdout + done.stderr

    after = await stored_token(old)
    assert after != before
    only_new = settings.model_copy(update={"encryption_keys": [NEW]})
    assert decrypt_secret(only_new, after) == "sk-live-123"  # the old key can now go
