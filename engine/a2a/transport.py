"""An httpx transport that sends every request through the egress guard.

A remote agent's card names the URLs the client calls next (its JSON-RPC
endpoint may be anywhere), so checking the card's URL is not enough: each
request is resolved, checked (the tenant rules by default) and pinned to the
address just checked, with the ``Host`` header and the TLS SNI keeping the
name, so DNS that changes between the check and the connection reaches
nothing else. Redirects are never followed (the client must not follow them
either), and response bodies are capped while they stream in.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from engine.platform.egress import EgressDenied, UpstreamTooLarge, resolve_target
from engine.platform.settings import Settings


class EgressRefused(httpx.ConnectError):
    """The guard refused a request (no connection was made); ``denied`` says why."""

    def __init__(self, denied: EgressDenied, request: httpx.Request) -> None:
        super().__init__(f"egress denied: {denied.message}", request=request)
        self.denied = denied


class _CappedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, limit: int) -> None:
        self._inner = inner
        self._limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in self._inner:
            seen += len(chunk)
            if seen > self._limit:
                raise UpstreamTooLarge(f"the response is larger than {self._limit} bytes")
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class GuardedTransport(httpx.AsyncBaseTransport):
    """Resolve, check and pin each request (``tenant``: the tenant rules).

    ``refused`` holds the last refusal, so a caller whose library wrapped the
    error (the a2a client turns transport errors into its own) can report it.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        tenant: bool = True,
        max_bytes: int | None = None,
        inner: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.tenant = tenant
        self.max_bytes = max_bytes or settings.provider_max_response_bytes
        self._inner = inner or httpx.AsyncHTTPTransport()
        self.refused: EgressDenied | None = None
        self.sent: list[tuple[str, str]] = []  # (pinned URL, Host) of each request

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            target = await resolve_target(request.url, self.settings, tenant=self.tenant)
        except EgressDenied as denied:
            self.refused = denied
            raise EgressRefused(denied, request) from None
        request.url = target.pinned_url
        request.headers["Host"] = target.host_header
        if request.url.scheme == "https":
            request.extensions = {**request.extensions, "sni_hostname": target.host}
        self.sent.append((str(request.url), target.host_header))
        response = await self._inner.handle_async_request(request)
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await response.aclose()
            raise UpstreamTooLarge(f"the response declares more than {self.max_bytes} bytes")
        stream = response.stream
        if not isinstance(stream, httpx.AsyncByteStream):
            return response
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_CappedStream(stream, self.max_bytes),
            extensions=response.extensions,
            request=request,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


def guarded_client(
    settings: Settings,
    *,
    tenant: bool = True,
    timeout_seconds: float | None = None,
    headers: dict[str, str] | None = None,
    max_bytes: int | None = None,
) -> tuple[httpx.AsyncClient, GuardedTransport]:
    """A client whose every request passes the guard (no proxies, no redirects)."""
    transport = GuardedTransport(settings, tenant=tenant, max_bytes=max_bytes)
    seconds = timeout_seconds or settings.provider_timeout_seconds
    client = httpx.AsyncClient(
        transport=transport,
        trust_env=False,
        follow_redirects=False,
        timeout=httpx.Timeout(seconds),
        headers=headers,
    )
    return client, transport
