"""The one resolver from a tenant's embedding endpoint (partio) to a provider.

The API (RAG over an endpoint's vectors) and the workers (embedding documents
and semantic cells) both come here, so an endpoint means the same client,
model name and key everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from engine.ai.providers import local
from engine.ai.providers.base import EmbeddingProvider
from engine.ai.providers.factory import embedding_provider
from engine.db.tables import EmbeddingEndpoint
from engine.platform.crypto import decrypt_secret
from engine.platform.settings import Settings


@dataclass(frozen=True)
class EndpointEmbedder:
    provider: EmbeddingProvider
    model: str  # the name its vectors are indexed under
    provider_name: str  # for the usage ledger


def endpoint_embedder(
    endpoint: EmbeddingEndpoint,
    *,
    settings: Settings,
    http: httpx.AsyncClient,
    normalize: bool = False,
) -> EndpointEmbedder:
    """The provider behind ``endpoint`` (a Local endpoint is the shipped MiniLM,
    indexed under its own name). The API key is decrypted only here."""
    if endpoint.api_format == "Local":
        embeddings = local.LocalEmbeddings(normalize=normalize)
        return EndpointEmbedder(embeddings, local.LOCAL_EMBEDDING_MODEL, "local")
    secret = endpoint.api_key_encrypted
    provider = embedding_provider(
        endpoint.api_format,
        endpoint.endpoint,
        decrypt_secret(settings, secret) if secret else None,
        http=http,
        settings=settings,
    )
    return EndpointEmbedder(provider, endpoint.model, endpoint.api_format.lower())
