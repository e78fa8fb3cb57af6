"""An httpx transport on aiohttp's connection pool, for the shared outbound client.

httpx stays the interface every caller uses (requests, responses, errors); only
the wire moves. httpcore's pool checks every pooled connection's socket on each
request (a ``poll`` per idle connection: encode/httpcore#928), which made the
outbound call the largest part of the API's CPU per chat request; aiohttp's pool
does not. Measured in-process on a bare FastAPI forwarder to a loopback
provider: about 1.0 ms of CPU per request through httpcore, 0.4 ms through this
(``bench/api_hotpath.py`` reports the API's figures).

What callers rely on is kept:
- errors are httpx's: ``ConnectError`` (refused, unreachable), ``ConnectTimeout``,
  ``ReadTimeout`` (no byte within the read timeout), ``RemoteProtocolError`` (the
  server closed without answering), ``ReadError`` (the body broke off);
- the request goes where its URL says (the egress guard pins the address) with
  the ``Host`` header and TLS server name (``sni_hostname``) it was given;
- no proxy from the environment, no redirects, bodies passed on undecoded
  (httpx decodes ``Content-Encoding`` itself);
- pooled connections idle for ``keepalive_seconds`` are not reused.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import aiohttp
import httpx

# Set by aiohttp (or by us) per request; passing httpx's copies would clash.
_DROPPED_HEADERS = frozenset({"connection", "content-length", "transfer-encoding", "keep-alive"})


@contextmanager
def _as_httpx_errors(request: httpx.Request, *, reading: bool) -> Iterator[None]:
    """aiohttp's failures as the httpx exceptions callers handle."""
    try:
        yield
    except aiohttp.ConnectionTimeoutError as exc:
        raise httpx.ConnectTimeout(str(exc) or "connect timed out", request=request) from exc
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise httpx.ReadTimeout(str(exc) or "read timed out", request=request) from exc
    except aiohttp.ClientConnectorError as exc:
        raise httpx.ConnectError(str(exc), request=request) from exc
    except aiohttp.ServerDisconnectedError as exc:
        raise httpx.RemoteProtocolError(
            "Server disconnected without sending a complete response", request=request
        ) from exc
    except aiohttp.ClientPayloadError as exc:
        raise httpx.ReadError(str(exc), request=request) from exc
    except aiohttp.InvalidURL as exc:
        raise httpx.UnsupportedProtocol(str(exc), request=request) from exc
    except (aiohttp.ClientError, OSError) as exc:
        error = httpx.ReadError if reading else httpx.ConnectError
        raise error(str(exc) or type(exc).__name__, request=request) from exc


class _Body(httpx.AsyncByteStream):
    """An aiohttp response's body, as httpx reads it; closing releases the connection."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors(self._request, reading=True):
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        # Read to the end: the connection goes back to the pool. Otherwise closed.
        self._response.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp session (created on first use, in the running loop)."""

    def __init__(
        self,
        *,
        max_connections: int,
        keepalive_seconds: float,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._max_connections = max_connections
        self._keepalive_seconds = keepalive_seconds
        self._session: aiohttp.ClientSession | None = None
        self._ssl = ssl_context or ssl.create_default_context()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                keepalive_timeout=self._keepalive_seconds,
                ssl=self._ssl,
                use_dns_cache=False,  # the guard resolves and pins; hosts here are addresses
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                trust_env=False,
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding"),
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout", {})
        headers = [
            (name, value)
            for name, value in request.headers.multi_items()
            if name.lower() not in _DROPPED_HEADERS
        ]
        body = await request.aread()
        with _as_httpx_errors(request, reading=False):
            response = await self._client().request(
                request.method,
                str(request.url),
                headers=headers,
                data=body or None,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=timeout.get("pool"),
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                ),
                server_hostname=request.extensions.get("sni_hostname"),
            )
        extensions = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode()
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_Body(response, request),
            request=request,
            extensions=extensions,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
            # Let the connector's close callbacks run (aiohttp's documented pause).
            await asyncio.sleep(0)
