"""Database and Redis outages, on servers the tests own.

Redis (a ``redis-server`` of the test's, without persistence) is SIGKILLed
while reads, chats and sign-ins keep arriving, then started again: nothing
answers 500; while it is down the rate limits count in-process (``memory``) or
every limited route answers 503 ``SERVICE_UNAVAILABLE`` (``fail_closed``), as
``WEFT_RATE_LIMIT_REDIS_FAILURE`` says; once it is back the same API process
counts in it, caches in it and listens on it again.

PostgreSQL (``initdb`` and ``pg_ctl`` into a temporary directory) is stopped
hard while documents are processed and pipeline runs are in flight, kept down
past a step's own retry budget, then started again: meanwhile the API answers
503 ``SERVICE_UNAVAILABLE`` (never 500, never a hang); afterwards it answers
again without a restart, every run finishes, and nothing was written twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import psycopg
import pytest
from redis.asyncio import Redis
from sqlalchemy import select
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from engine.db import migrate
from engine.db.connection import create_engine, create_sessionmaker
from engine.db.tables import Chunk, ChunkVector, EmailMessage, Event, UsageRecord
from engine.events.catalog import stream_channel
from engine.platform.ports import port_open
from engine.platform.settings import DEFAULT_RATE_LIMITS, Settings
from tests.conftest import TenantFixture, api_client, free_port, make_tenant
from tests.documents.test_durability import start_worker
from tests.fake_providers import FakeProvider
from tests.faults.support import counting_receiver, start_runs

pytestmark = [pytest.mark.faults, pytest.mark.asyncio]

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
# How long one answer may take while a dependency is down: a bound on hanging,
# not a speed requirement.
ANSWER_BOUND_SECONDS = 30
FINISHED = ("completed", "failed", "cancelled", "timed_out")


# --- a Redis of the test's own ------------------------------------------------


@dataclass
class OwnRedis:
    """A ``redis-server`` on a free loopback port, no RDB and no AOF."""

    root: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.root), "--daemonize", "no"],
            stdout=(self.root / "redis.log").open("ab"),
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while not port_open("127.0.0.1", self.port):
            assert self.process.poll() is None, (self.root / "redis.log").read_text()
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown, every client connection dropped at once."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()


@contextlib.contextmanager
def own_redis(root: Path) -> Iterator[OwnRedis]:
    if not Path(REDIS_SERVER).exists():
        pytest.skip(f"Redis outage skipped: no redis-server at {REDIS_SERVER}")
    server = OwnRedis(root)
    server.start()
    try:
        yield server
    finally:
        server.kill()


# --- a PostgreSQL of the test's own ---------------------------------------------

PG_OS_USER = "postgres"  # PostgreSQL refuses to run as root


def as_pg_user(args: list[str]) -> list[str]:
    return ["runuser", "-u", PG_OS_USER, "--", *args] if os.geteuid() == 0 else args


@dataclass
class OwnPostgres:
    """A cluster made by ``initdb`` in a temporary directory, run by ``pg_ctl``."""

    root: Path
    port: int = field(default_factory=free_port)

    def url(self, database: str = "weft") -> str:
        return f"postgresql://weft@127.0.0.1:{self.port}/{database}"

    def _ctl(self, *args: str) -> None:
        done = subprocess.run(
            as_pg_user(["pg_ctl", "-D", str(self.root / "data"), *args]),
            capture_output=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr + self.log().encode()

    def log(self) -> str:
        path = self.root / "postgres.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
            " -c fsync=off -c full_page_writes=off"
        )
        self._ctl("-o", options, "-l", str(self.root / "postgres.log"), "-w", "start")

    def stop(self, mode: Literal["fast", "immediate"]) -> None:
        """``immediate`` is a crash: sessions die mid-query, recovery runs on start."""
        self._ctl("-m", mode, "-w", "stop")


@contextlib.contextmanager
def own_postgres() -> Iterator[OwnPostgres]:
    if not (shutil.which("initdb") and shutil.which("pg_ctl")):
        pytest.skip("PostgreSQL restart skipped: initdb and pg_ctl are not on PATH")
    root = Path(tempfile.mkdtemp(prefix="weft-pg-"))  # not under root's 0700 tmp_path
    server = OwnPostgres(root)
    try:
        if os.geteuid() == 0:
            shutil.chown(root, PG_OS_USER)
        made = subprocess.run(
            as_pg_user(["initdb", "-D", str(root / "data"), "-A", "trust", "-U", "weft",
                        "-E", "UTF8", "--no-sync"]),
            capture_output=True,
            timeout=120,
        )  # fmt: skip
        assert made.returncode == 0, made.stdout + made.stderr
        server.start()
        with psycopg.connect(server.url("postgres"), autocommit=True) as admin:
            admin.execute("CREATE DATABASE weft")
        yield server
    finally:
        subprocess.run(
            as_pg_user(["pg_ctl", "-D", str(root / "data"), "-m", "immediate", "stop"]),
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(root, ignore_errors=True)


# --- Redis killed mid-load -------------------------------------------------------

LOGIN_LIMIT = 3
# Windows a day long: every count of the test falls in one (see clear_of_window_edge).
WINDOW = 86_400
LOAD_PER_PHASE = 6  # answers of each kind seen in each phase before moving on


@dataclass(frozen=True)
class Answer:
    kind: str
    started: str  # the phase when the request was sent
    ended: str  # ... and when its answer came
    status: int
    code: str | None
    redis: str | None  # /health's view of Redis


@dataclass
class Load:
    """Reads, chats and health probes, sent until stopped, each answer noted."""

    http: httpx.AsyncClient
    headers: dict[str, str]
    phase: str = "up"
    answers: list[Answer] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    answered: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, kind: str) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            started = self.phase
            async with asyncio.timeout(ANSWER_BOUND_SECONDS):
                if kind == "read":
                    answer = await self.http.get("/api/v1/users/me", headers=self.headers)
                elif kind == "chat":  # temperature 0: answers are cached (in Redis)
                    asked = [{"role": "user", "content": f"question {n % 4}"}]
                    body = {"model": "llama-test", "temperature": 0, "messages": asked}
                    answer = await self.http.post(
                        "/api/v1/ai/chat", json=body, headers=self.headers
                    )
                else:
                    answer = await self.http.get("/health")
            payload = answer.json()
            error = payload.get("error") if isinstance(payload, dict) else None
            redis = payload.get("services", {}).get("redis") if kind == "health" else None
            self.answers.append(
                Answer(kind, started, self.phase, answer.status_code,
                       error.get("code") if isinstance(error, dict) else None, redis)
            )  # fmt: skip
            self.answered.set()
            await asyncio.sleep(0.02)  # pacing: five people share two cores

    def count(self, phase: str, kind: str) -> int:
        return sum(1 for a in self.answers if a.kind == kind and a.started == a.ended == phase)

    async def until(self, predicate: Callable[[list[Answer]], bool]) -> None:
        """Wait (a bounded time) until ``predicate`` holds for the answers so far."""
        async with asyncio.timeout(120):
            while not predicate(self.answers):
                self.answered.clear()
                await self.answered.wait()

    async def until_each_kind_seen(self, phase: str) -> None:
        kinds = ("read", "chat", "health")
        await self.until(lambda _: all(self.count(phase, k) >= LOAD_PER_PHASE for k in kinds))


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 120) -> None:
    """Look at state outside this process (Redis, Temporal, a log) until ``check``
    holds, for at most ``seconds``."""
    async with asyncio.timeout(seconds):
        while True:
            if await check():
                return
            await asyncio.sleep(0.2)


async def clear_of_window_edge() -> None:
    left = WINDOW - time.time() % WINDOW
    if left < 180:
        await asyncio.sleep(left + 1)


async def logins(http: httpx.AsyncClient, tenant: TenantFixture, count: int) -> list[str]:
    """Status and code of ``count`` correct sign-ins, in order: ``200``, ``429 RATE_…``."""
    seen = []
    for _ in range(count):
        async with asyncio.timeout(ANSWER_BOUND_SECONDS):
            answer = await http.post(
                "/api/v1/auth/login", json={"email": tenant.email, "password": tenant.password}
            )
        error = answer.json().get("error") or {}
        seen.append(f"{answer.status_code} {error.get('code', '')}".strip())
    return seen


async def redis_keys(url: str, pattern: str) -> list[bytes]:
    redis = Redis.from_url(url)
    try:
        return [key async for key in redis.scan_iter(match=pattern)]
    finally:
        await redis.aclose()


async def used_again(url: str, channel: str) -> bool:
    """The API counts, caches and listens in this Redis (freshly started, empty)."""
    redis = Redis.from_url(url)
    try:
        counters = [key async for key in redis.scan_iter(match="weft:rl:*")]
        cached = [key async for key in redis.scan_iter(match="weft:cache:*")]
        subscribers = dict(await redis.pubsub_numsub(channel))
        return bool(counters and cached and subscribers.get(channel.encode(), 0) >= 1)
    finally:
        await redis.aclose()


@pytest.mark.parametrize("mode", ["memory", "fail_closed"])
async def test_redis_killed_mid_load_limits_fall_back_or_refuse_and_return(
    tmp_path: Path,
    temporal_address: str,
    fake_ollama: FakeProvider,
    mode: Literal["memory", "fail_closed"],
) -> None:
    await clear_of_window_edge()
    with own_redis(tmp_path) as redis_server:
        settings = Settings(
            database_url=f"sqlite:///{tmp_path / 'weft.db'}",
            data_dir=tmp_path / "data",
            temporal_address=temporal_address,
            task_queue_prefix=f"r{uuid.uuid4().hex[:8]}-",
            redis_url=redis_server.url,
            rate_limit_redis_failure=mode,
            rate_limit_window_seconds=WINDOW,
            rate_limits={**DEFAULT_RATE_LIMITS, "login": LOGIN_LIMIT, "default": 100_000,
                         "ai_chat": 100_000},
            providers={"ollama": {"kind": "ollama", "base_url": fake_ollama.url,
                                  "models": ["llama-test"]}},
            request_history_enabled=False,
        )  # fmt: skip
        settings.data_dir.mkdir(parents=True)
        await asyncio.to_thread(migrate.upgrade, settings)
        tenant = await make_tenant(settings, "redis-outage")
        refused = ["429 RATE_LIMIT_EXCEEDED"]
        allowed = ["200"] * LOGIN_LIMIT
        async with api_client(create_app(settings)) as http:
            load = Load(http, {"X-API-Key": tenant.key})
            loops = [asyncio.create_task(load.run(k)) for k in ("read", "chat", "health")]
            try:
                # Up: counted and cached in Redis.
                assert await logins(http, tenant, LOGIN_LIMIT + 1) == allowed + refused
                await load.until_each_kind_seen("up")
                assert await redis_keys(redis_server.url, "weft:rl:*")
                assert await redis_keys(redis_server.url, "weft:cache:*")

                redis_server.kill()  # mid-load
                load.phase = "down"
                during = await logins(http, tenant, LOGIN_LIMIT + 1)
                await load.until_each_kind_seen("down")

                redis_server.start()  # empty: no persistence
                load.phase = "returning"
                channel = stream_channel(settings.task_queue_prefix)
                await eventually(lambda: used_again(redis_server.url, channel), 60)
                # ... and admits requests through it (fail_closed refuses until then).
                seen = len(load.answers)
                await load.until(
                    lambda answers: any(
                        a.status == 200 and a.kind == "read" for a in answers[seen:]
                    )
                )
                load.phase = "back"
                # A fresh Redis bucket: the in-process one (used, in memory mode,
                # until it was exhausted) no longer decides.
                after = await logins(http, tenant, LOGIN_LIMIT + 1)
                await load.until_each_kind_seen("back")
            finally:
                load.stop.set()
                results = await asyncio.gather(*loops, return_exceptions=True)
    assert all(r is None for r in results), results

    assert not [a for a in load.answers if a.status >= 500 and a.status != 503], load.answers
    assert all(a.code == "SERVICE_UNAVAILABLE" for a in load.answers if a.status == 503)
    if mode == "memory":  # limits counted in this process, nothing refused for Redis
        assert during == allowed + refused
        assert all(a.status == 200 for a in load.answers), Counter(
            (a.kind, a.started, a.status) for a in load.answers
        )
    else:  # every limited route refused with a clear code; probes still pass
        assert during == ["503 SERVICE_UNAVAILABLE"] * (LOGIN_LIMIT + 1)
        down = [a for a in load.answers if a.started == a.ended == "down"]
        assert {(a.kind, a.status, a.code) for a in down} == {
            ("read", 503, "SERVICE_UNAVAILABLE"),
            ("chat", 503, "SERVICE_UNAVAILABLE"),
            ("health", 200, None),
        }
    assert after == allowed + refused
    steady = [a for a in load.answers if a.started == a.ended and a.started in ("up", "back")]
    assert all(a.status == 200 for a in steady), steady
    health = {
        (a.started, a.redis) for a in load.answers if a.kind == "health" and a.started == a.ended
    }
    assert {redis for phase, redis in health if phase in ("up", "back")} == {"healthy"}
    assert "healthy" not in {redis for phase, redis in health if phase == "down"}


# --- PostgreSQL restarted mid-run ------------------------------------------------

DOCUMENTS = 3
RUNS = 3
# How long the database stays down after a run's step first meets the outage:
# well past a step's own retry budget (three attempts, 1 s then 2 s apart).
OUTAGE_HOLD_SECONDS = 8
STEP_ACTIVITIES = ("call_model", "send_email")  # the steps after the api_call


async def api_answer(
    http: httpx.AsyncClient, method: str, path: str, **kwargs: Any
) -> httpx.Response:
    async with asyncio.timeout(ANSWER_BOUND_SECONDS):  # not a hang
        return await http.request(method, path, **kwargs)


async def met_the_outage(client: Client, workflow_ids: list[str], worker_log: Path) -> bool:
    """A run's step met the outage: the worker says a step's activity waits for
    the database, or Temporal shows a step's attempt failed on it."""
    said = await asyncio.to_thread(worker_log.read_text, errors="replace")
    if any(f"activity {name} waits for the database" in said for name in STEP_ACTIVITIES):
        return True
    for workflow_id in workflow_ids:
        described = await client.get_workflow_handle(workflow_id).describe()
        for pending in described.raw_description.pending_activities:
            if (
                pending.activity_type.name in STEP_ACTIVITIES
                and pending.attempt > 1
                and pending.HasField("last_failure")
            ):
                return True
    return False


