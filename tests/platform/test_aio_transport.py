"""The shared outbound client's wire (aiohttp under httpx): TLS is checked
against the name the guard pinned, and every way a server can fail arrives as
the httpx error the provider layer maps (unreachable, timeout, broken answer)."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from engine.platform.aio_transport import AiohttpTransport
from engine.platform.egress import guarded_request
from engine.platform.settings import Settings
from tests.conftest import free_port

pytestmark = pytest.mark.asyncio
SETTINGS = Settings(provider_timeout_seconds=1.0)
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def certificate_files(tmp: Path, dns_name: str) -> tuple[Path, Path, Path]:
    """A test CA and a server certificate it signed for ``dns_name``: (ca, cert, key)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    authority = _name("weft test CA")
    ca = (
        x509.CertificateBuilder().subject_name(authority).issuer_name(authority)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    cert = (
        x509.CertificateBuilder().subject_name(_name(dns_name)).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    paths = tmp / "ca.pem", tmp / "cert.pem", tmp / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


async def answer_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while await reader.readuntil(b"\r\n\r\n"):
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{"ok":true}')
        await writer.drain()


@asynccontextmanager
async def server(handler: Handler, tls: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    listening = await asyncio.start_server(guarded, "127.0.0.1", 0, ssl=tls)
    async with listening:
        yield listening.sockets[0].getsockname()[1]


@asynccontextmanager
async def client(trust: Path | None = None) -> AsyncIterator[httpx.AsyncClient]:
    context = ssl.create_default_context(cafile=str(trust)) if trust else None
    transport = AiohttpTransport(max_connections=10, keepalive_seconds=3.0, ssl_context=context)
    async with httpx.AsyncClient(transport=transport, trust_env=False) as http:
        yield http


async def get(http: httpx.AsyncClient, url: str) -> int:
    return (await guarded_request(http, "GET", url, settings=SETTINGS)).status_code


@pytest.mark.parametrize("certified_for", ["localhost", "elsewhere.example"])
async def test_https_is_verified_against_the_name_not_the_pinned_address(
    tmp_path: Path, certified_for: str
) -> None:
    ca, cert, key = certificate_files(tmp_path, certified_for)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    async with server(answer_ok, tls) as port, client(trust=ca) as http:
        url = f"https://localhost:{port}/health"  # the guard connects to 127.0.0.1
        if certified_for == "localhost":
            assert await get(http, url) == 200
        else:  # a certificate for another name is refused before any request
            with pytest.raises(httpx.ConnectError):
                await get(http, url)


async def test_a_refused_connection_is_a_connect_error() -> None:
    async with client() as http:
        with pytest.raises(httpx.ConnectError):
            await get(http, f"http://127.0.0.1:{free_port()}/")


async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    await asyncio.sleep(5)


async def cut_short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"partial":')
    await writer.drain()


@pytest.mark.parametrize(
    ("handler", "error"),
    [
        (hang_up, httpx.RemoteProtocolError),  # closed without answering
        (silent, httpx.ReadTimeout),  # nothing within the read timeout
        (cut_short, httpx.ReadError),  # the body breaks off
    ],
)
async def test_a_failing_server_is_the_httpx_error_callers_map(
    handler: Handler, error: type[httpx.HTTPError]
) -> None:
    async with server(handler) as port, client() as http:
        with pytest.raises(error):
            await get(http, f"http://127.0.0.1:{port}/")


async def test_connections_are_reused_and_the_body_arrives_whole() -> None:
    connections = 0

    async def counted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await answer_ok(reader, writer)

    async with server(counted) as port, client() as http:
        for _ in range(5):
            response = await guarded_request(
                http, "GET", f"http://127.0.0.1:{port}/", settings=SETTINGS
            )
            assert response.content == b'{"ok":true}'
    assert connections == 1
