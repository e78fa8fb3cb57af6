"""Soak: minutes of mixed open-loop load on a real stack; prints memory, descriptor
and connection figures, and exits 1 on any error (no timing thresholds).

    .venv/bin/python bench/soak.py [--minutes 10] [--rate 3] [--database postgresql|sqlite]

Processes on loopback, as bench/documents.py starts them: a Temporal dev server
(SQLite history, WAL), `weft worker --queues all`, `weft api`, on PostgreSQL
(a fresh database, dropped at the end) or SQLite; in this process, the fake
Ollama of tests/fake_providers.py and a receiver for `api_call` steps and
webhooks. Arrivals are a seeded Poisson process at `--rate` per second, each
one of: a document upload (a small generated PDF or text file, processed by
DocumentProcessingWorkflow), a RAG query, a chat (plain or streamed), or a
pipeline run (`ai_prompt` -> `api_call` -> `transform`). Every upload and run is
followed until it ends; a webhook subscribed to file.processed and
workflow.completed must receive every event.

Every `--sample-seconds` it reads the API's and the worker's RSS, open
descriptors and database connections from /proc. After `--warmup-minutes` it
reports their least-squares slopes; after the drain, the settled descriptor
count. An error is any answer other than the one expected, a failed upload or
run, a run or webhook delivery that never arrives, or a failure the API or the
worker logs (an activity attempt that failed counts, though a retry recovered).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.documents import WORDS, Stack, make_key, make_pdf, sentence  # noqa: E402
from bench.proc_stats import cpu_seconds, sample  # noqa: E402
from bench.soak_report import (  # noqa: E402
    WATCHED,
    Sample,
    SoakOptions,
    SoakReport,
    format_report,
    log_problems,
)
from engine.db import migrate  # noqa: E402
from engine.platform.settings import Settings  # noqa: E402
from tests.conftest import scratch_postgres_database  # noqa: E402
from tests.fake_providers import FakeProvider, serve, serve_app  # noqa: E402

POSTGRES_ADMIN_URL = os.environ.get("WEFT_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")
# Arrival mix: relative weights of each kind of request.
MIX = {"chat": 30, "chat_stream": 10, "rag": 25, "run": 20, "upload": 15}
CHAT_MODEL = "llama-test"
HOOK_EVENTS = ["file.processed", "workflow.completed"]
FINISHED = ("completed", "failed", "cancelled", "timed_out")


class SoakStack(Stack):
    """bench/documents.py's stack, on the given database, with a model provider,
    a metrics token and a loopback host tenants' steps and webhooks may reach."""

    def __init__(
        self, workdir: Path, database_url: str | None, provider: str, receiver: str
    ) -> None:
        super().__init__(workdir)
        for name in ("DATABASE_URL", "REDIS_URL"):
            self.env.pop(name, None)
        self.database_url = database_url or f"sqlite:///{self.data / 'weft.db'}"
        self.metrics_token = secrets.token_urlsafe(24)
        providers = {"fake": {"kind": "ollama", "base_url": provider, "models": [CHAT_MODEL]}}
        self.env.update(
            DATABASE_URL=self.database_url,
            WEFT_PROVIDERS=json.dumps(providers),
            WEFT_DEFAULT_CHAT_MODEL=CHAT_MODEL,
            WEFT_TENANT_EGRESS_ALLOWED_HOSTS=receiver.removeprefix("http://"),
            WEFT_METRICS_TOKEN=self.metrics_token,
        )

    def settings(self) -> Settings:
        return Settings(
            database_url=self.database_url,
            data_dir=self.data,
            temporal_address=self.env["TEMPORAL_ADDRESS"],
        )

    def look(self, at: float) -> Sample:
        url = make_url(self.database_url)
        postgres = url.get_backend_name() == "postgresql"
        found = {
            name: sample(
                self.procs[name].pid,
                postgres_port=(url.port or 5432) if postgres else None,
                sqlite_path=None if postgres else Path(str(url.database)).resolve(),
            )
            for name in WATCHED
        }
        return Sample(at, found)


@dataclass
class Receiver:
    """The loopback end of `api_call` steps and webhooks."""

    url: str = ""
    calls: int = 0
    hook_ids: Counter[str] = field(default_factory=Counter)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)


@contextlib.asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()

    async def call(request: Request) -> Response:
        found.calls += 1
        return JSONResponse({"received": await request.json()})

    async def hook(request: Request) -> Response:
        await request.body()
        found.hook_ids[request.headers.get("webhook-id", "")] += 1
        found.arrived.set()
        return Response(status_code=204)

    routes = [Route("/call", call, methods=["POST"]), Route("/hook", hook, methods=["POST"])]
    async with serve_app(Starlette(routes=routes)) as url:
        found.url = url
        yield found


