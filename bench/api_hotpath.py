"""The API's hot path under concurrency (prints figures; asserts nothing).

    .venv/bin/python bench/api_hotpath.py [--workers 1] [--concurrency 50] [--requests 3000]
                                          [--profile-seconds 10]

Four processes on loopback: the fake Ollama server (tests/fake_providers.py,
answering at once), `weft api` (uvicorn with uvloop and httptools, SQLite,
rate limits off) with that fake as its only provider, a bare FastAPI forwarder
of the same request to the same fake (the thin-layer ceiling: no auth, no
ledger, no history), and this load generator. Everything is measured in the
same run, rounds alternating, so the ratios hold on a noisy machine:

1. Throughput at ``--concurrency`` closed-loop clients: weft vs the forwarder.
2. API CPU per request by route (chat, chat stream, files list, RAG on an empty
   index: query embedding included), from the API processes' /proc counters.
3. Open loop at half of weft's saturation rate: p50/p99 through weft minus the
   same rate sent straight to the fake ("added" latency).
4. Where the CPU goes: a py-spy profile of the API under chat load, top
   functions by own samples (skipped when py-spy cannot attach).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.chat_overhead import (  # noqa: E402
    FAKE_SERVER,
    MESSAGES,
    Connection,
    api_environment,
    load,
    percentile,
    prepare,
    stop,
    wait_for,
)
from tests.conftest import free_port  # noqa: E402

FORWARDER = """
import sys
sys.path.insert(0, {root!r})
import httpx, uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response

app = FastAPI()
client = httpx.AsyncClient(base_url={fake!r})

@app.post("/api/v1/ai/chat")
async def chat(request: Request) -> Response:
    body = await request.json()
    answer = await client.post("/api/chat", json={{
        "model": body["model"], "messages": body["messages"], "stream": False,
        "options": {{"temperature": body.get("temperature", 0.7)}},
    }})
    return Response(answer.content, media_type="application/json")

uvicorn.run(app, host="127.0.0.1", port={port}, log_level="warning")
"""
TICKS = os.sysconf("SC_CLK_TCK")
# py-spy names a frame's file relative to its sys.path entry.
OUR_PACKAGES = ("api/", "engine/", "workers/", "workflows/")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its live children (uvicorn's workers)."""
    total = 0.0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for each in pids:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


Body = dict[str, object]
Headers = dict[str, str]


async def closed_loop(
    url: str, path: str, body: Body, total: int, clients: int, headers: Headers
) -> float:
    """Requests per second of ``total`` requests over ``clients`` connections."""
    started = time.perf_counter()
    await load(url, path, body, total, clients, headers)
    return total / (time.perf_counter() - started)


async def per_request_cpu(
    pid: int, url: str, method: str, path: str, body: Body | None, total: int, headers: Headers
) -> float:
    """API CPU milliseconds per request of one route, 10 clients at a time."""
    payload = json.dumps(body).encode() if body is not None else b""
    remaining = iter(range(total))

    async def worker() -> None:
        connection = Connection(url, headers)
        try:
            for _ in remaining:
                await connection.request(method, path, payload)
        finally:
            if connection.writer is not None:
                connection.writer.close()

    idle = await settle(pid)  # the backlog of the phase before is not this one's
    before, began = cpu_seconds(pid), time.monotonic()
    await asyncio.gather(*(worker() for _ in range(10)))
    await settle(pid)  # the work the requests left behind (batched writes) is theirs
    spent = cpu_seconds(pid) - before - idle * (time.monotonic() - began)
    return spent / total * 1000


async def settle(pid: int, window: float = 0.5, most_seconds: float = 20.0) -> float:
    """Wait until ``pid`` is idle (under 2% of a core over ``window``); its idle
    CPU seconds per second (timers, pollers) are returned."""
    deadline = time.monotonic() + most_seconds
    while True:
        before = cpu_seconds(pid)
        await asyncio.sleep(window)
        rate = (cpu_seconds(pid) - before) / window
        if rate < 0.02 or time.monotonic() > deadline:
            return rate


