"""`weft api` keeps an idle client connection open longer than clients keep
theirs (httpx pools and the SDK drop theirs after 5 s).

Found by the soak (bench/soak.py): at uvicorn's default of 5 s, a client that
reused a connection just as the API closed it got a ReadError, and its request
never arrived. Here one connection waits past those 5 s and is used again."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.db import migrate
from engine.platform.settings import Settings
from tests.conftest import free_port

CLIENT_EXPIRY_SECONDS = 5.0  # httpx's default keepalive_expiry
REQUEST = b"GET /api/v1/nothing-here HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@pytest.fixture
def api_port(tmp_path: Path) -> Iterator[int]:
    """`weft api` on a migrated SQLite database, as a subprocess."""
    data = tmp_path / "data"
    database = f"sqlite:///{tmp_path / 'weft.db'}"
    migrate.upgrade(Settings(database_url=database, data_dir=data))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEFT_")}
    env.update(
        DATABASE_URL=database,
        WEFT_DATA_DIR=str(data),
        TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",  # nothing here needs Temporal
        WEFT_LOG_LEVEL="WARNING",
    )
    env.pop("REDIS_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "api", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, "weft api exited"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=20)


def answer(connection: socket.socket) -> bytes:
    """One whole HTTP/1.1 answer with a Content-Length (b"" when the API closed)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += connection.recv(65536)
    return head


def test_an_idle_connection_outlives_the_clients_pool_expiry(api_port: int) -> None:
    with socket.create_connection(("127.0.0.1", api_port), timeout=30) as connection:
        connection.sendall(REQUEST)
        assert answer(connection).startswith(b"HTTP/1.1 404")
        time.sleep(CLIENT_EXPIRY_SECONDS + 1)
        connection.sendall(REQUEST)
        # Closed after 5 idle seconds, the connection would answer nothing here.
        assert answer(connection).startswith(b"HTTP/1.1 404")