def pipeline(call_url: str) -> dict[str, Any]:
    return {
        "name": "soak",
        "steps": [
            {"id": "ask", "type": "ai_prompt", "config": {"prompt": "Summarise {{topic}}"}},
            {"id": "post", "type": "api_call", "dependencies": ["ask"],
             "config": {"url": call_url, "method": "POST",
                        "body": {"n": "{{n}}", "answer": "{{steps.ask.output}}"}}},
            {"id": "shape", "type": "transform", "dependencies": ["post"],
             "config": {"output": {"topic": "{{topic}}", "answer": "{{steps.ask.output}}"}}},
        ],
    }  # fmt: skip


class Load:
    """Sends the mix, follows uploads and runs to their end, and counts everything."""

    def __init__(self, http: httpx.AsyncClient, report: SoakReport, seed: int) -> None:
        self.http = http
        self.report = report
        self.rng = random.Random(seed)
        self.pending: dict[str, str] = {}  # id of an upload or run -> its kind
        self.in_flight = 0
        self.workflow_id = ""
        self.changed = asyncio.Event()  # set whenever an upload or run ends

    def error(self, kind: str, what: str) -> None:
        self.report.errors.append(f"{kind}: {what}"[:400])

    async def send(
        self, kind: str, method: str, url: str, expect: int, **kwargs: Any
    ) -> dict[str, Any] | None:
        """One request; its JSON answer, or None (and an error) if it is not ``expect``."""
        self.in_flight += 1
        self.report.max_in_flight = max(self.report.max_in_flight, self.in_flight)
        started = time.perf_counter()
        try:
            response = await self.http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            self.error(kind, f"{type(exc).__name__} {exc}")
            return None
        finally:
            self.in_flight -= 1
        self.report.requests[kind] += 1
        self.report.latency_ms[kind].append((time.perf_counter() - started) * 1000)
        if response.status_code != expect:
            self.error(kind, f"{method} {url} answered {response.status_code}: {response.text}")
            return None
        body: dict[str, Any] = response.json()
        return body

    async def prepare(self, call_url: str, hook_url: str) -> None:
        made = await self.send("setup", "POST", "/api/workflows", 201, json=pipeline(call_url))
        hook = {"url": hook_url, "events": HOOK_EVENTS}
        await self.send("setup", "POST", "/api/v1/webhooks", 201, json=hook)
        if made is None:
            raise RuntimeError(f"setup failed: {self.report.errors}")
        self.workflow_id = str(made["id"])

    async def one(self, kind: str, n: int) -> None:
        if kind == "upload":
            await self.upload(n)
        elif kind == "rag":
            query = " ".join(self.rng.choice(WORDS) for _ in range(4))
            await self.send("rag", "POST", "/api/v1/ai/rag/query", 200,
                            json={"query": query, "top_k": 5})  # fmt: skip
        elif kind == "chat":
            await self.send("chat", "POST", "/api/v1/ai/chat", 200, json=self.chat_body(n))
        elif kind == "chat_stream":
            await self.chat_stream(n)
        else:
            body = {"input_data": {"topic": sentence(self.rng), "n": n}}
            url = f"/api/v1/workflows/{self.workflow_id}/execute"
            started = await self.send("run", "POST", url, 202, json=body)
            if started is not None:
                self.follow(str(started["data"]["execution_id"]), "run")

    def chat_body(self, n: int) -> dict[str, Any]:
        # A different question each time: the response cache must not answer them.
        return {"messages": [{"role": "user", "content": f"Question {n}: {sentence(self.rng)}"}]}

    async def upload(self, n: int) -> None:
        if n % 2:
            name, data, mime = f"soak-{n}.pdf", make_pdf(self.rng, 1), "application/pdf"
        else:
            text = "\n\n".join(sentence(self.rng) for _ in range(30)) + f"\n\nSoak {n}."
            name, data, mime = f"soak-{n}.txt", text.encode(), "text/plain"
        made = await self.send("upload", "POST", "/api/v1/mcp/upload", 201,
                               files={"file": (name, data, mime)})  # fmt: skip
        if made is not None:
            self.follow(str(made["data"]["file_id"]), "upload")

    async def chat_stream(self, n: int) -> None:
        body = {**self.chat_body(n), "stream": True}
        started = time.perf_counter()
        self.in_flight += 1
        try:
            async with self.http.stream("POST", "/api/v1/ai/chat", json=body) as response:
                events = [
                    json.loads(line[5:])
                    async for line in response.aiter_lines()
                    if line.startswith("data:")
                ]
        except httpx.HTTPError as exc:
            self.error("chat_stream", f"{type(exc).__name__} {exc}")
            return
        finally:
            self.in_flight -= 1
        self.report.requests["chat_stream"] += 1
        self.report.latency_ms["chat_stream"].append((time.perf_counter() - started) * 1000)
        if response.status_code != 200 or not events or not events[-1].get("done"):
            self.error("chat_stream", f"answered {response.status_code}: {events[-1:]}")
        elif any("error" in e for e in events):
            self.error("chat_stream", f"stream error: {events[-1]}")

    def follow(self, item_id: str, kind: str) -> None:
        self.report.started[kind] += 1
        self.pending[item_id] = kind

    async def check(self, item_id: str) -> None:
        kind = self.pending[item_id]
        if await self._ended(item_id, kind):
            del self.pending[item_id]
            self.changed.set()

    async def _ended(self, item_id: str, kind: str) -> bool:
        """Whether the upload or run has ended (its outcome counted if so)."""
        path = (
            f"/api/v1/mcp/files/{item_id}" if kind == "upload" else f"/api/v1/executions/{item_id}"
        )
        answer = await self.send("status", "GET", path, 200)
        if answer is None:
            return False
        data = answer["data"]
        if kind == "upload":
            if data["status"] not in ("processed", "failed"):
                return False
            if data["status"] == "failed":
                self.error("upload", f"{item_id} failed: {data['error']}")
                return True
            uploaded = datetime.fromisoformat(data["uploaded_at"])
            took = datetime.fromisoformat(data["processed_at"]) - uploaded
            self.report.finish_s["upload"].append(took.total_seconds())
        else:
            if data["status"] not in FINISHED:
                return False
            if data["status"] != "completed":
                self.error(
                    "run", f"{item_id} {data['status']}: {data['error_code']} {data['error']}"
                )
                return True
            self.report.finish_s["run"].append((data["duration_ms"] or 0) / 1000)
        self.report.succeeded[kind] += 1
        return True

    async def watch(self, stop: asyncio.Event) -> None:
        """Look at every unfinished upload and run each ``poll_seconds``, until told to stop."""
        while not stop.is_set():
            for item_id in list(self.pending):
                await self.check(item_id)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.report.options.poll_seconds)

    async def drive(self, seconds: float) -> None:
        """Open loop: requests start on the arrival schedule, whether or not the
        ones before them have been answered."""
        kinds, weights = list(MIX), list(MIX.values())
        tasks: set[asyncio.Task[None]] = set()
        began = time.monotonic()
        due, n = 0.0, 0
        while (due := due + self.rng.expovariate(self.report.options.rate)) < seconds:
            await asyncio.sleep(max(0.0, began + due - time.monotonic()))
            task = asyncio.create_task(self.one(self.rng.choices(kinds, weights)[0], n))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
        await asyncio.gather(*tasks)


