"""Webhook signatures, both ways.

Every delivery is signed twice: the contract's ``X-Webhook-Signature:
sha256=<hex HMAC-SHA256 of the body>`` keyed with the secret as given, and
Standard Webhooks (``webhook-id``, ``webhook-timestamp``, ``webhook-signature:
v1,<base64>``; the ``standardwebhooks`` package). For Standard Webhooks the key
is the secret's bytes, or, for a ``whsec_…`` secret, its base64-decoded bytes;
``standard_secret`` gives the ``whsec_`` form a receiver hands to that library.

Inbound callbacks are checked the same way (either scheme), the Standard
Webhooks timestamp within its five-minute tolerance.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError

from engine.platform.errors import Unauthorized

SIGNATURE_HEADER = "X-Webhook-Signature"
WHSEC = "whsec_"


def body_bytes(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent and signed (compact JSON, as ``JSON.stringify`` writes it)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def _standard_key(secret: str) -> bytes:
    if secret.startswith(WHSEC):
        try:
            return base64.b64decode(secret[len(WHSEC) :] + "==")
        except ValueError:
            pass
    return secret.encode()


def standard_secret(secret: str) -> str:
    """The secret in the ``whsec_<base64>`` form Standard Webhooks libraries take."""
    return WHSEC + base64.b64encode(_standard_key(secret)).decode()


def hex_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_headers(secret: str, message_id: str, body: bytes, now: datetime) -> dict[str, str]:
    return {
        SIGNATURE_HEADER: hex_signature(secret, body),
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(_standard_key(secret)).sign(
            message_id, now, body.decode("utf-8")
        ),
    }


def verify(secret: str, body: bytes, headers: Mapping[str, str]) -> str | None:
    """Check an inbound request's signature; the sender's message id (or None).

    Standard Webhooks headers win when present; otherwise ``X-Webhook-Signature``
    must match. Raises ``Unauthorized`` on a missing or wrong signature.
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    if "webhook-signature" in lowered:
        try:
            Webhook(_standard_key(secret)).verify(body, lowered, json_parse=False)
        except (WebhookVerificationError, ValueError) as exc:
            raise Unauthorized(f"invalid webhook signature: {exc}") from None
        return lowered.get("webhook-id")
    given = lowered.get(SIGNATURE_HEADER.lower())
    if not given:
        raise Unauthorized(
            "the request is not signed (send webhook-signature or X-Webhook-Signature)"
        )
    if not hmac.compare_digest(given.encode(), hex_signature(secret, body).encode()):
        raise Unauthorized("invalid webhook signature")
    return lowered.get("webhook-id") or lowered.get("x-webhook-id")
