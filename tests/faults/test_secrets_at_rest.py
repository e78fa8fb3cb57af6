"""Secrets never at rest in the clear: a `weft dev` session signs in, adds a
provider with an API key, a webhook with a secret, a partio tenant, credential
and endpoint (with its API key), and runs a pipeline through that provider
whose end is delivered to the webhook. None of those values, no password, no
JWT and no whole ``znt_`` key appears in any file of the data directory (the
SQLite databases, WAL files, Temporal's history), in the captured log, or in
any workflow's history (payloads decoded)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url
from temporalio.client import Client

from tests.fake_providers import FakeProvider, serve
from tests.faults.support import (
    counting_receiver,
    dev_environment,
    first_admin,
    start_dev,
    wait_healthy,
)

pytestmark = [pytest.mark.faults, pytest.mark.asyncio]

PROVIDER_KEY = "sk-provider-fault-secret-7Qz1"
WEBHOOK_SECRET = "whk-fault-secret-9Lm4-at-least-long"
ENDPOINT_KEY = "ek-endpoint-fault-secret-3Vx8"
JWT = re.compile(rb"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
# A whole key is ``znt_`` and 43 URL-safe characters (its stored 10-character
# prefix, followed by the hash in the next column, is not one).
WHOLE_KEY = re.compile(rb"znt_[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])")
# Written on purpose, owner-only, for the person who started `weft dev`.
FIRST_ADMIN_FILE = "first-admin.txt"


def decoded_payloads(node: Any, out: list[bytes]) -> None:
    """Every base64 ``data`` of a history's payloads, decoded (and the JSON itself)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "data" and isinstance(value, str):
                with contextlib.suppress(binascii.Error, ValueError):
                    out.append(base64.b64decode(value, validate=True))
            decoded_payloads(value, out)
    elif isinstance(node, list):
        for item in node:
            decoded_payloads(item, out)


def scan_files(root: Path, secrets: dict[str, str]) -> dict[str, list[str]]:
    """Every file under ``root`` (SQLite files, WAL, Temporal's history, blobs) but
    the logs (scanned on their own) and the first admin's file."""
    found = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name == FIRST_ADMIN_FILE or path.suffix == ".log":
            continue
        if hits := leaks(path.read_bytes(), secrets):
            found[str(path.relative_to(root))] = hits
    return found


async def histories(address: str) -> dict[str, bytes]:
    client = await Client.connect(address)
    found: dict[str, bytes] = {}
    async for execution in client.list_workflows():
        handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
        history = await handle.fetch_history()
        as_dict = history.to_json_dict()
        parts: list[bytes] = [json.dumps(as_dict).encode()]
        decoded_payloads(as_dict, parts)
        found[f"{execution.id}/{execution.run_id}"] = b"\n".join(parts)
    return found


def leaks(blob: bytes, secrets: dict[str, str]) -> list[str]:
    found = [name for name, value in secrets.items() if value.encode() in blob]
    found += [f"JWT {m.group()[:16]!r}…" for m in JWT.finditer(blob)]
    found += [f"key {m.group()[:10]!r}…" for m in WHOLE_KEY.finditer(blob)]
    return found


def database_dump(database_url: str) -> bytes:
    """The whole PostgreSQL database as ``pg_dump`` writes it; without a usable
    pg_dump, every row of every table."""
    url = make_url(database_url)
    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
    if pg_dump := shutil.which("pg_dump"):
        done = subprocess.run([pg_dump, plain], capture_output=True, timeout=120)
        if done.returncode == 0:
            return done.stdout
    rows: list[bytes] = []
    with psycopg.connect(plain) as connection:
        tables = connection.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
        for (table,) in tables:
            for row in connection.execute(f'SELECT * FROM "{table}"'):
                rows.append(repr(row).encode())
    return b"\n".join(rows)


