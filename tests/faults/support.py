"""What the fault tests share: `weft dev` in a process group of its own (so the
whole tree can be SIGKILLed like a power cut), and a loopback receiver that
counts every webhook-id and Idempotency-Key it is sent."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine.platform.queues import ALL_QUEUES
from tests.conftest import free_port
from tests.fake_providers import serve_app

START_SECONDS = 120


def dev_environment(**extra: str) -> dict[str, str]:
    """The test process's environment without Weft settings, on free ports."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("WEFT_") and k not in ("DATABASE_URL", "TEMPORAL_ADDRESS", "REDIS_URL")
    }
    env.update(
        WEFT_API_PORT=str(free_port()),
        WEFT_TEMPORAL_DEV_PORT=str(free_port()),
        WEFT_TEMPORAL_UI_PORT=str(free_port()),
        WEFT_RATE_LIMITS_ENABLED="false",
    )
    env.update(extra)
    return env


@dataclass
class Dev:
    """One `weft dev` process tree, leader of its own process group."""

    process: subprocess.Popen[bytes]
    log: Path
    api: str

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def power_cut(self) -> None:
        """SIGKILL every process of the tree at once: nothing gets to clean up."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        # The children share the group; wait until none is left.
        deadline = time.monotonic() + 30
        while group_alive(self.process.pid) and time.monotonic() < deadline:
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=20)
        self.power_cut()


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Zombies of the group still answer signal 0; look at their state.
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def start_dev(cwd: Path, env: dict[str, str], name: str) -> Dev:
    log = cwd / f"{name}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "dev"],
        cwd=cwd,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: killpg reaches the whole tree
    )
    return Dev(process, log, f"http://127.0.0.1:{env['WEFT_API_PORT']}")


async def wait_healthy(dev: Dev) -> None:
    deadline = time.monotonic() + START_SECONDS
    last: dict[str, Any] = {}
    async with httpx.AsyncClient(timeout=5) as http:
        while time.monotonic() < deadline:
            assert dev.process.poll() is None, dev.output()
            try:
                last = (await http.get(f"{dev.api}/health")).json()
            except (httpx.HTTPError, ValueError):
                await asyncio.sleep(0.5)
                continue
            queues = last.get("components", {}).get("task_queues", {})
            if last.get("status") == "healthy" and all(
                queues.get(q.value, {}).get("pollers", 0) >= 1 for q in ALL_QUEUES
            ):
                return
            await asyncio.sleep(0.5)
    raise AssertionError(f"weft dev never became healthy: {last}\n{dev.output()}")


def first_admin(data_dir: Path) -> tuple[str, str, str]:
    """(e-mail, password, API key) that `weft dev` wrote on its first start."""
    text = (data_dir / "first-admin.txt").read_text()
    email = re.search(r"e-mail\s+(\S+)", text)
    password = re.search(r"password\s+(\S+)", text)
    key = re.search(r"API key\s+(znt_\S+)", text)
    assert email and password and key, text
    return email.group(1), password.group(1), key.group(1)


@dataclass
class Counting:
    """Counts every delivery by webhook-id (webhooks) and Idempotency-Key (api_call)."""

    url: str = ""
    webhook_ids: Counter[str] = field(default_factory=Counter)
    webhook_arrivals: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    call_keys: Counter[str] = field(default_factory=Counter)
    calls_arrived: int = 0
    # While held (until ``release`` is set), api_call requests hang: they are in
    # flight when the power goes.
    held: bool = False
    release: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def until(self, predicate: Callable[[Counting], bool], seconds: float = 120) -> None:
        """Wait (at most ``seconds``) until ``predicate`` holds after some arrival."""
        async with asyncio.timeout(seconds):
            while not predicate(self):
                self.arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.arrived.wait(), 0.5)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


@contextlib.asynccontextmanager
async def counting_receiver() -> AsyncIterator[Counting]:
    found = Counting()

    async def hook(request: Request) -> Response:
        body = await request.json()
        webhook_id = request.headers.get("webhook-id", "")
        found.webhook_ids[webhook_id] += 1
        found.webhook_arrivals.append((webhook_id, body))
        found.arrived.set()
        return Response(status_code=200)

    async def call(request: Request) -> Response:
        body = await request.json()
        key = request.headers.get("idempotency-key", "")
        found.call_keys[key] += 1
        found.calls_arrived += 1
        found.arrived.set()
        if found.held:
            await found.release.wait()
        return JSONResponse({"received": body, "key": key})

    routes = [Route("/hook", hook, methods=["POST"]), Route("/call", call, methods=["POST"])]
    async with serve_app(Starlette(routes=routes)) as url:
        found.url = url
        yield found


async def start_runs(
    http: httpx.AsyncClient,
    headers: dict[str, str],
    name: str,
    steps: list[dict[str, Any]],
    count: int,
) -> tuple[str, list[str]]:
    """Create the workflow ``name`` of ``steps`` and start ``count`` runs of it
    (input ``{"n": n}``): its execute path, and the runs' execution ids."""
    body = {"name": name, "steps": steps}
    created = await http.post("/api/workflows", json=body, headers=headers)
    assert created.status_code == 201, created.text
    execute = f"/api/workflows/{created.json()['id']}/execute"
    runs = []
    for n in range(count):
        started = await http.post(execute, json={"input_data": {"n": n}}, headers=headers)
        assert started.status_code == 202, started.text
        runs.append(str(started.json()["execution_id"]))
    return execute, runs
