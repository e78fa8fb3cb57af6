"""The `weft` command line as a user runs it: real subprocesses."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from api.app import create_app
from engine.platform.settings import Settings
from tests.conftest import api_client, free_port


def weft(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("WEFT_") and k not in ("DATABASE_URL", "TEMPORAL_ADDRESS")
    }
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_invalid_database_url_is_a_one_line_error(tmp_path: Path) -> None:
    result = weft("migrate", cwd=tmp_path, env={"DATABASE_URL": "mysql://nowhere/db"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "weft: error: invalid settings: DATABASE_URL: unsupported database 'mysql' "
        "(use sqlite or postgresql)"
    ]


def test_unreachable_database_is_a_one_line_error(tmp_path: Path) -> None:
    url = f"postgresql://127.0.0.1:{free_port()}/weft"
    result = weft("migrate", cwd=tmp_path, env={"DATABASE_URL": url})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("weft: error: cannot use the database")
    assert "Traceback" not in result.stderr


def test_unknown_queue_is_refused(tmp_path: Path) -> None:
    result = weft("worker", "--queues", "weft-io,weft-gpu", cwd=tmp_path)
    assert result.returncode == 1
    assert "unknown task queue(s) weft-gpu" in result.stderr


@pytest.mark.asyncio
async def test_admin_commands_create_a_working_scoped_key(
    tmp_path: Path, temporal_address: str
) -> None:
    assert weft("migrate", cwd=tmp_path).returncode == 0
    tenant = weft("admin", "create-tenant", "acme", cwd=tmp_path)
    assert tenant.returncode == 0 and "tenant ten_" in tenant.stdout
    user = weft(
        "admin", "create-user", "--tenant", "acme", "--email", "ops@acme.test", cwd=tmp_path
    )
    assert user.returncode == 0 and "password: " in user.stdout
    key = weft(
        "admin",
        "create-api-key",
        "--email",
        "ops@acme.test",
        "--name",
        "ci",
        "--scopes",
        "files:read,ai:chat",
        cwd=tmp_path,
    )
    assert key.returncode == 0, key.stderr
    secret = key.stdout.split("key: ")[1].split()[0]
    duplicate = weft(
        "admin", "create-user", "--tenant", "acme", "--email", "OPS@acme.test", cwd=tmp_path
    )
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr

    settings = Settings(data_dir=tmp_path / ".weft", temporal_address=temporal_address)
    async with api_client(create_app(settings)) as http:
        scoped = await http.post("/api/v1/system/check", headers={"X-API-Key": secret})
        bearer = await http.post(
            "/api/v1/system/check", headers={"Authorization": f"Bearer {secret}"}
        )
    assert scoped.status_code == 403  # authenticated, but lacks the admin scope
    assert bearer.status_code == 403


@pytest.mark.asyncio
async def test_setup_temporal_registers_search_attributes_once(
    tmp_path: Path, temporal_bin: Path
) -> None:
    from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
    from temporalio.testing import WorkflowEnvironment

    bare = await WorkflowEnvironment.start_local(  # a server without the Weft* attributes
        dev_server_existing_path=str(temporal_bin), port=free_port()
    )
    try:
        address = {"TEMPORAL_ADDRESS": bare.client.service_client.config.target_host}
        first = weft("setup-temporal", cwd=tmp_path, env=address)
        again = weft("setup-temporal", cwd=tmp_path, env=address)
        listed = await bare.client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace="default")
        )
    finally:
        await bare.shutdown()
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == (
        "registered WeftTenant, WeftKind, WeftDefinitionId, WeftStartedBy"
    )
    assert again.stdout.strip() == "search attributes already registered"
    assert {"WeftTenant", "WeftKind", "WeftDefinitionId", "WeftStartedBy"} <= set(
        listed.custom_attributes
    )


async def test_worker_check_passes_only_while_a_worker_on_this_host_polls_every_queue(
    tmp_path: Path, temporal_address: str, running_worker: object
) -> None:
    """The compose healthcheck: `weft worker --check` asks Temporal for live pollers."""
    env = {"TEMPORAL_ADDRESS": temporal_address, "WEFT_DATA_DIR": str(tmp_path / ".weft")}
    for _ in range(30):  # a worker that just started shows up after its first poll
        served = weft("worker", "--queues", "weft-io,weft-cpu", "--check", cwd=tmp_path, env=env)
        if served.returncode == 0:
            break
        await asyncio.sleep(0.5)
    assert served.returncode == 0, served.stdout + served.stderr
    assert "every queue has a live worker" in served.stdout
    # Queues with another prefix: nobody polls them.
    idle = weft("worker", "--queues", "weft-io", "--check", cwd=tmp_path,
                env={**env, "WEFT_TASK_QUEUE_PREFIX": "nobody-"})  # fmt: skip
    assert idle.returncode == 1
    assert "weft-io: no live worker polls this queue" in idle.stdout
