"""Encryption of secrets the engine must use again (provider and endpoint API keys,
webhook signing secrets, A2A push tokens).

Passwords and API keys are hashed; these have to be sent on, so they are
encrypted (Fernet: AES-128-CBC with HMAC-SHA256) with the deployment's
``WEFT_ENCRYPTION_KEYS``, through a ``MultiFernet``: the first key encrypts,
every key decrypts, so keys rotate without downtime (``rotate`` re-encrypts one
token with the first key; ``weft admin rotate-secrets`` does it for every row).
Secrets written before the keys were dedicated were encrypted with a key derived
from the JWT secret; that key still decrypts, last, until they are rotated.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from engine.platform.settings import Settings


def _derived(material: str) -> Fernet:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"weftworks", info=b"secrets-at-rest"
    ).derive(material.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def _fernet(material: str) -> Fernet:
    """A Fernet key as it is, or a passphrase stretched into one."""
    try:
        return Fernet(material.encode())
    except (ValueError, binascii.Error):
        return _derived(material)


def keyring(settings: Settings) -> MultiFernet:
    keys = [_fernet(material) for material in settings.resolved_encryption_keys()]
    return MultiFernet([*keys, _derived(settings.resolved_jwt_secret())])


def encrypt_secret(settings: Settings, plaintext: str) -> str:
    return keyring(settings).encrypt(plaintext.encode()).decode()


def decrypt_secret(settings: Settings, token: str) -> str:
    try:
        return keyring(settings).decrypt(token.encode()).decode()
    except InvalidToken:
        raise ValueError("stored secret cannot be decrypted with this deployment's keys") from None


def rotate(settings: Settings, token: str) -> str:
    """``token`` encrypted again with the first key (ValueError if no key opens it)."""
    try:
        return keyring(settings).rotate(token.encode()).decode()
    except InvalidToken:
        raise ValueError("stored secret cannot be decrypted with this deployment's keys") from None