async def until(done: Callable[[], bool], changed: asyncio.Event, deadline: float) -> None:
    """Wait until ``done()`` holds (looked at whenever ``changed`` is set) or the deadline."""
    while not done() and (left := deadline - time.monotonic()) > 0:
        changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), left)


async def sampler(stack: SoakStack, report: SoakReport, began: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        report.samples.append(stack.look(time.monotonic() - began))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), report.options.sample_seconds)


async def server_5xx(http: httpx.AsyncClient, token: str) -> int:
    """5xx answers the API counted itself (its Prometheus counter)."""
    text = (await http.get("/metrics", headers={"Authorization": f"Bearer {token}"})).text
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in text.splitlines()
        if line.startswith("weft_http_requests_total{") and 'status="5' in line
    )


async def run_load(stack: SoakStack, key: str, options: SoakOptions, report: SoakReport,
                   hooks: Receiver) -> None:  # fmt: skip
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=10)
    async with httpx.AsyncClient(base_url=stack.api, headers={"X-API-Key": key}, timeout=120,
                                 limits=limits) as http:  # fmt: skip
        load = Load(http, report, options.seed)
        await load.prepare(f"{hooks.url}/call", f"{hooks.url}/hook")
        # One of each kind first: models load and caches fill before the clock starts.
        for n, kind in enumerate(MIX):
            await load.one(kind, -1 - n)
        report.latency_ms.clear()
        stop_watch, stop_sampling = asyncio.Event(), asyncio.Event()
        began = time.monotonic()
        watcher = asyncio.create_task(load.watch(stop_watch))
        sampling = asyncio.create_task(sampler(stack, report, began, stop_sampling))
        cpu_before = {name: cpu_seconds(p.pid) for name, p in stack.procs.items()}
        await load.drive(options.seconds)
        report.load_seconds = time.monotonic() - began
        stop_sampling.set()
        await sampling
        deadline = time.monotonic() + options.drain_seconds
        await until(lambda: not load.pending, load.changed, deadline)
        stop_watch.set()
        await watcher
        report.unfinished = len(load.pending)
        report.hooks_expected = 2 * report.succeeded["upload"] + report.succeeded["run"]
        expected = report.hooks_expected
        await until(lambda: len(hooks.hook_ids) >= expected, hooks.arrived, deadline)
        report.hooks_received = len(hooks.hook_ids)
        report.hooks_repeated = sum(1 for count in hooks.hook_ids.values() if count > 1)
        report.cpu_s = {n: cpu_seconds(p.pid) - cpu_before[n] for n, p in stack.procs.items()}
        report.server_5xx = await server_5xx(http, stack.metrics_token)
    # Idle keep-alive connections close on both sides before the settled look.
    await asyncio.sleep(6)
    report.settled = stack.look(time.monotonic() - began)
    if report.unfinished:
        report.errors.append(f"{report.unfinished} uploads or runs never finished")
    if report.hooks_received < report.hooks_expected:
        missing = report.hooks_expected - report.hooks_received
        report.errors.append(f"{missing} webhook deliveries never arrived")
    if report.server_5xx:
        report.errors.append(f"the API counted {report.server_5xx} 5xx answers")


