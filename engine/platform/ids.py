"""Prefixed, URL-safe identifiers (``ten_…``, ``usr_…``, ``key_…``)."""

import secrets


def new_id(prefix: str) -> str:
    """A random id with a readable type prefix, e.g. ``usr_3f9c2a…``."""
    return f"{prefix}_{secrets.token_hex(12)}"
