"""The egress guard: every outbound URL a user or an administrator configures.

Provider base URLs (and, later, webhooks) may point anywhere, so before any
connection the guard:

- accepts ``http`` and ``https`` only, without credentials in the URL;
- resolves the host and checks EVERY address it resolves to: link-local,
  cloud metadata, multicast, unspecified and reserved addresses are always
  refused; loopback unless ``egress_allow_loopback``; private ranges (10/8,
  172.16/12, 192.168/16, 100.64/10, fc00::/7 and other non-global space)
  unless ``egress_allow_private``. Hosts (or addresses/CIDRs) listed in
  ``egress_allowed_hosts`` skip the loopback and private checks, never the
  always-refused ones;
- connects to the address it checked (the URL carries the IP; the ``Host``
  header and the TLS SNI keep the name), so a DNS answer that changes between
  the check and the connection (DNS rebinding) cannot reach another address;
- follows no redirects, caps the response size while reading, and bounds time.

URLs that tenants supply (``tenant=True``: api_call steps, webhooks, remote
agents) are held to stricter rules than the operator's own: loopback, private
and link-local addresses are refused whatever ``egress_allow_loopback`` and
``egress_allowed_hosts`` say, unless ``tenant_egress_allowed_hosts`` lists the
host or address — optionally with a port, so one local service can be opened
without the rest of the machine (the Temporal Web UI, the API itself, …).

Known limit: keep-alive connections are pooled per IP address, so two https
host names that share one IP may share a TLS connection verified for the first.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from engine.platform.aio_transport import AiohttpTransport
from engine.platform.errors import WeftError
from engine.platform.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)
_ALWAYS_DENIED: tuple[tuple[str, Network], ...] = tuple(
    (reason, ipaddress.ip_network(net))
    for reason, net in (
        ("unspecified", "0.0.0.0/8"),
        ("link-local", "169.254.0.0/16"),
        ("link-local", "fe80::/10"),
        ("multicast", "224.0.0.0/4"),
        ("multicast", "ff00::/8"),
        ("reserved", "240.0.0.0/4"),
    )
)


class EgressDenied(WeftError):
    """The URL may not be called under the egress policy (never retried)."""

    code = "EGRESS_DENIED"
    retryable = False


class UpstreamTooLarge(WeftError):
    """The remote answered more bytes than the configured cap."""

    code = "UPSTREAM_RESPONSE_TOO_LARGE"
    retryable = False


class UpstreamUnreachable(WeftError):
    """The URL's host does not resolve (or not in time): nothing to call."""

    code = "UPSTREAM_UNREACHABLE"
    retryable = True


