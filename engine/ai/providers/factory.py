"""Provider clients from a kind (or partio ``ApiFormat``), a base URL and a key.

Every HTTP provider shares the one ``httpx.AsyncClient`` its process created
(the API's Resources, or the worker composition) and calls through the egress
guard; URLs are checked for syntax here and fully (DNS) at every call.
"""

from __future__ import annotations

import httpx

from engine.ai.providers.base import EmbeddingProvider
from engine.ai.providers.local import LocalEmbeddings
from engine.ai.providers.local_chat import LocalProvider
from engine.ai.providers.ollama import OllamaProvider
from engine.ai.providers.openai import OpenAIProvider
from engine.platform.egress import parse_base_url
from engine.platform.errors import InvalidInput
from engine.platform.settings import Settings

KINDS = ("ollama", "openai", "local")
Provider = OllamaProvider | OpenAIProvider | LocalProvider


def provider_client(
    kind: str,
    name: str,
    base_url: str | None,
    api_key: str | None,
    *,
    http: httpx.AsyncClient,
    settings: Settings,
    tenant: bool = False,
) -> Provider:
    """A chat/embedding client for one configured provider (``tenant``: its URL
    is a tenant's, under the tenant egress rules)."""
    kind = kind.strip().lower()
    if kind == "local":
        return LocalProvider()
    if kind not in KINDS:
        raise InvalidInput(
            f"Unknown provider kind {kind!r} (use one of {', '.join(KINDS)})",
            details={"field": "kind"},
        )
    if not base_url:
        raise InvalidInput(f"Provider {name!r} needs a base_url", details={"field": "base_url"})
    parse_base_url(base_url)
    if kind == "ollama":
        return OllamaProvider(name, base_url, api_key, http=http, settings=settings, tenant=tenant)
    return OpenAIProvider(name, base_url, api_key, http=http, settings=settings, tenant=tenant)


def embedding_provider(
    api_format: str,
    base_url: str | None,
    api_key: str | None,
    *,
    http: httpx.AsyncClient,
    settings: Settings,
) -> EmbeddingProvider:
    """The embedding client for a partio endpoint (``"Ollama"``, ``"OpenAI"``, ``"Local"``):
    a tenant's URL, so the tenant egress rules apply.

    Args:
        api_format: The endpoint's ApiFormat, case-insensitive.
        base_url: The server's base URL (ignored for Local).
        api_key: Sent as a Bearer token when set.
        http: The process's shared client.
        settings: Egress policy, timeouts and size caps.

    Returns:
        A client whose ``embed(texts, model)`` raises the provider errors of
        ``engine.ai.providers.base`` (and ``EgressDenied`` for a forbidden URL).
    """
    kind = api_format.strip().lower()
    if kind == "local":
        return LocalEmbeddings()
    return provider_client(kind, kind, base_url, api_key, http=http, settings=settings, tenant=True)
