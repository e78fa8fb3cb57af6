"""Temporal server loss: the server (its history in a SQLite file this test owns)
is SIGKILLed while pipeline runs are in flight. While it is down the API answers
503 SERVICE_UNAVAILABLE, within a bound, to a start and to a status read;
started again on the same file, the worker reconnects and every run finishes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from api.app import create_app
from engine.db import migrate
from engine.platform import temporal
from engine.platform.ports import port_open
from engine.platform.settings import Settings
from tests.conftest import api_client, free_port, make_tenant
from tests.documents.test_durability import start_worker
from tests.faults.support import counting_receiver, start_runs

pytestmark = [pytest.mark.faults, pytest.mark.asyncio]

RUNS = 3
# How long the API may take to say the workflow service is down (the Temporal
# client's own retries of an unavailable server end well within it).
ANSWER_BOUND_SECONDS = 60


@contextmanager
def temporal_server() -> Iterator[list[subprocess.Popen[bytes]]]:
    """The dev server on ``settings``' port and db file; the list holds the live one."""
    servers: list[subprocess.Popen[bytes]] = []
    try:
        yield servers
    finally:
        for server in servers:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


def start_temporal(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [str(temporal.temporal_cli_path()), *temporal.dev_server_args(settings), "--headless"],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while not port_open("127.0.0.1", settings.temporal_dev_port):
        assert server.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    return server


async def test_temporal_killed_mid_run_api_says_503_and_runs_finish(tmp_path: Path) -> None:
    async with counting_receiver() as receiver:
        receiver.held = True
        port = free_port()
        settings = Settings(
            database_url=f"sqlite:///{tmp_path / 'weft.db'}",
            data_dir=tmp_path / "data",
            temporal_address=f"127.0.0.1:{port}",
            temporal_dev_port=port,
            temporal_ui_port=free_port(),
            task_queue_prefix=f"f{uuid.uuid4().hex[:8]}-",
            rate_limits_enabled=False,
            tenant_egress_allowed_hosts=[f"127.0.0.1:{receiver.port}"],
        )
        settings.data_dir.mkdir(parents=True)
        await asyncio.to_thread(migrate.upgrade, settings)
        tenant = await make_tenant(settings, "temporal-loss")
        headers = {"X-API-Key": tenant.key}
        temporal_log, worker_log = tmp_path / "temporal.log", tmp_path / "worker.log"
        steps = [
            {"id": "call", "type": "api_call",
             "config": {"url": f"{receiver.url}/call", "method": "POST", "body": {"n": "{{n}}"}}},
            {"id": "mail", "type": "email", "dependencies": ["call"],
             "config": {"to": "ops@example.com", "subject": "run {{n}}"}},
        ]  # fmt: skip
        with temporal_server() as servers:
            servers.append(start_temporal(settings, temporal_log))
            env = {"WEFT_TENANT_EGRESS_ALLOWED_HOSTS": f"127.0.0.1:{receiver.port}"}
            worker = start_worker(settings, worker_log, extra_env=env)
            try:
                async with api_client(create_app(settings)) as http:
                    execute, executions = await start_runs(http, headers, "t-loss", steps, RUNS)
                    await receiver.until(lambda r: r.calls_arrived >= RUNS)

                    os.killpg(servers[0].pid, signal.SIGKILL)  # only the Temporal server
                    servers[0].wait()

                    async with asyncio.timeout(ANSWER_BOUND_SECONDS):
                        refused = await http.post(
                            execute, json={"input_data": {"n": 99}}, headers=headers
                        )
                    assert refused.status_code == 503, refused.text
                    assert refused.json()["error"]["code"] == "SERVICE_UNAVAILABLE", refused.text
                    async with asyncio.timeout(ANSWER_BOUND_SECONDS):
                        status = await http.get(f"/api/executions/{executions[0]}", headers=headers)
                    assert status.status_code == 503, status.text
                    async with asyncio.timeout(ANSWER_BOUND_SECONDS):
                        canonical = await http.get(
                            f"/api/v1/executions/{executions[0]}", headers=headers
                        )
                    assert canonical.status_code == 503, canonical.text
                    assert canonical.json()["error"]["code"] == "SERVICE_UNAVAILABLE"

                    receiver.release.set()
                    servers.append(start_temporal(settings, temporal_log))  # same db file
                    finished = {}
                    async with asyncio.timeout(180):
                        while len(finished) < RUNS:
                            for execution_id in executions:
                                body = await http.get(
                                    f"/api/executions/{execution_id}", headers=headers
                                )
                                if body.status_code == 200 and body.json()["status"] in (
                                    "completed", "failed", "cancelled", "timed_out",
                                ):  # fmt: skip
                                    finished[execution_id] = body.json()["status"]
                            await asyncio.sleep(0.5)
                    again = await http.post(execute, json={"input_data": {"n": 7}}, headers=headers)
                    assert again.status_code == 202, again.text
            finally:
                worker.kill()
                worker.wait()
    assert set(finished.values()) == {"completed"}, f"{finished}\n{worker_log.read_text()[-3000:]}"
    # Each execution's call under its own key; one cut off by the outage may be
    # delivered again, with the same key.
    assert set(receiver.call_keys) == {f"{e}:call" for e in executions}, receiver.call_keys


async def test_an_api_that_never_reached_temporal_answers_503_and_keeps_the_upload(
    settings: Settings,
) -> None:
    """The API starts without Temporal (its client connects on first use): a
    start is 503 SERVICE_UNAVAILABLE, not a 500, and the uploaded file is kept
    for a retry with the same Idempotency-Key."""
    away = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    tenant = await make_tenant(away, "no-temporal")
    headers = {"X-API-Key": tenant.key, "Idempotency-Key": "upload-1"}
    files = {"file": ("notes.txt", b"Copper kettles sell well in winter.", "text/plain")}
    async with api_client(create_app(away)) as http:
        answer = await http.post("/api/v1/mcp/upload", headers=headers, files=files)
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
        listed = (await http.get("/api/v1/mcp/files", headers=headers)).json()["data"]["files"]
        kept = [(item["filename"], item["status"]) for item in listed]
        assert kept == [("notes.txt", "uploaded")]
