"""The shared outbound client never sends a request on a connection that has
sat idle as long as servers keep theirs (5 s for uvicorn, so vLLM and most
Python model servers, and for Node).

Found by the soak (bench/soak.py): a ``call_model`` attempt failed with
"cannot be reached: ReadError" against a uvicorn provider. When the server's
idle timer fires while a request is on its way, the server closes the
connection without reading it; a client whose pool still trusted that
connection (httpx's default expiry is also 5 s) gets no answer. The loopback
server below makes that moment deterministic: a request arriving on a
connection idle for ``SERVER_IDLE_SECONDS`` or more is met by a close."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from engine.platform.egress import KEEPALIVE_EXPIRY_SECONDS, new_http_client
from engine.platform.settings import Settings

SERVER_IDLE_SECONDS = 4.0  # a 5-second server, less the time a request takes to reach it
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


@dataclass
class IdleClosingServer:
    url: str = ""
    connections: int = 0
    closed_on_arrival: int = 0


@asynccontextmanager
async def idle_closing_server() -> AsyncIterator[IdleClosingServer]:
    found = IdleClosingServer()

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        found.connections += 1
        answered = time.monotonic()
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                if time.monotonic() - answered >= SERVER_IDLE_SECONDS:
                    found.closed_on_arrival += 1
                    return  # the idle timer won: closed, nothing answered
                writer.write(ANSWER)
                await writer.drain()
                answered = time.monotonic()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    server = await asyncio.start_server(connection, "127.0.0.1", 0)
    found.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server:
        yield found


async def test_a_connection_idle_past_the_expiry_is_not_reused() -> None:
    assert KEEPALIVE_EXPIRY_SECONDS < SERVER_IDLE_SECONDS
    async with idle_closing_server() as server, new_http_client(Settings()) as http:
        assert (await http.get(f"{server.url}/api/tags")).status_code == 200
        await asyncio.sleep(SERVER_IDLE_SECONDS + 0.2)
        # With the pool still trusting the idle connection, this raises
        # RemoteProtocolError ("Server disconnected without sending a response").
        assert (await http.get(f"{server.url}/api/tags")).status_code == 200
        # A quick follow-up reuses the fresh connection (keep-alive still works).
        assert (await http.get(f"{server.url}/api/tags")).status_code == 200
    assert server.closed_on_arrival == 0
    assert server.connections == 2
