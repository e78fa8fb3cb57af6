"""Defects an outside probe found (issue #14), each seen through the real API."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from engine.db import migrate
from engine.platform.ports import port_open
from engine.platform.settings import Settings
from tests.audit.test_request_history import stored_file, wait_for_entry
from tests.conftest import DocStack, api_client, free_port, make_settings, make_tenant

pytestmark = pytest.mark.asyncio

ADMIN_KEY = "probe-admin-" + "k" * 24
GLOBAL = {"Authorization": f"Bearer {ADMIN_KEY}"}
WINDOW = 3600
MISSING = "/api/v1/does-not-exist"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def with_admin(settings: Settings, **changes: object) -> Settings:
    return settings.model_copy(update={"admin_api_keys": [ADMIN_KEY], **changes})


def limited(settings: Settings, **limits: int) -> Settings:
    return with_admin(
        settings,
        rate_limits={**settings.rate_limits, **limits},
        rate_limit_window_seconds=WINDOW,
    )


async def clear_of_window_edge() -> None:
    left = WINDOW - time.time() % WINDOW
    if left < 10:
        await asyncio.sleep(left + 0.1)


@pytest.fixture
async def http(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(create_app(with_admin(settings))) as client:
        yield client


async def login(http: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await http.post("/api/v1/auth/login", json={"email": email, "password": password})


async def session_of(http: httpx.AsyncClient, email: str, password: str) -> dict[str, str]:
    answer = await login(http, email, password)
    assert answer.status_code == 200, answer.text
    return dict(answer.json()["data"])


def error_code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


# --- 1. an admin key does not outlive its owner's admin role ----------------------------


async def test_admin_key_loses_its_power_with_its_owners_admin_role(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    tenant = await make_tenant(settings, "demoted")
    as_jwt = bearer((await session_of(http, tenant.email, tenant.password))["access_token"])
    user_id = (await http.get("/api/v1/users/me", headers=as_jwt)).json()["data"]["id"]
    made = await http.post(
        "/api/v1/api-keys", headers=as_jwt, json={"name": "ops", "scopes": ["admin"]}
    )
    assert made.status_code == 201, made.text
    as_key = {"X-API-Key": made.json()["data"]["key"]}
    assert (await http.get(f"/v1.0/users/{user_id}", headers=as_key)).status_code == 200

    demoted = await http.put(f"/v1.0/users/{user_id}", headers=GLOBAL, json={"IsAdmin": False})
    assert demoted.status_code == 200 and demoted.json()["IsAdmin"] is False

    for headers in (as_jwt, as_key):
        again = await http.put(f"/v1.0/users/{user_id}", headers=headers, json={"IsAdmin": True})
        assert again.status_code == 403, again.text
        assert (await http.get(f"/v1.0/users/{user_id}", headers=headers)).status_code == 403
    escalate = await http.post(
        "/api/v1/api-keys", headers=as_key, json={"name": "again", "scopes": ["admin"]}
    )
    assert escalate.status_code == 403, escalate.text
    # What the user may still do as a user, the key still does.
    assert (await http.get("/api/v1/users/me", headers=as_key)).status_code == 200
    promoted = await http.put(f"/v1.0/users/{user_id}", headers=GLOBAL, json={"IsAdmin": True})
    assert promoted.status_code == 200
    assert (await http.get(f"/v1.0/users/{user_id}", headers=as_key)).status_code == 200


# --- 2. deactivated tenants and users are refused everywhere at once ----------------------


async def test_deactivated_tenant_is_refused_at_login_jwt_key_and_refresh(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    tenant = await make_tenant(settings, "dormant")
    pair = await session_of(http, tenant.email, tenant.password)
    as_jwt, as_key = bearer(pair["access_token"]), {"X-API-Key": tenant.key}
    off = await http.put(
        f"/v1.0/tenants/{tenant.tenant_id}", headers=GLOBAL, json={"Active": False}
    )
    assert off.status_code == 200 and off.json()["Active"] is False

    refused = await login(http, tenant.email, tenant.password)
    assert refused.status_code == 403 and error_code(refused) == "ACCOUNT_DISABLED"
    assert "tenant" in refused.json()["error"]["message"]
    for headers in (as_jwt, as_key):
        me = await http.get("/api/v1/users/me", headers=headers)
        assert me.status_code == 403 and error_code(me) == "ACCOUNT_DISABLED", me.text
    partio = await http.get("/v1.0/whoami", headers=bearer(tenant.key))
    assert partio.status_code == 403 and partio.json()["StatusCode"] == 403
    renewed = await http.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert renewed.status_code == 403 and error_code(renewed) == "ACCOUNT_DISABLED"
    # A wrong password still says only that the login failed.
    wrong = await login(http, tenant.email, "not-the-password")
    assert wrong.status_code == 401 and error_code(wrong) == "UNAUTHORIZED"

    on = await http.put(f"/v1.0/tenants/{tenant.tenant_id}", headers=GLOBAL, json={"Active": True})
    assert on.status_code == 200
    assert (await http.get("/api/v1/users/me", headers=as_key)).status_code == 200
    assert (await http.get("/api/v1/users/me", headers=as_jwt)).status_code == 200


async def test_deactivated_user_is_refused_at_login_jwt_and_key(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    tenant = await make_tenant(settings, "leaver")
    as_jwt = bearer((await session_of(http, tenant.email, tenant.password))["access_token"])
    user_id = (await http.get("/api/v1/users/me", headers=as_jwt)).json()["data"]["id"]
    off = await http.put(f"/v1.0/users/{user_id}", headers=GLOBAL, json={"Active": False})
    assert off.status_code == 200

    refused = await login(http, tenant.email, tenant.password)
    assert refused.status_code == 403 and error_code(refused) == "ACCOUNT_DISABLED"
    for headers in (as_jwt, {"X-API-Key": tenant.key}):
        me = await http.get("/api/v1/users/me", headers=headers)
        assert me.status_code == 403 and error_code(me) == "ACCOUNT_DISABLED", me.text


# --- 3. a key never outlives or out-scopes the key that created it --------------------------


async def test_child_key_is_clamped_to_its_parents_expiry_and_scopes(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    tenant = await make_tenant(settings, "keys")
    as_jwt = bearer((await session_of(http, tenant.email, tenant.password))["access_token"])
    user_id = (await http.get("/api/v1/users/me", headers=as_jwt)).json()["data"]["id"]
    expires = (datetime.now(UTC) + timedelta(seconds=4)).replace(microsecond=0)
    parent = await http.post(
        "/api/v1/api-keys",
        headers=as_jwt,
        json={
            "name": "short",
            "scopes": ["keys:write", "profile"],
            "expires_at": expires.isoformat(),
        },
    )
    assert parent.status_code == 201, parent.text
    as_parent = {"X-API-Key": parent.json()["data"]["key"]}

    later = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    children = []
    for asked in (None, later):
        child = await http.post(
            "/api/v1/api-keys",
            headers=as_parent,
            json={"name": "child", "scopes": ["profile"], "expires_at": asked},
        )
        assert child.status_code == 201, child.text
        data = child.json()["data"]
        assert data["expires_at"], "a child of an expiring key must expire"
        assert datetime.fromisoformat(data["expires_at"]) == expires  # clamped to the parent's
        children.append({"X-API-Key": data["key"]})
    wider = await http.post(
        "/api/v1/api-keys", headers=as_parent, json={"name": "wide", "scopes": ["files:read"]}
    )
    assert wider.status_code == 403 and error_code(wider) == "FORBIDDEN"

    # A short-lived admin key cannot mint an eternal partio credential either.
    admin_parent = await http.post(
        "/api/v1/api-keys",
        headers=as_jwt,
        json={"name": "admin-short", "scopes": ["admin"], "expires_at": expires.isoformat()},
    )
    assert admin_parent.status_code == 201
    credential = await http.put(
        "/v1.0/credentials",
        headers={"X-API-Key": admin_parent.json()["data"]["key"]},
        json={"UserId": user_id, "Name": "minted"},
    )
    assert credential.status_code == 201, credential.text
    children.append(bearer(credential.json()["BearerToken"]))

    for child_headers in children:
        assert (await http.get("/api/v1/users/me", headers=child_headers)).status_code == 200
    await asyncio.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.5)
    for child_headers in children:
        gone = await http.get("/api/v1/users/me", headers=child_headers)
        assert gone.status_code == 401, gone.text


async def test_revoking_a_key_revokes_every_key_it_created(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    tenant = await make_tenant(settings, "lineage")
    as_jwt = bearer((await session_of(http, tenant.email, tenant.password))["access_token"])

    async def key_from(headers: dict[str, str], name: str, scopes: list[str]) -> dict[str, str]:
        made = await http.post(
            "/api/v1/api-keys", headers=headers, json={"name": name, "scopes": scopes}
        )
        assert made.status_code == 201, made.text
        return {"X-API-Key": made.json()["data"]["key"], "id": made.json()["data"]["id"]}

    def auth(key: dict[str, str]) -> dict[str, str]:
        return {"X-API-Key": key["X-API-Key"]}

    parent = await key_from(as_jwt, "parent", ["keys:write", "profile"])
    child = await key_from(auth(parent), "child", ["keys:write", "profile"])
    grandchild = await key_from(auth(child), "grandchild", ["profile"])
    sibling = await key_from(as_jwt, "sibling", ["profile"])
    for key in (parent, child, grandchild, sibling):
        assert (await http.get("/api/v1/users/me", headers=auth(key))).status_code == 200

    revoked = await http.delete(f"/api/v1/api-keys/{parent['id']}", headers=as_jwt)
    assert revoked.status_code == 204
    for key in (parent, child, grandchild):
        gone = await http.get("/api/v1/users/me", headers=auth(key))
        assert gone.status_code == 401, gone.text
    assert (await http.get("/api/v1/users/me", headers=auth(sibling))).status_code == 200

    # partio's deactivation of a credential reaches the keys it created too
    user_id = (await http.get("/api/v1/users/me", headers=as_jwt)).json()["data"]["id"]
    admin = await key_from(as_jwt, "admin", ["admin"])
    minted = await http.put(
        "/v1.0/credentials",
        headers=auth(admin),
        json={"UserId": user_id, "Name": "minted"},
    )
    assert minted.status_code == 201, minted.text
    as_minted = bearer(minted.json()["BearerToken"])
    assert (await http.get("/api/v1/users/me", headers=as_minted)).status_code == 200
    off = await http.put(f"/v1.0/credentials/{admin['id']}", headers=as_jwt, json={"Active": False})
    assert off.status_code == 200, off.text
    gone = await http.get("/api/v1/users/me", headers=as_minted)
    assert gone.status_code == 401, gone.text


# --- 4. rate limits cannot be side-stepped ---------------------------------------------------


async def test_bogus_keys_do_not_give_login_attempts_fresh_buckets(settings: Settings) -> None:
    await clear_of_window_edge()
    async with api_client(create_app(limited(settings, login=3))) as http:
        answers = [
            await http.post(
                "/api/v1/auth/login",
                json={"email": f"victim{n}@example.test", "password": "guess-123"},
                headers={"X-API-Key": f"znt_{secrets.token_urlsafe(16)}"},
            )
            for n in range(5)
        ]
    assert [a.status_code for a in answers[:3]] == [401, 401, 401]
    assert answers[3].status_code == 429 and error_code(answers[3]) == "RATE_LIMIT_EXCEEDED"


async def test_unknown_keys_share_the_address_bucket(settings: Settings) -> None:
    await clear_of_window_edge()
    async with api_client(create_app(limited(settings, default=3))) as http:
        answers = [
            await http.get(MISSING, headers={"X-API-Key": f"znt_{secrets.token_urlsafe(16)}"})
            for _ in range(4)
        ]
    assert answers[3].status_code == 429, [a.status_code for a in answers]


async def test_a_key_padded_with_whitespace_is_the_same_bucket(settings: Settings) -> None:
    await clear_of_window_edge()
    tenant = await make_tenant(settings, "padded")
    async with api_client(create_app(limited(settings, default=2))) as http:
        for _ in range(2):
            fine = await http.get("/api/v1/users/me", headers={"X-API-Key": tenant.key})
            assert fine.status_code == 200
        for pad in ("\xa0", " ", "\t"):
            padded = (tenant.key + pad).encode("latin-1")
            refused = await http.get("/api/v1/users/me", headers={"X-API-Key": padded})
            assert refused.status_code == 429, (pad, refused.text)


@dataclass(frozen=True)
class ApiRun:
    url: str
    log: Path
    data_dir: Path


StartApi = Callable[..., ApiRun]


@pytest.fixture
def start_api(tmp_path: Path, temporal_address: str) -> Iterator[StartApi]:
    """``weft api`` as the CLI starts it (uvicorn), on a migrated SQLite database."""
    started: list[subprocess.Popen[bytes]] = []

    def start(**env_overrides: str) -> ApiRun:
        data = tmp_path / f"data{len(started)}"
        data.mkdir(parents=True)
        url = f"sqlite:///{data / 'weft.db'}"
        migrate.upgrade(make_settings(data, data_dir=data, database_url=url))
        port = free_port()
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("WEFT_") and k not in ("DATABASE_URL", "TEMPORAL_ADDRESS")
        }
        env.update(
            DATABASE_URL=url,
            WEFT_DATA_DIR=str(data),
            TEMPORAL_ADDRESS=temporal_address,
            WEFT_API_PORT=str(port),
            WEFT_RATE_LIMITS=json.dumps({"default": 2}),
            WEFT_RATE_LIMIT_WINDOW_SECONDS=str(WINDOW),
            WEFT_ADMIN_API_KEYS=ADMIN_KEY,
            **env_overrides,
        )
        log = tmp_path / f"api{len(started)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "engine.cli", "api"], env=env, stdout=out, stderr=out
            )
        started.append(process)
        deadline = time.monotonic() + 60
        while not port_open("127.0.0.1", port):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "weft api did not start"
            time.sleep(0.1)
        return ApiRun(f"http://127.0.0.1:{port}", log, data)

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=15)


async def test_forwarded_for_is_trusted_only_from_named_proxies(start_api: StartApi) -> None:
    await clear_of_window_edge()
    direct = start_api()
    async with httpx.AsyncClient(base_url=direct.url) as http:
        spoofed = [
            await http.get(MISSING, headers={"X-Forwarded-For": f"203.0.113.{n}"}) for n in range(3)
        ]
    assert [a.status_code for a in spoofed] == [404, 404, 429]

    behind_proxy = start_api(WEFT_TRUSTED_PROXIES="127.0.0.1")
    async with httpx.AsyncClient(base_url=behind_proxy.url) as http:
        clients = [
            await http.get(MISSING, headers={"X-Forwarded-For": f"203.0.113.{n}"}) for n in range(3)
        ]
    assert [a.status_code for a in clients] == [404, 404, 404]


# --- 5. failures that answered 500 ----------------------------------------------------------


async def test_system_check_that_times_out_answers_504(settings: Settings, admin_key: str) -> None:
    # No worker serves the queues of this prefix: the run never gets going.
    unserved = settings.model_copy(update={"task_queue_prefix": f"nobody{secrets.token_hex(4)}-"})
    started = time.monotonic()
    async with api_client(create_app(unserved)) as client:
        response = await client.post(
            "/api/v1/system/check",
            headers={"X-API-Key": admin_key},
            json={"queues": ["weft-io"], "timeout_seconds": 3},
        )
    assert response.status_code == 504, response.text
    error = response.json()["error"]
    assert error["code"] == "GATEWAY_TIMEOUT" and error["request_id"]
    assert error["details"]["workflow_id"].startswith("check-")
    assert time.monotonic() - started < 30


async def _endpoint_at(stack: DocStack, url: str) -> str:
    tenant = stack.tenant
    as_admin = bearer((await session_of(stack.http, tenant.email, tenant.password))["access_token"])
    made = await stack.http.put(
        "/v1.0/endpoints",
        headers=as_admin,
        json={"Model": "all-minilm", "Endpoint": url, "ApiFormat": "Ollama"},
    )
    assert made.status_code == 201, made.text
    return str(made.json()["Id"])


LOOPBACK_SPELLINGS = (
    "127.0.0.1",
    "[::1]",
    "2130706433",
    "0x7f000001",
    "127.1",
    "localhost",
    "[::ffff:127.0.0.1]",
    "169.254.169.254",
    "10.0.0.7",
)


async def _endpoint_refused(stack: DocStack, url: str) -> httpx.Response:
    tenant = stack.tenant
    as_admin = bearer((await session_of(stack.http, tenant.email, tenant.password))["access_token"])
    return await stack.http.put(
        "/v1.0/endpoints",
        headers=as_admin,
        json={"Model": "all-minilm", "Endpoint": url, "ApiFormat": "Ollama", "ApiKey": "k"},
    )


async def test_tenant_endpoints_never_reach_loopback_private_or_metadata(
    doc_stack: DocStack,
) -> None:
    """A tenant admin's embedding endpoint follows the tenant egress rules: every
    spelling of loopback, a private and the metadata address are refused when
    saved, and one already stored (saved before the rules, or DNS that moved)
    is refused at call time with nothing connecting, upstream text unreflected."""
    from engine.db.connection import create_engine, create_sessionmaker, transaction
    from engine.db.tables import EmbeddingEndpoint

    async with counting_listener() as listener:
        for host in LOOPBACK_SPELLINGS:
            refused = await _endpoint_refused(doc_stack, f"http://{host}:{listener.port}")
            assert refused.status_code == 400, (host, refused.text)
            assert "egress policy forbids" in refused.json()["Message"], host
        query = await _endpoint_refused(doc_stack, "http://models.weft-test.invalid/x?")
        assert query.status_code == 400 and "query string" in query.json()["Message"]

        engine = create_engine(doc_stack.settings)
        try:
            async with transaction(create_sessionmaker(engine)) as session:
                stored = EmbeddingEndpoint(
                    tenant_id=doc_stack.tenant.tenant_id,
                    model="all-minilm",
                    endpoint=f"http://localhost:{listener.port}",
                    api_format="Ollama",
                )
                session.add(stored)
                await session.flush()
                endpoint_id = stored.id
        finally:
            await engine.dispose()
        answer = await doc_stack.http.post(
            f"/v1.0/endpoints/{endpoint_id}/process",
            headers=bearer(doc_stack.tenant.key),
            json={"Text": "hello there"},
        )
        assert answer.status_code == 400, answer.text
        assert "egress" in answer.json()["Message"]
        assert listener.connections == 0


@dataclass
class _Listener:
    port: int
    connections: int = 0


@contextlib.asynccontextmanager
async def counting_listener() -> AsyncIterator[_Listener]:
    """A TCP listener on loopback that counts connections (and answers 405)."""
    listener = _Listener(0)

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        listener.connections += 1
        body = b'{"message": "internal-banner-7f3a"}'
        head = f"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: {len(body)}\r\n\r\n"
        writer.write(head.encode() + body)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    listener.port = server.sockets[0].getsockname()[1]
    try:
        yield listener
    finally:
        server.close()
        await server.wait_closed()


async def test_operator_opened_tenant_endpoint_does_not_reflect_upstream_errors(
    settings: Settings, temporal_env: object
) -> None:
    """Opened by the operator, a tenant's endpoint is called, but what its
    server answered is not passed through: only the status."""
    from tests.conftest import worker_stack

    async with counting_listener() as listener:
        opened = settings.model_copy(
            update={"tenant_egress_allowed_hosts": [f"127.0.0.1:{listener.port}"]}
        )
        async with worker_stack(opened, temporal_env) as stack:  # type: ignore[arg-type]
            made = await _endpoint_refused(stack, f"http://127.0.0.1:{listener.port}")
            assert made.status_code == 201, made.text
            answer = await stack.http.post(
                f"/v1.0/endpoints/{made.json()['Id']}/process",
                headers=bearer(stack.tenant.key),
                json={"Text": "hello there"},
            )
        assert listener.connections >= 1
    assert answer.status_code >= 400 and "internal-banner-7f3a" not in answer.text, answer.text
    assert "upstream" not in answer.text


async def test_process_against_an_unresolvable_host_is_a_quick_upstream_error(
    doc_stack: DocStack,
) -> None:
    endpoint_id = await _endpoint_at(doc_stack, "http://weft-probe-nowhere.invalid:11434")
    started = time.monotonic()
    response = await doc_stack.http.post(
        f"/v1.0/endpoints/{endpoint_id}/process",
        headers=bearer(doc_stack.tenant.key),
        json={"Text": "hello there"},
    )
    assert response.status_code in (502, 504), response.text
    assert "weft-probe-nowhere.invalid" in response.json()["Message"]
    assert time.monotonic() - started < doc_stack.settings.provider_timeout_seconds


# --- 6. request history redacts what the route parsed -----------------------------------------


async def test_history_redacts_a_bom_prefixed_body_with_escaped_keys(
    settings: Settings, admin_key: str
) -> None:
    secret = "hunter2-" + secrets.token_hex(8)
    body = b'\xef\xbb\xbf{"email": "x@example.test", "pass\\u0077ord": "' + secret.encode() + b'"}'
    async with api_client(create_app(settings)) as http:
        answer = await http.post(
            "/api/v1/auth/login",
            content=body,
            headers={"Content-Type": "application/json", "X-Request-ID": "probe-bom"},
        )
        assert answer.status_code == 401, answer.text  # parsed and tried: not a 4xx for syntax
        entry = await wait_for_entry(
            http, {"X-API-Key": admin_key}, "probe-bom", "/api/v1/auth/login"
        )
        detail = await http.get(
            f"/v1.0/requests/{entry['Id']}/detail", headers={"X-API-Key": admin_key}
        )
    assert secret not in detail.text
    assert secret not in stored_file(settings, entry)
    assert json.loads(detail.json()["RequestBody"])["password"] == "[REDACTED]"


# --- 7. logs and files keep secrets to their owner -------------------------------------------


async def test_access_log_hides_tokens_in_query_strings(start_api: StartApi) -> None:
    api = start_api()
    secret = "tok-" + secrets.token_hex(8)
    async with httpx.AsyncClient(base_url=api.url) as http:
        answer = await http.get(MISSING, params={"token": secret, "page": "2"})
        assert answer.status_code == 404
    for _ in range(100):  # uvicorn writes the line just after answering
        log = api.log.read_text()
        if MISSING in log:
            break
        await asyncio.sleep(0.1)
    assert f"{MISSING}?token=[REDACTED]&page=2" in log, log
    assert secret not in log


async def test_database_and_data_dir_are_private(tmp_path: Path) -> None:
    data = tmp_path / "fresh"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("WEFT_") and k not in ("DATABASE_URL", "TEMPORAL_ADDRESS")
    }
    env["WEFT_DATA_DIR"] = str(data)
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "engine.cli", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE((data / "weft.db").stat().st_mode) == 0o600
    assert stat.S_IMODE(data.stat().st_mode) == 0o700


# --- 8. bodies are read only for someone, and only as large as their route allows ------------


class _CountedBody:
    """A streamed request body that counts how much of it the server pulled."""

    def __init__(self, size: int, chunk: int = 1 << 20) -> None:
        self.size, self.chunk, self.pulled = size, chunk, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        sent = 0
        while sent < self.size:
            part = min(self.chunk, self.size - sent)
            self.pulled += part
            sent += part
            yield b"x" * part


MULTIPART = {"Content-Type": "multipart/form-data; boundary=weft"}


async def test_large_bodies_are_refused_before_they_are_read(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    fifty_mb = 50 * 1024 * 1024
    # A JSON route has the request limit however its body is labelled.
    labelled = _CountedBody(fifty_mb)
    answer = await http.post(
        "/api/v1/ai/chat",
        content=labelled,
        headers={**MULTIPART, "Content-Length": str(fifty_mb)},
    )
    assert answer.status_code == 413, answer.text
    assert answer.json()["error"]["details"]["limit_bytes"] == settings.max_request_bytes
    assert labelled.pulled <= labelled.chunk
    # Without a length, the request limit still ends it at the first megabyte or two.
    streamed = _CountedBody(fifty_mb)
    answer = await http.post("/api/v1/ai/chat", content=streamed, headers=MULTIPART)
    assert answer.status_code == 413 and streamed.pulled <= 3 * streamed.chunk

    # The upload route takes up to the upload limit, but not from no one.
    for headers in ({}, {"X-API-Key": "znt_" + "0" * 40}):
        upload = _CountedBody(fifty_mb)
        answer = await http.post(
            "/api/v1/mcp/upload",
            content=upload,
            headers={**MULTIPART, **headers, "Content-Length": str(fifty_mb)},
        )
        assert answer.status_code == 401, answer.text
        assert answer.json()["error"]["code"] in ("UNAUTHORIZED", "INVALID_API_KEY")
        assert upload.pulled <= upload.chunk  # nothing past what the transport prefetches


async def test_an_authenticated_upload_still_gets_the_upload_limit(settings: Settings) -> None:
    tenant = await make_tenant(settings, "uploads")
    small = with_admin(settings, max_request_bytes=1024)
    async with api_client(create_app(small)) as http:
        answer = await http.post(
            "/api/v1/mcp/upload",
            headers={"X-API-Key": tenant.key},
            files={"file": ("notes.txt", b"owls hunt at night. " * 200, "text/plain")},
            data={"process": "false"},
        )
    assert answer.status_code == 201, answer.text  # 4 KB: over the request limit, an upload


# --- 9. what responses tell about the server -----------------------------------------------


async def test_responses_carry_a_csp_and_no_server_banner(start_api: StartApi) -> None:
    api = start_api()
    async with httpx.AsyncClient(base_url=api.url) as http:
        health = await http.get("/health")
        docs = await http.get("/docs")
    assert "server" not in health.headers
    assert health.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert docs.status_code == 200
    assert "script-src 'self'" in docs.headers["content-security-policy"]