async def open_loop(
    url: str, path: str, body: Body, rate: float, seconds: float, headers: Headers
) -> list[float]:
    """Latencies of requests sent at ``rate`` per second (Poisson arrivals),
    whether or not earlier ones have answered."""
    payload = json.dumps(body).encode()
    idle: list[Connection] = []
    latencies: list[float] = []
    tasks: list[asyncio.Task[None]] = []

    async def one() -> None:
        connection = idle.pop() if idle else Connection(url, headers)
        elapsed, _ = await connection.post(path, payload, None)
        latencies.append(elapsed)
        idle.append(connection)

    end = time.perf_counter() + seconds
    next_at = time.perf_counter()
    while next_at < end:
        delay = next_at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one()))
        next_at += random.expovariate(rate)
    await asyncio.gather(*tasks)
    for connection in idle:
        if connection.writer is not None:
            connection.writer.close()
    return latencies


def profile(pid: int, seconds: float, out: Path) -> Counter[str] | None:
    """py-spy's own-time samples by function over ``seconds`` (None if it cannot attach)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    done = subprocess.run(
        [spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--format", "raw",
         "--output", str(out), "--nonblocking", "--subprocesses"],
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0 or not out.exists():
        print(f"py-spy: {done.stderr.strip().splitlines()[-1:] or 'failed'}")
        return None
    own: Counter[str] = Counter()
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";") if stack else ["?"]
        own[_area(frames[-1])] += int(count)
        ours = [f for f in frames if f.partition(" (")[2].startswith(OUR_PACKAGES)]
        own["ours: " + (_area(ours[-1]) if ours else "outside our code")] += int(count)
        for area in {_area(f) for f in ours}:
            own["within: " + area] += int(count)
    return own


def _area(frame: str) -> str:
    """A frame ``function (path:line)`` summarised as ``package: function``."""
    name, _, where = frame.partition(" (")
    path = where.split(":")[0]
    for marker in ("site-packages/", "/work/main/", "python3.11/", "("):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    top = (
        path.removesuffix(".py") if path.startswith(OUR_PACKAGES) else "/".join(path.split("/")[:2])
    )
    return f"{top}: {name.strip()}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--open-seconds", type=float, default=20)
    parser.add_argument(
        "--open-rate",
        type=float,
        default=0,
        help="requests/s of the open loop (default: half "
        "of the measured saturation; fix it to compare runs with --env)",
    )
    parser.add_argument("--profile-seconds", type=float, default=10)
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE",
        help="an extra setting for weft api (repeatable), to see what a feature costs",
    )  # fmt: skip
    args = parser.parse_args()

    data = Path(tempfile.mkdtemp(prefix="weft-bench-hotpath-"))
    fake_port, api_port, fwd_port = free_port(), free_port(), free_port()
    fake_url = f"http://127.0.0.1:{fake_port}"
    api_url, fwd_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{fwd_port}"
    env = api_environment(data, fake_url)
    env.update(item.split("=", 1) for item in args.env)
    key = await prepare(data)
    fake = subprocess.Popen(
        [sys.executable, "-c", FAKE_SERVER.format(root=str(ROOT), port=fake_port)]
    )
    api = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "api", "--port", str(api_port),
         "--workers", str(args.workers)],
        env=env, cwd=ROOT,
    )  # fmt: skip
    forwarder = subprocess.Popen(
        [sys.executable, "-c", FORWARDER.format(root=str(ROOT), fake=fake_url, port=fwd_port)]
    )
    auth = {"X-API-Key": key}
    chat: Body = {"messages": MESSAGES, "model": "llama-test", "temperature": 0.7}
    path, n = "/api/v1/ai/chat", args.concurrency
    rates: dict[str, list[float]] = {"weft": [], "bare": []}
    try:
        await wait_for(f"{fake_url}/api/tags")
        await wait_for(f"{fwd_url}/openapi.json")
        await wait_for(f"{api_url}/openapi.json")
        await load(fwd_url, path, chat, 300, n, {})  # warm-up
        await load(api_url, path, chat, 300, n, auth)
        per_round = max(n, args.requests // args.rounds)
        for _ in range(args.rounds):
            rates["bare"].append(await closed_loop(fwd_url, path, chat, per_round, n, {}))
            rates["weft"].append(await closed_loop(api_url, path, chat, per_round, n, auth))

        cpu: dict[str, float] = {}
        cpu["chat"] = await per_request_cpu(api.pid, api_url, "POST", path, chat, 1000, auth)
        cpu["chat (bare forwarder)"] = await per_request_cpu(
            forwarder.pid, fwd_url, "POST", path, chat, 1000, {}
        )
        streamed = {**chat, "stream": True}
        cpu["chat stream"] = await per_request_cpu(
            api.pid, api_url, "POST", path, streamed, 500, auth
        )
        cpu["files list"] = await per_request_cpu(
            api.pid, api_url, "GET", "/api/v1/mcp/files", None, 1000, auth
        )
        rag: Body = {"query": "What is the capital of France?"}
        await per_request_cpu(api.pid, api_url, "POST", "/api/v1/ai/rag/query", rag, 20, auth)
        cpu["RAG query (empty index)"] = await per_request_cpu(
            api.pid, api_url, "POST", "/api/v1/ai/rag/query", rag, 200, auth
        )

        saturation = statistics.median(rates["weft"])
        rate = args.open_rate or saturation / 2
        direct_body: Body = {"model": "llama-test", "messages": MESSAGES, "stream": False}
        direct = await open_loop(fake_url, "/api/chat", direct_body, rate, args.open_seconds, {})
        through = await open_loop(api_url, path, chat, rate, args.open_seconds, auth)

        own = None
        if args.profile_seconds > 0:
            loader = asyncio.create_task(load(api_url, path, chat, 10**6, n, auth))
            own = await asyncio.to_thread(
                profile, api.pid, args.profile_seconds, data / "profile.txt"
            )
            loader.cancel()
    finally:
        stop(api, forwarder, fake)

    print(
        f"machine: {os.cpu_count()} CPUs; weft api: {args.workers} worker process(es), "
        "uvicorn (uvloop, httptools), SQLite; forwarder and fake: 1 process each"
        + (f"; weft api settings: {' '.join(args.env)}" if args.env else "")
    )
    weft, bare = statistics.median(rates["weft"]), statistics.median(rates["bare"])
    print(
        f"throughput at {n} clients: weft {weft:7.1f} req/s | bare forwarder {bare:7.1f} req/s "
        f"| ratio {weft / bare:.2f}x  (rounds: weft {[round(r) for r in rates['weft']]}, "
        f"bare {[round(r) for r in rates['bare']]})"
    )
    print("API CPU per request (ms), 10 clients:")
    for route, ms in cpu.items():
        print(f"  {route:<26} {ms:6.2f}")
    p50d, p99d = statistics.median(direct), percentile(direct, 99)
    p50w, p99w = statistics.median(through), percentile(through, 99)
    print(
        f"open loop at {rate:.0f} req/s ({'fixed' if args.open_rate else 'half of saturation'}): direct p50 {p50d:.2f} p99 "
        f"{p99d:.2f} | weft p50 {p50w:.2f} p99 {p99w:.2f} | added p50 {p50w - p50d:.2f} "
        f"p99 {p99w - p99d:.2f} ms (n={len(through)})"
    )
    if own:
        mine = Counter({k[6:]: v for k, v in own.items() if k.startswith("ours: ")})
        within = Counter({k[8:]: v for k, v in own.items() if k.startswith("within: ")})
        leaves = Counter({k: v for k, v in own.items() if not k.startswith(("ours: ", "within: "))})
        total = sum(leaves.values())
        print(f"where the API's CPU goes under chat load (py-spy, {total} samples):")
        print("  by the function running (own time):")
        for area, count in leaves.most_common(12):
            print(f"    {count / total:6.1%}  {area}")
        print("  by the innermost function of ours on the stack:")
        for area, count in mine.most_common(12):
            print(f"    {count / total:6.1%}  {area}")
        print("  by function of ours, with all it calls (inclusive):")
        for area, count in within.most_common(25):
            print(f"    {count / total:6.1%}  {area}")


if __name__ == "__main__":
    asyncio.run(main())