async def soak(options: SoakOptions, workdir: Path) -> SoakReport:
    """Start the stack in ``workdir``, run the load, stop the stack; the figures."""
    database = "PostgreSQL" if (options.database_url or "").startswith("postgres") else "SQLite"
    report = SoakReport(options, database)
    async with serve(FakeProvider("ollama", lists_trouble=False)) as fake, receiver() as hooks:
        stack = SoakStack(workdir, options.database_url, fake.url, hooks.url)
        settings = stack.settings()
        await asyncio.to_thread(migrate.upgrade, settings)
        _, key = await make_key(settings, "soak")
        try:
            # Blocking waits: in a thread, so this loop keeps serving the fakes.
            await asyncio.to_thread(stack.start)
            log = workdir / "stack.log"
            offset = log.stat().st_size
            await run_load(stack, key, options, report, hooks)
            # Failures the engine recovered from (a retried activity) still count.
            ours, temporal = log_problems(log, offset)
            report.errors += [f"log: {line}" for line in ours]
            report.temporal_log_errors = temporal
        finally:
            await asyncio.to_thread(stack.stop)
    return report


def postgres_database() -> contextlib.AbstractContextManager[str]:
    """A fresh PostgreSQL database for one soak, dropped afterwards; its URL."""
    return scratch_postgres_database(POSTGRES_ADMIN_URL, "weft_soak")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=float, default=3.0, help="arrivals per second")
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--sample-seconds", type=float, default=5.0)
    parser.add_argument("--warmup-minutes", type=float, default=1.0)
    parser.add_argument("--keep", action="store_true", help="keep the work directory and its log")
    args = parser.parse_args()
    with contextlib.ExitStack() as scope:
        url = scope.enter_context(postgres_database()) if args.database == "postgresql" else None
        if args.keep:
            workdir = Path(tempfile.mkdtemp(prefix="weft-soak-"))
            print(f"work directory (kept): {workdir}", flush=True)
        else:
            workdir = Path(scope.enter_context(tempfile.TemporaryDirectory(prefix="weft-soak-")))
        options = SoakOptions(seconds=args.minutes * 60, rate=args.rate, database_url=url,
                              sample_seconds=args.sample_seconds,
                              warmup_seconds=args.warmup_minutes * 60)  # fmt: skip
        report = asyncio.run(soak(options, workdir))
        print(format_report(report))
        if report.errors or not report.all_finished:
            log = (workdir / "stack.log").read_text(errors="replace")
            print("--- stack.log (last 40 lines) ---\n" + "\n".join(log.splitlines()[-40:]))
    sys.exit(1 if report.errors or not report.all_finished else 0)


if __name__ == "__main__":
    main()