async def test_no_secret_is_kept_in_the_clear(tmp_path: Path, database_url: str) -> None:
    models = ["gpt-vault"]
    provider = FakeProvider("openai", models=models, api_key=PROVIDER_KEY, lists_trouble=False)
    async with serve(provider) as fake, counting_receiver() as receiver:
        env = dev_environment(
            # the webhook receiver and the partio embedding endpoint are the
            # tenant's URLs, both on loopback
            WEFT_TENANT_EGRESS_ALLOWED_HOSTS=(
                f"127.0.0.1:{receiver.port},{fake.url.removeprefix('http://')}"
            ),
            WEFT_EVENT_POLL_SECONDS="1",
            DATABASE_URL=database_url,
        )
        dev = start_dev(tmp_path, env, "dev")
        try:
            await wait_healthy(dev)
            email, password, key = first_admin(tmp_path / ".weft")
            secrets = {"admin password": password, "admin key": key}
            async with httpx.AsyncClient(base_url=dev.api, timeout=60) as http:
                login = await http.post(
                    "/api/v1/auth/login", json={"email": email, "password": password}
                )
                assert login.status_code == 200, login.text
                tokens = login.json()["data"]
                secrets["access token"] = tokens["access_token"]
                secrets["refresh token"] = tokens["refresh_token"]
                http.headers["Authorization"] = f"Bearer {tokens['access_token']}"
                added = await http.post(
                    "/api/v1/models/providers",
                    json={"name": "vault", "kind": "openai", "base_url": f"{fake.url}/v1",
                          "api_key": PROVIDER_KEY, "models": models},
                )  # fmt: skip
                assert added.status_code == 201, added.text
                secrets["provider key"] = PROVIDER_KEY
                hook = await http.post(
                    "/api/v1/webhooks",
                    json={"url": f"{receiver.url}/hook", "secret": WEBHOOK_SECRET,
                          "events": ["workflow.completed"]},
                )  # fmt: skip
                assert hook.status_code == 201, hook.text
                secrets["webhook secret"] = WEBHOOK_SECRET
                secrets["webhook signing secret"] = hook.json()["data"]["signing_secret"]
                tenant = await http.put("/v1.0/tenants", json={"Name": "Vaulted"})
                assert tenant.status_code == 201, tenant.text
                made = tenant.json()
                secrets["tenant credential"] = made["DefaultCredential"]["BearerToken"]
                credential = await http.put(
                    "/v1.0/credentials",
                    json={"TenantId": made["Id"], "UserId": made["DefaultUser"]["Id"],
                          "Name": "second"},
                )  # fmt: skip
                assert credential.status_code == 201, credential.text
                secrets["partio credential"] = credential.json()["BearerToken"]
                endpoint = await http.put(
                    "/v1.0/endpoints",
                    json={"TenantId": made["Id"], "Model": "all-MiniLM-L6-v2",
                          "Endpoint": f"{fake.url}/v1", "ApiFormat": "OpenAI",
                          "ApiKey": ENDPOINT_KEY},
                )  # fmt: skip
                assert endpoint.status_code == 201, endpoint.text
                secrets["endpoint key"] = ENDPOINT_KEY
                whoami = await http.get(
                    "/v1.0/whoami",
                    headers={"Authorization": f"Bearer {secrets['partio credential']}"},
                )
                assert whoami.status_code == 200, whoami.text

                created = await http.post(
                    "/api/workflows",
                    json={"name": "vault", "steps": [
                        {"id": "ask", "type": "ai_prompt",
                         "config": {"prompt": "hello", "model": "gpt-vault"}}]},
                )  # fmt: skip
                assert created.status_code == 201, created.text
                started = await http.post(
                    f"/api/workflows/{created.json()['id']}/execute", json={"input_data": {}}
                )
                assert started.status_code == 202, started.text
                execution_id = started.json()["execution_id"]
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    run = (await http.get(f"/api/executions/{execution_id}")).json()
                    if run["status"] not in ("running", "scheduled"):
                        break
                    await asyncio.sleep(0.3)
                assert run["status"] == "completed", run
                assert any(
                    r.headers.get("authorization") == f"Bearer {PROVIDER_KEY}"
                    for r in fake.requests
                )  # the key was used, so it was really kept somewhere
                await receiver.until(lambda r: bool(r.webhook_arrivals), 60)
                logout = await http.post("/api/v1/auth/logout")
                assert logout.status_code in (200, 204), logout.text
            port = env["WEFT_TEMPORAL_DEV_PORT"]
            recorded = await histories(f"127.0.0.1:{port}")
        finally:
            dev.stop()

    # The scan finds what is there: the first admin's own file holds both.
    admin_file = (tmp_path / ".weft" / FIRST_ADMIN_FILE).read_bytes()
    assert {"admin password", "admin key"} <= set(leaks(admin_file, secrets))
    found: dict[str, list[str]] = {}
    if database_url.startswith("postgresql"):
        dump = database_dump(database_url)
        assert b"api_keys" in dump
        if hits := leaks(dump, secrets):
            found["database"] = hits
    else:
        assert (tmp_path / "weft.db").exists()
    found.update(scan_files(tmp_path, secrets))
    if hits := leaks(dev.log.read_bytes(), secrets):
        found["log"] = hits
    assert recorded, "no workflow history was read"
    for name, blob in recorded.items():
        if hits := leaks(blob, secrets):
            found[f"history {name}"] = hits
    assert not found, found
