"""`weft dev` end to end: a real process tree, started and stopped as a user would."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from engine.platform.queues import ALL_QUEUES
from engine.platform.temporal import temporal_cli_path
from tests.conftest import free_port

START_SECONDS = 120


@dataclass
class DevRun:
    process: subprocess.Popen[str]
    log: Path
    api: str
    ui_port: int
    temporal_port: int

    def output(self) -> str:
        return self.log.read_text()


def children_of(pid: int) -> list[int]:
    """Every descendant of ``pid``, read from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        current = frontier.pop()
        kids = [child for child, parent in parents.items() if parent == current]
        found += kids
        frontier += kids
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def dev_env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("WEFT_") and k not in ("DATABASE_URL", "TEMPORAL_ADDRESS")
    }
    env.update(
        WEFT_API_PORT=str(free_port()),
        WEFT_TEMPORAL_DEV_PORT=str(free_port()),
        WEFT_TEMPORAL_UI_PORT=str(free_port()),
    )
    return env


def start_dev(cwd: Path, env: dict[str, str], name: str) -> DevRun:
    log = cwd / f"{name}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "dev"],
        cwd=cwd,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        text=True,
    )
    return DevRun(
        process,
        log,
        f"http://127.0.0.1:{env['WEFT_API_PORT']}",
        int(env["WEFT_TEMPORAL_UI_PORT"]),
        int(env["WEFT_TEMPORAL_DEV_PORT"]),
    )


def wait_all_healthy(run: DevRun) -> dict:
    deadline = time.monotonic() + START_SECONDS
    last: dict = {}
    while time.monotonic() < deadline:
        assert run.process.poll() is None, run.output()
        try:
            last = httpx.get(f"{run.api}/health", timeout=5).json()
        except httpx.HTTPError:
            time.sleep(0.5)
            continue
        queues = last["components"]["task_queues"]
        if last["status"] == "healthy" and all(queues[q.value]["pollers"] >= 1 for q in ALL_QUEUES):
            return last
        time.sleep(0.5)
    raise AssertionError(f"weft dev never became healthy: {last}\n{run.output()}")


def stop(run: DevRun, sig: signal.Signals) -> list[int]:
    """Signal the supervisor only; return its children, which must all be gone."""
    kids = children_of(run.process.pid)
    assert kids, "weft dev started no children"
    run.process.send_signal(sig)
    assert run.process.wait(timeout=15) == 0, run.output()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in kids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [pid for pid in kids if alive(pid)]


@pytest.fixture
def cleanup() -> Iterator[list[DevRun]]:
    runs: list[DevRun] = []
    yield runs
    for run in runs:
        if run.process.poll() is None:
            for pid in children_of(run.process.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            run.process.kill()
            run.process.wait()


def test_weft_dev_runs_stops_and_restarts_with_its_data(
    tmp_path: Path, dev_env: dict[str, str], cleanup: list[DevRun]
) -> None:
    first = start_dev(tmp_path, dev_env, "first")
    cleanup.append(first)
    health = wait_all_healthy(first)
    assert health["services"]["database"] == "healthy"
    assert health["services"]["temporal"] == "healthy"

    deadline = time.monotonic() + 30  # the banner follows the supervisor's own check
    while "Press Ctrl-C" not in first.output() and time.monotonic() < deadline:
        time.sleep(0.2)
    output = first.output()
    # The first admin's secrets stay out of the log: they are in an owner-only file.
    assert "znt_" not in output and "password  " not in output, output
    assert stat.S_IMODE(first.log.stat().st_mode) == 0o600
    credentials = tmp_path / ".weft" / "first-admin.txt"
    assert str(credentials) in output
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    key = re.search(r"API key\s+(znt_\S+)", credentials.read_text())
    assert key, credentials.read_text()
    assert f"http://127.0.0.1:{first.ui_port}" in output and "/docs" in output
    ui = httpx.get(f"http://127.0.0.1:{first.ui_port}/", timeout=10)
    assert ui.status_code == 200 and "<html" in ui.text.lower()

    check = httpx.post(
        f"{first.api}/api/v1/system/check", headers={"X-API-Key": key.group(1)}, timeout=60
    )
    assert check.status_code == 200, check.text
    workflow_id = check.json()["data"]["workflow_id"]

    assert stop(first, signal.SIGINT) == []
    assert stat.S_IMODE((tmp_path / ".weft" / "weft.db").stat().st_mode) == 0o600
    assert (tmp_path / ".weft" / "temporal.db").exists()

    second = start_dev(tmp_path, dev_env, "second")
    cleanup.append(second)
    wait_all_healthy(second)
    assert "First admin" not in second.output()  # shown once, on the first start only
    again = httpx.post(
        f"{second.api}/api/v1/system/check", headers={"X-API-Key": key.group(1)}, timeout=60
    )
    assert again.status_code == 200  # the key survived the restart
    described = subprocess.run(
        [
            str(temporal_cli_path()),
            "workflow",
            "describe",
            "--workflow-id",
            workflow_id,
            "--address",
            f"127.0.0.1:{second.temporal_port}",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert described.returncode == 0, described.stderr
    status = json.loads(described.stdout)["workflowExecutionInfo"]["status"]
    assert status == "WORKFLOW_EXECUTION_STATUS_COMPLETED"  # history kept on disk
    assert stop(second, signal.SIGTERM) == []


def test_busy_port_is_a_one_line_error(
    tmp_path: Path, dev_env: dict[str, str], cleanup: list[DevRun]
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(dev_env["WEFT_API_PORT"])))
        squatter.listen()
        run = start_dev(tmp_path, dev_env, "busy")
        cleanup.append(run)
        assert run.process.wait(timeout=60) == 1
    lines = run.output().strip().splitlines()
    assert lines == [
        f"weft: error: port {dev_env['WEFT_API_PORT']} on 127.0.0.1 is already in use "
        "(set WEFT_API_PORT to use another)"
    ]