async def wait_finished(
    http: httpx.AsyncClient, headers: dict[str, str], docs: list[str], runs: list[str]
) -> dict[str, str]:
    outcome: dict[str, str] = {}
    async with asyncio.timeout(300):
        while len(outcome) < len(docs) + len(runs):
            for execution_id in docs:
                body = (
                    await http.get(f"/api/v1/mcp/workflow/{execution_id}", headers=headers)
                ).json()
                if body["data"]["status"] != "running":
                    outcome[execution_id] = body["data"]["status"]
            for execution_id in runs:
                body = (await http.get(f"/api/executions/{execution_id}", headers=headers)).json()
                if body["status"] in FINISHED:
                    outcome[execution_id] = body["status"]
            await asyncio.sleep(0.5)
    return outcome


def assert_unavailable(answer: httpx.Response) -> None:
    assert answer.status_code == 503, answer.text
    error = answer.json()["error"]
    assert error["code"] == "SERVICE_UNAVAILABLE", answer.text
    assert error["request_id"] == answer.headers["x-request-id"]
    assert "Traceback" not in answer.text


async def test_postgres_restarted_mid_run_api_says_503_and_every_run_finishes_once(
    tmp_path: Path, temporal_env: WorkflowEnvironment, fake_ollama: FakeProvider
) -> None:
    temporal_address = str(temporal_env.client.service_client.config.target_host)
    providers = {
        "ollama": {"kind": "ollama", "base_url": fake_ollama.url, "models": ["llama-test"]}
    }
    async with counting_receiver() as receiver:
        receiver.held = True  # the runs wait on their api_call when the database goes
        egress = f"127.0.0.1:{receiver.port}"
        with own_postgres() as pg:
            settings = Settings(
                database_url=pg.url(),
                data_dir=tmp_path / "data",
                temporal_address=temporal_address,
                task_queue_prefix=f"p{uuid.uuid4().hex[:8]}-",
                rate_limits_enabled=False,
                tenant_egress_allowed_hosts=[egress],
                providers=providers,
            )
            settings.data_dir.mkdir(parents=True)
            await asyncio.to_thread(migrate.upgrade, settings)
            tenant = await make_tenant(settings, "pg-restart")
            headers = {"X-API-Key": tenant.key}
            worker_log = tmp_path / "worker.log"
            worker = start_worker(
                settings,
                worker_log,
                extra_env={
                    "WEFT_TENANT_EGRESS_ALLOWED_HOSTS": egress,
                    "WEFT_PROVIDERS": json.dumps(providers),
                },
            )
            try:
                async with api_client(create_app(settings)) as http:
                    steps = [
                        {"id": "call", "type": "api_call",
                         "config": {"url": f"{receiver.url}/call", "method": "POST",
                                    "body": {"n": "{{n}}"}}},
                        {"id": "ask", "type": "ai_prompt", "dependencies": ["call"],
                         "config": {"prompt": "Summarise run {{n}}", "model": "llama-test"}},
                        {"id": "mail", "type": "email", "dependencies": ["ask"],
                         "config": {"to": "ops@example.com", "subject": "run {{n}}"}},
                    ]  # fmt: skip
                    execute, runs = await start_runs(http, headers, "pg-restart", steps, RUNS)
                    docs = []
                    for i in range(DOCUMENTS):
                        text = " ".join(
                            f"Sentence {j} of document {i} on topic {j % 5}." for j in range(80)
                        )
                        uploaded = await http.post(
                            "/api/v1/mcp/upload",
                            files={"file": (f"doc{i}.txt", text.encode(), "text/plain")},
                            headers=headers,
                        )
                        assert uploaded.status_code == 201, uploaded.text
                        docs.append(uploaded.json()["data"]["execution_id"])
                    await receiver.until(lambda r: r.calls_arrived >= RUNS)

                    pg.stop("immediate")  # a crash: sessions cut mid-transaction

                    assert_unavailable(
                        await api_answer(http, "GET", "/api/v1/mcp/files", headers=headers)
                    )
                    assert_unavailable(
                        await api_answer(
                            http, "POST", execute, json={"input_data": {"n": 9}}, headers=headers
                        )
                    )
                    assert_unavailable(
                        await api_answer(
                            http, "GET", f"/api/v1/executions/{runs[0]}", headers=headers
                        )
                    )
                    ready = await api_answer(http, "GET", "/api/ready")
                    assert ready.status_code == 503, ready.text
                    partio = await api_answer(
                        http,
                        "POST",
                        f"/v1.0/endpoints/{tenant.endpoint_id}/process",
                        json={"Type": "Text", "Text": "A valid cell."},
                        headers={"Authorization": f"Bearer {tenant.key}"},
                    )
                    assert partio.status_code == 503 and partio.json()["StatusCode"] == 503, (
                        partio.text
                    )

                    # The api_calls answer now; the runs' next steps meet the outage.
                    receiver.release.set()
                    run_ids = [f"run-{r}" for r in runs]
                    await eventually(
                        lambda: met_the_outage(temporal_env.client, run_ids, worker_log)
                    )
                    await asyncio.sleep(OUTAGE_HOLD_SECONDS)  # the shape of the fault
                    pg.start()

                    listed = await api_answer(http, "GET", "/api/v1/mcp/files", headers=headers)
                    assert listed.status_code == 200, listed.text  # the same API process
                    outcome = await wait_finished(http, headers, docs, runs)
                    again = await http.post(execute, json={"input_data": {"n": 7}}, headers=headers)
                    assert again.status_code == 202, again.text
            finally:
                worker.kill()
                worker.wait()
            rows = await database_rows(settings)
    log = worker_log.read_text(errors="replace")[-4000:] + pg.log()
    assert set(outcome.values()) == {"completed"}, f"{outcome}\n{log}"
    # Chunks and vectors: one row per (file, index), one vector per chunk and model.
    assert rows["chunks"] and len(rows["chunks"]) == len(set(rows["chunks"])), log
    assert len({file_id for file_id, _ in rows["chunks"]}) == DOCUMENTS
    assert len(rows["vectors"]) == len(set(rows["vectors"])) == len(rows["chunks"])
    # One e-mail and one billed model call per run; one event per subject and type.
    assert sorted(rows["mails"]) == sorted(runs), rows["mails"]
    ledger = Counter(rows["ledger"])
    assert set(ledger) == {f"run-{r}" for r in runs} and set(ledger.values()) == {1}, ledger
    events = Counter(rows["events"])
    assert set(events.values()) == {1}, events
    assert {s for t, s in events if t == "workflow.completed"} >= set(runs), events
    assert len([s for t, s in events if t == "file.processed"]) == DOCUMENTS, events


async def database_rows(settings: Settings) -> dict[str, list[Any]]:
    """What the runs wrote: the rows that must not be doubled by a retry."""
    queries: dict[str, Any] = {
        "chunks": select(Chunk.file_id, Chunk.chunk_index),
        "vectors": select(ChunkVector.chunk_id, ChunkVector.model),
        "mails": select(EmailMessage.execution_id),
        "ledger": select(UsageRecord.workflow_id).where(UsageRecord.workflow_id.like("run-%")),
        "events": select(Event.type, Event.subject).where(
            Event.type.in_(("file.processed", "workflow.completed"))
        ),
    }
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            found = {name: (await session.execute(query)).all() for name, query in queries.items()}
    finally:
        await engine.dispose()
    return {
        name: [row[0] if len(row) == 1 else tuple(row) for row in rows]
        for name, rows in found.items()
    }
