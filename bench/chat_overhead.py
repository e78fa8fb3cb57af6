"""Chat latency overhead of the API over the provider it calls (prints figures; asserts nothing).

    .venv/bin/python bench/chat_overhead.py [--requests 2000] [--concurrency 50]

Three processes on loopback: the fake Ollama server (tests/fake_providers.py,
answering at once), `weft api` (uvicorn, SQLite, no rate limits) configured
with that server as its only provider, and this load generator (a minimal
keep-alive HTTP/1.1 client, so that it is not the bottleneck). In the same
run, rounds alternate between calling the fake directly (the body our Ollama
client sends) and calling `POST /api/v1/ai/chat` (auth, validation, registry,
budget check, breaker, the call, the ledger row, request history). Reports
p50/p99 of both and their difference, and time-to-first-token of streaming
both ways, at the given concurrency and one request at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.db import migrate  # noqa: E402
from engine.db.connection import create_engine, create_sessionmaker, transaction  # noqa: E402
from engine.identity.accounts import create_tenant_with_defaults  # noqa: E402
from engine.platform.settings import Settings  # noqa: E402
from tests.conftest import free_port  # noqa: E402

FAKE_SERVER = """
import sys
sys.path.insert(0, {root!r})
import uvicorn
from tests.fake_providers import FakeProvider, ollama_app

uvicorn.run(ollama_app(FakeProvider("ollama")), host="127.0.0.1", port={port},
            log_level="warning", lifespan="off")
"""
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def start_servers(
    fake_port: int, api_port: int, env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]:
    code = FAKE_SERVER.format(root=str(ROOT), port=fake_port)
    fake = subprocess.Popen([sys.executable, "-c", code])
    api = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "api", "--port", str(api_port)], env=env, cwd=ROOT
    )
    return fake, api


def stop(*processes: subprocess.Popen[bytes]) -> None:
    for process in processes:
        process.terminate()
        process.wait(timeout=15)


async def wait_for(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                await client.get(url)
                return
            except httpx.TransportError:
                await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


class Connection:
    """A minimal keep-alive HTTP/1.1 client connection: the load generator must
    cost far less than the servers it measures (httpx would be the bottleneck)."""

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        url = httpx.URL(base_url)
        self.host, self.port = str(url.host), int(url.port or 80)
        self.headers = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, marker: bytes | None) -> tuple[float, float]:
        """POST and read the whole answer: (total ms, ms until ``marker`` arrived)."""
        return await self.request("POST", path, body, marker)

    async def request(
        self, method: str, path: str, body: bytes = b"", marker: bytes | None = None
    ) -> tuple[float, float]:
        """Send one request and read the whole answer (see ``post``)."""
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{self.headers}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        started = time.perf_counter()
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        if not status_line:  # the server closed an idle keep-alive connection: reopen once
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            started = time.perf_counter()
            self.writer.write(head.encode() + body)
            status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        fields: dict[str, str] = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            fields[name.strip().lower()] = value.strip()
        first = 0.0
        if "content-length" in fields:
            await self.reader.readexactly(int(fields["content-length"]))
            first = (time.perf_counter() - started) * 1000
        else:  # chunked: a streamed answer
            while size := int((await self.reader.readline()).strip(), 16):
                data = await self.reader.readexactly(size)
                await self.reader.readline()
                if not first and (marker is None or marker in data):
                    first = (time.perf_counter() - started) * 1000
            await self.reader.readline()
        if not 200 <= status < 300:
            raise RuntimeError(f"{path} answered {status}")
        if fields.get("connection") == "close":
            self.writer.close()
        return (time.perf_counter() - started) * 1000, first


async def load(
    base_url: str,
    path: str,
    body: dict[str, object],
    total: int,
    concurrency: int,
    headers: dict[str, str],
    marker: bytes | None = None,
) -> tuple[list[float], list[float]]:
    """``total`` POSTs, ``concurrency`` at a time, each worker on its own connection."""
    payload = json.dumps(body).encode()
    totals: list[float] = []
    firsts: list[float] = []
    remaining = iter(range(total))

    async def worker() -> None:
        connection = Connection(base_url, headers)
        try:
            for _ in remaining:
                elapsed, first = await connection.post(path, payload, marker)
                totals.append(elapsed)
                firsts.append(first)
        finally:
            if connection.writer is not None:
                connection.writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return totals, firsts


async def prepare(data: Path) -> str:
    """A migrated SQLite database with one tenant; returns its API key."""
    settings = Settings(database_url=f"sqlite:///{data / 'weft.db'}", data_dir=data)
    await asyncio.to_thread(migrate.upgrade, settings)
    engine = create_engine(settings)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            return (await create_tenant_with_defaults(session, "bench")).credential.secret
    finally:
        await engine.dispose()


def api_environment(data: Path, fake_url: str) -> dict[str, str]:
    """`weft api`'s environment: SQLite in ``data``, no rate limits, the fake as
    its only provider (with prices, so the ledger costs something)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEFT_")}
    env.update(
        DATABASE_URL=f"sqlite:///{data / 'weft.db'}",
        TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",  # chat needs no Temporal
        WEFT_DATA_DIR=str(data),
        WEFT_RATE_LIMITS_ENABLED="false",
        WEFT_LOG_LEVEL="WARNING",
        WEFT_PROVIDERS=json.dumps(
            {"fake": {"kind": "ollama", "base_url": fake_url, "models": ["llama-test"]}}
        ),
        WEFT_MODEL_PRICES=json.dumps({"llama-test": {"input": 0.001, "output": 0.002}}),
    )
    return env


