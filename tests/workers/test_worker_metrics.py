"""``weft worker`` with WEFT_WORKER_METRICS_ADDRESS serves the Temporal SDK's metrics,
and with WEFT_LOG_FORMAT=json writes JSON lines: a real worker process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from tests.conftest import free_port


def test_a_worker_serves_sdk_metrics_and_logs_json(temporal_address: str, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "WEFT_TEMPORAL_ADDRESS": temporal_address,
        "WEFT_DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'weft.db'}",
        "WEFT_TASK_QUEUE_PREFIX": f"m{uuid.uuid4().hex[:8]}-",
        "WEFT_WORKER_METRICS_ADDRESS": f"127.0.0.1:{port}",
        "WEFT_LOG_FORMAT": "json",
    }
    env.pop("TEMPORAL_ADDRESS", None)
    worker = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "worker", "--queues", "weft-io"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        body = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and worker.poll() is None:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
            except httpx.HTTPError:
                time.sleep(0.3)
                continue
            body = response.text
            if response.status_code == 200 and "temporal_worker_task_slots_available" in body:
                break
            time.sleep(0.3)
        assert worker.poll() is None, "the worker exited"
        assert "temporal_worker_task_slots_available" in body, body[:2000]
        assert 'task_queue="' in body and "weft-io" in body
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            _, stderr = worker.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            _, stderr = worker.communicate()
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    serving = [line for line in lines if line["message"].startswith("worker serving")]
    assert serving, stderr[-2000:]
    assert serving[0]["logger"] == "weft.worker" and serving[0]["level"] == "INFO"
    assert {"timestamp", "request_id", "tenant_id", "workflow_id", "activity"} <= serving[0].keys()
    assert any(f"127.0.0.1:{port}" in line["message"] for line in lines)
