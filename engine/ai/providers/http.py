"""What HTTP providers share: calls through the egress guard, and one mapping
from transport failures and upstream statuses to the provider errors.

Nothing here retries: Temporal retries activities, the API answers at once.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from engine.ai.providers.base import (
    ModelNotAvailable,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
)
from engine.platform.egress import (
    GuardedResponse,
    guarded_request,
    guarded_stream,
    parse_base_url,
)
from engine.platform.settings import Settings


class ProviderTimeout(ProviderUnavailable):
    """The provider did not answer within the configured time."""

    code = "GATEWAY_TIMEOUT"


def _retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after", "").strip()
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: rare from model servers; callers pick their own wait


def _upstream_message(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body[:200].decode("utf-8", errors="replace")
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return str(error.get("message", error))[:300]
    return str(error or data)[:300]


def raise_for_status(
    provider: str,
    status: int,
    headers: httpx.Headers,
    body: bytes,
    *,
    model: str | None,
    reflect: bool = True,
) -> None:
    """Map an upstream error status to the provider errors (no-op below 300).

    ``reflect``: put the upstream's own error text in the details (operator
    providers); a tenant's endpoint gets only the status, so a client cannot
    read what some server answered through us.
    """
    if status < 300:
        return
    detail = _upstream_message(body) if reflect else None
    if status == 429:
        raise ProviderRateLimited(
            f"{provider} is rate limiting requests", retry_after=_retry_after(headers)
        )
    if status == 404 and model is not None:
        raise ModelNotAvailable(
            f"Model {model!r} is not available on {provider}",
            details={"model": model, "provider": provider, "upstream": detail}
            if reflect
            else {"model": model, "provider": provider},
        )
    if 300 <= status < 400:
        error = ProviderError(f"{provider} answered a redirect, which is not followed")
        error.retryable = False
        raise error
    error = ProviderError(
        f"{provider} answered HTTP {status}",
        details={"provider": provider, "status": status, "upstream": detail}
        if reflect
        else {"provider": provider, "status": status},
    )
    error.retryable = status >= 500 or status == 408
    raise error


def parse_json(provider: str, body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise ProviderError(
            f"{provider} answered malformed JSON", details={"provider": provider}
        ) from None


@asynccontextmanager
async def transport_errors(provider: str) -> AsyncIterator[None]:
    """Transport failures as ProviderUnavailable / ProviderTimeout."""
    try:
        yield
    except httpx.TimeoutException:
        raise ProviderTimeout(
            f"{provider} did not answer in time", details={"provider": provider}
        ) from None
    except httpx.TransportError as exc:
        raise ProviderUnavailable(
            f"{provider} cannot be reached: {type(exc).__name__}",
            details={"provider": provider},
        ) from None


@dataclass
class HttpEndpoint:
    """A provider's base URL, credentials and the shared client.

    ``tenant``: the URL is a tenant's (a partio embedding endpoint), so it
    follows the tenant egress rules and upstream error texts are not passed on.
    """

    provider: str
    base_url: str
    http: httpx.AsyncClient
    settings: Settings
    headers: Mapping[str, str]
    tenant: bool = False

    def __post_init__(self) -> None:
        parse_base_url(self.base_url)

    def url(self, path: str) -> str:
        return f"{self.base_url.rstrip('/')}/{path.lstrip('/')}"

    async def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        model: str | None = None,
        timeout_seconds: float | None = None,
    ) -> Any:
        """A JSON request whose JSON answer is returned (errors mapped)."""
        async with transport_errors(self.provider):
            response = await guarded_request(
                self.http,
                method,
                self.url(path),
                settings=self.settings,
                headers=self.headers,
                json=json_body,
                timeout_seconds=timeout_seconds,
                tenant=self.tenant,
            )
        raise_for_status(
            self.provider,
            response.status_code,
            response.headers,
            response.content,
            model=model,
            reflect=not self.tenant,
        )
        return parse_json(self.provider, response.content) if response.content else {}

    @asynccontextmanager
    async def stream(
        self, method: str, path: str, *, json_body: Any = None, model: str | None = None
    ) -> AsyncIterator[GuardedResponse]:
        """A streamed request; an error status is raised before anything is yielded."""
        async with (
            transport_errors(self.provider),
            guarded_stream(
                self.http,
                method,
                self.url(path),
                settings=self.settings,
                headers=self.headers,
                json=json_body,
                tenant=self.tenant,
            ) as response,
        ):
            if response.status_code >= 300:
                body = await response.aread()
                raise_for_status(
                    self.provider,
                    response.status_code,
                    response.headers,
                    body,
                    model=model,
                    reflect=not self.tenant,
                )
            yield response