def address_category(ip: IPAddress) -> str:
    """``public``, ``loopback``, ``private`` or an always-refused category."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is not None:
            return address_category(embedded)
    if ip in _METADATA:
        return "metadata"
    for reason, network in _ALWAYS_DENIED:
        if ip.version == network.version and ip in network:
            return reason
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_loopback:
        return "loopback"
    if ip.is_reserved:
        return "reserved"
    if not ip.is_global:
        return "private"  # 10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7, ...
    return "public"


@dataclass(frozen=True)
class _Allowlist:
    names: frozenset[str]
    networks: tuple[Network, ...]

    @classmethod
    def of(cls, entries: list[str]) -> _Allowlist:
        names, networks = set(), []
        for entry in entries:
            value = entry.strip().lower().rstrip(".")
            try:
                networks.append(ipaddress.ip_network(value, strict=False))
            except ValueError:
                names.add(value)
        return cls(frozenset(names), tuple(networks))

    def allows(self, host: str, ip: IPAddress) -> bool:
        return host in self.names or any(
            ip.version == net.version and ip in net for net in self.networks
        )


@dataclass(frozen=True)
class _PortAllowlist:
    """Allow-list entries that may name a port: ``host``, ``10.0.0.0/8``,
    ``127.0.0.1:18931``, ``[::1]:8080``, ``hooks.internal:443``."""

    entries: tuple[tuple[_Allowlist, int | None], ...]

    @classmethod
    def of(cls, entries: list[str]) -> _PortAllowlist:
        parsed = []
        for entry in entries:
            value = entry.strip().lower()
            port: int | None = None
            if value.startswith("["):  # [v6] or [v6]:port
                address, _, rest = value[1:].partition("]")
                value = address
                if rest.startswith(":") and rest[1:].isdigit():
                    port = int(rest[1:])
            elif value.count(":") == 1:  # host:port (a bare IPv6 address has more colons)
                name, _, number = value.partition(":")
                if number.isdigit():
                    value, port = name, int(number)
            parsed.append((_Allowlist.of([value]), port))
        return cls(tuple(parsed))

    def allows(self, host: str, ip: IPAddress, port: int) -> bool:
        return any(
            names.allows(host, ip) and (allowed is None or allowed == port)
            for names, allowed in self.entries
        )


def denial_reason(
    ip: IPAddress, host: str, settings: Settings, *, port: int = 0, tenant: bool = False
) -> str | None:
    """Why ``ip`` (an address of ``host``, to be reached on ``port``) may not be
    reached, or None. ``tenant``: a URL a tenant supplied (see the module's rules)."""
    category = address_category(ip)
    if category == "public":
        return None
    if category in ("loopback", "private"):
        if tenant:
            allowed = _PortAllowlist.of(settings.tenant_egress_allowed_hosts)
            return None if allowed.allows(host, ip, port) else category
        if _Allowlist.of(settings.egress_allowed_hosts).allows(host, ip):
            return None
        if category == "loopback" and settings.egress_allow_loopback:
            return None
        if category == "private" and settings.egress_allow_private:
            return None
    return category


@dataclass(frozen=True)
class Target:
    """A checked URL and the address to connect to."""

    url: httpx.URL
    host: str
    address: IPAddress

    @property
    def pinned_url(self) -> httpx.URL:
        return self.url.copy_with(host=str(self.address))

    @property
    def host_header(self) -> str:
        default = 443 if self.url.scheme == "https" else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        port = self.url.port
        return name if port in (None, default) else f"{name}:{port}"


def parse_url(url: str | httpx.URL) -> httpx.URL:
    """Syntax checks only (scheme, host, no credentials); raises EgressDenied."""
    try:
        parsed = httpx.URL(str(url))
    except (httpx.InvalidURL, ValueError, TypeError):
        raise EgressDenied("The URL is not valid", details={"reason": "invalid"}) from None
    if parsed.scheme not in ("http", "https"):
        raise EgressDenied("Only http and https URLs may be called", details={"reason": "scheme"})
    if not parsed.host:
        raise EgressDenied("The URL has no host", details={"reason": "invalid"})
    if parsed.userinfo:
        raise EgressDenied(
            "Credentials do not belong in the URL; configure an API key instead",
            details={"reason": "credentials"},
        )
    return parsed


def parse_base_url(url: str | httpx.URL) -> httpx.URL:
    """A base URL that paths are appended to: ``parse_url``'s checks, and no
    query or fragment (``http://h/x?`` would make every path a query string)."""
    parsed = parse_url(url)
    if "?" in str(url) or "#" in str(url):
        raise EgressDenied(
            "A base URL may not have a query string or fragment", details={"reason": "invalid"}
        )
    return parsed


async def resolve_target(
    url: str | httpx.URL, settings: Settings, *, tenant: bool = False
) -> Target:
    """Resolve and check ``url``; EgressDenied if any address is forbidden
    (``tenant``: a URL a tenant supplied, under the tenant rules).

    A name that does not resolve raises ``httpx.ConnectError`` (unreachable, not
    forbidden), so callers treat it like any other connection failure.
    """
    parsed = parse_url(url)
    host = parsed.host.lower().rstrip(".")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        addresses: list[IPAddress] = [ipaddress.ip_address(host)]
    except ValueError:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise httpx.ConnectError(f"cannot resolve {host}: {exc.strerror}") from None
        addresses = list(
            dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos)
        )
    if not addresses:
        raise httpx.ConnectError(f"{host} resolves to no address")
    for address in addresses:
        reason = denial_reason(address, host, settings, port=port, tenant=tenant)
        if reason is not None:
            # The address itself stays out of the message: it would let a
            # caller map internal DNS through error texts.
            raise EgressDenied(
                f"{parsed.scheme}://{host}: an address it resolves to is {reason}, "
                "which the egress policy forbids",
                details={"host": host, "reason": reason},
            )
    return Target(parsed, host, addresses[0])


async def check_destination(
    url: str | httpx.URL,
    settings: Settings,
    *,
    tenant: bool = False,
    timeout_seconds: float | None = None,
) -> None:
    """Check ``url`` now, before work that will call it is queued: EgressDenied
    when the policy forbids it, UpstreamUnreachable when its host does not
    resolve within ``timeout_seconds`` (default ``provider_timeout_seconds``).
    A caller that waits for the work answers at once instead of after retries."""
    seconds = timeout_seconds or settings.provider_timeout_seconds
    host = parse_url(url).host
    try:
        async with asyncio.timeout(seconds):
            await resolve_target(url, settings, tenant=tenant)
    except httpx.ConnectError as exc:
        raise UpstreamUnreachable(str(exc), details={"host": host}) from None
    except TimeoutError:
        raise UpstreamUnreachable(
            f"cannot resolve {host} within {seconds:g}s", details={"host": host}
        ) from None