def report(results: dict[str, list[float]], label: str, base: str, via: str) -> None:
    b, v = results[base], results[via]
    p50b, p99b = statistics.median(b), percentile(b, 99)
    p50v, p99v = statistics.median(v), percentile(v, 99)
    print(
        f"{label:<30} direct p50 {p50b:7.2f} p99 {p99b:7.2f} | api p50 {p50v:7.2f} "
        f"p99 {p99v:7.2f} | added p50 {p50v - p50b:6.2f} p99 {p99v - p99b:6.2f} ms "
        f"| ratio p50 {p50v / p50b:4.1f}x p99 {p99v / p99b:4.1f}x (n={len(v)})"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()

    data = Path(tempfile.mkdtemp(prefix="weft-bench-chat-"))
    fake_port, api_port = free_port(), free_port()
    fake_url, api_url = f"http://127.0.0.1:{fake_port}", f"http://127.0.0.1:{api_port}"
    env = api_environment(data, fake_url)
    key = await prepare(data)
    fake, api = start_servers(fake_port, api_port, env)
    auth = {"X-API-Key": key}
    direct = {"model": "llama-test", "messages": MESSAGES, "stream": False}
    direct["options"] = {"temperature": 0.7}
    via_api = {"messages": MESSAGES, "model": "llama-test", "temperature": 0.7}
    chat_path, n = "/api/v1/ai/chat", args.concurrency
    results: dict[str, list[float]] = {
        name: [] for name in ("direct", "api", "ttft_d", "ttft_a", "ttft1_d", "ttft1_a")
    }
    try:
        await wait_for(f"{fake_url}/api/tags")
        await wait_for(f"{api_url}/openapi.json")
        await load(fake_url, "/api/chat", direct, 200, n, {})  # warm-up, both paths
        await load(api_url, chat_path, via_api, 200, n, auth)
        per_round = max(1, args.requests // args.rounds)
        streamed = max(1, per_round // 4)
        direct_stream, api_stream = {**direct, "stream": True}, {**via_api, "stream": True}
        first_direct, first_api = b'"content": "Echo:"', b'"delta"'
        for _ in range(args.rounds):  # alternating, so drift hits both alike
            results["direct"] += (await load(fake_url, "/api/chat", direct, per_round, n, {}))[0]
            results["api"] += (await load(api_url, chat_path, via_api, per_round, n, auth))[0]
            for concurrency, count, suffix in ((n, streamed, ""), (1, 50, "1")):
                _, firsts = await load(
                    fake_url, "/api/chat", direct_stream, count, concurrency, {}, first_direct
                )
                results[f"ttft{suffix}_d"] += firsts
                _, firsts = await load(
                    api_url, chat_path, api_stream, count, concurrency, auth, first_api
                )
                results[f"ttft{suffix}_a"] += firsts
    finally:
        stop(api, fake)

    print(f"machine: {os.cpu_count()} CPUs; API: uvicorn (h11), 1 process, SQLite; fake: 1 process")
    report(results, f"chat, {n} concurrent", "direct", "api")
    report(results, f"first token, {n} concurrent", "ttft_d", "ttft_a")
    report(results, "first token, one at a time", "ttft1_d", "ttft1_a")


if __name__ == "__main__":
    asyncio.run(main())
