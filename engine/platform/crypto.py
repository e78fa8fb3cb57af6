"""Encryption of secrets the engine must use again (provider API keys).

Passwords and API keys are hashed; a provider's API key has to be sent on, so
it is encrypted with a key derived from the deployment's secret (Fernet:
AES-128-CBC with HMAC-SHA256).
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from engine.platform.settings import Settings


def _fernet(settings: Settings) -> Fernet:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"weftworks", info=b"secrets-at-rest"
    ).derive(settings.resolved_jwt_secret().encode())
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt_secret(settings: Settings, plaintext: str) -> str:
    return _fernet(settings).encrypt(plaintext.encode()).decode()


def decrypt_secret(settings: Settings, token: str) -> str:
    try:
        return _fernet(settings).decrypt(token.encode()).decode()
    except InvalidToken:
        raise ValueError("stored secret cannot be decrypted with this deployment's key") from None