class GuardedResponse:
    """A streamed response whose body is read under the size cap."""

    def __init__(self, response: httpx.Response, max_bytes: int) -> None:
        self._response = response
        self.max_bytes = max_bytes
        self.status_code = response.status_code
        self.headers = response.headers
        self.url = response.request.url

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        declared = self.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise UpstreamTooLarge(f"the response declares more than {self.max_bytes} bytes")
        seen = 0
        async for chunk in self._response.aiter_bytes():
            seen += len(chunk)
            if seen > self.max_bytes:
                raise UpstreamTooLarge(f"the response is larger than {self.max_bytes} bytes")
            yield chunk

    async def aiter_lines(self) -> AsyncIterator[str]:
        """Lines as they arrive (NDJSON, SSE), without the line breaks."""
        buffer = b""
        async for chunk in self.aiter_bytes():
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                yield line.rstrip(b"\r").decode("utf-8", errors="replace")
        if buffer:
            yield buffer.rstrip(b"\r").decode("utf-8", errors="replace")

    async def aread(self) -> bytes:
        return b"".join([chunk async for chunk in self.aiter_bytes()])


@asynccontextmanager
async def guarded_stream(
    http: httpx.AsyncClient,
    method: str,
    url: str | httpx.URL,
    *,
    settings: Settings,
    headers: Mapping[str, str] | None = None,
    json: Any = None,
    content: bytes | None = None,
    timeout_seconds: float | None = None,
    tenant: bool = False,
    max_bytes: int | None = None,
) -> AsyncIterator[GuardedResponse]:
    """Send a checked request and stream its answer; the response closes on exit.

    ``timeout_seconds`` bounds connecting and each read (so a stream that stalls
    fails), defaulting to ``provider_timeout_seconds``. ``tenant``: the URL is
    a tenant's (tenant rules); ``max_bytes`` caps the body below the provider cap.
    """
    target = await resolve_target(url, settings, tenant=tenant)
    seconds = timeout_seconds or settings.provider_timeout_seconds
    extensions = {"sni_hostname": target.host} if target.url.scheme == "https" else {}
    request = http.build_request(
        method,
        target.pinned_url,
        headers={**(headers or {}), "Host": target.host_header},
        json=json,
        content=content,
        timeout=httpx.Timeout(seconds),
        extensions=extensions,
    )
    response = await http.send(request, stream=True, follow_redirects=False)
    try:
        yield GuardedResponse(response, max_bytes or settings.provider_max_response_bytes)
    finally:
        await response.aclose()


@dataclass(frozen=True)
class FullResponse:
    status_code: int
    headers: httpx.Headers
    content: bytes


async def guarded_request(
    http: httpx.AsyncClient,
    method: str,
    url: str | httpx.URL,
    *,
    settings: Settings,
    headers: Mapping[str, str] | None = None,
    json: Any = None,
    timeout_seconds: float | None = None,
    tenant: bool = False,
    max_bytes: int | None = None,
) -> FullResponse:
    """One checked request, read whole under the size cap and a total deadline."""
    seconds = timeout_seconds or settings.provider_timeout_seconds
    try:
        async with asyncio.timeout(seconds):
            async with guarded_stream(
                http,
                method,
                url,
                settings=settings,
                headers=headers,
                json=json,
                timeout_seconds=seconds,
                tenant=tenant,
                max_bytes=max_bytes,
            ) as response:
                content = await response.aread()
                return FullResponse(response.status_code, response.headers, content)
    except TimeoutError:
        raise httpx.ReadTimeout(f"no complete answer within {seconds:g}s") from None


# Pooled connections idle this long are dropped, not reused. Many servers close
# theirs after 5 s idle (uvicorn, under vLLM and most Python model servers;
# Node): a request sent on a connection the server is closing at that moment
# fails without reaching it (httpx's default expiry is those same 5 s).
KEEPALIVE_EXPIRY_SECONDS = 3.0


def new_http_client(settings: Settings) -> httpx.AsyncClient:
    """The shared client for outbound calls (ignores proxy variables: the guard
    must see the real destination), on aiohttp's pool (``aio_transport``)."""
    return httpx.AsyncClient(
        trust_env=False,
        follow_redirects=False,
        timeout=httpx.Timeout(settings.provider_timeout_seconds),
        transport=AiohttpTransport(max_connections=200, keepalive_seconds=KEEPALIVE_EXPIRY_SECONDS),
    )
